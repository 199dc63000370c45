import Synchronization
import Testing

@testable import SluiceBroker
@testable import SluiceWire

/// The outbox's on-demand writer: a producer that queues a frame starts a writer unless one runs; the writer drains,
/// finds the outbox empty, and ends. Driven here without sockets, by a writer that only counts what it takes.
@Suite("Outbox writers on demand", .timeLimit(.minutes(1)))
struct OutboxWriterTests {
    /// Counts what simulated writers took, and how many ran at once.
    final class Ledger: Sendable {
        let taken = Atomic<Int>(0)
        let started = Atomic<Int>(0)
        let running = Atomic<Int>(0)
        let overlaps = Atomic<Int>(0)
    }

    /// A writer like `Session.writeBurst`, minus the socket: takes batches until the outbox is empty, then ends.
    static func drain(_ outbox: Outbox, _ ledger: Ledger) async {
        if ledger.running.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue > 1 {
            ledger.overlaps.wrappingAdd(1, ordering: .relaxed)
        }
        var batch: [Outbox.Item] = []
        while true {
            batch.removeAll(keepingCapacity: true)
            _ = outbox.takeReady(upTo: 7, into: &batch)
            if batch.isEmpty {
                ledger.running.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                // Widen the window between "found nothing" and "going idle": a frame queued in it must not be left
                // without a writer.
                await Task.yield()
                if outbox.writerGoesIdle() { return }
                ledger.running.wrappingAdd(1, ordering: .sequentiallyConsistent)
                continue
            }
            for item in batch {
                outbox.written(item)
                ledger.taken.wrappingAdd(1, ordering: .relaxed)
            }
            if Bool.random() { await Task.yield() }  // let producers race the writer's idle check
        }
    }

    /// An outbox whose writers are `drain` tasks reporting to the returned ledger.
    static func outboxWithSimulatedWriters() -> (Outbox, Ledger) {
        let outbox = Outbox(limit: 1 << 24)
        let ledger = Ledger()
        outbox.onWork {
            ledger.started.wrappingAdd(1, ordering: .relaxed)
            Task { await Self.drain(outbox, ledger) }
        }
        return (outbox, ledger)
    }

    @Test("every frame posted from many tasks is taken by exactly one writer at a time, and writers end when idle")
    func postsFromManyTasks() async throws {
        for round in 0..<20 {
            // Given an outbox whose writers are simulated tasks
            let (outbox, ledger) = Self.outboxWithSimulatedWriters()
            // When 8 tasks post 500 frames each, pausing now and then so the outbox empties in between
            let producers = 8
            let perProducer = 500
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<producers {
                    group.addTask {
                        for index in 0..<perProducer {
                            #expect(outbox.post(.pong) == .queued)
                            if index % 50 == 0 { try? await Task.sleep(for: .microseconds(200)) }
                        }
                    }
                }
            }
            // Then every frame is taken, never by two writers at once, and in the end no writer runs
            var spins = 0
            while ledger.taken.load(ordering: .relaxed) < producers * perProducer
                || outbox.writing.load(ordering: .relaxed)
            {
                spins += 1
                if spins > 2_000_000 {
                    Issue.record(
                        "round \(round): taken \(ledger.taken.load(ordering: .relaxed)), writing \(outbox.writing.load(ordering: .relaxed))"
                    )
                    return
                }
                await Task.yield()
            }
            #expect(ledger.taken.load(ordering: .relaxed) == producers * perProducer)
            #expect(ledger.overlaps.load(ordering: .relaxed) == 0)
            #expect(ledger.started.load(ordering: .relaxed) >= 1)
            #expect(outbox.pendingBytes == 0)
        }
    }

    @Test("a frame queued while the writer is going idle is still written (by it, or by a writer it starts)")
    func frameQueuedWhileGoingIdle() async throws {
        // Given a writer that yields between finding the outbox empty and going idle (see `drain`)
        let (outbox, ledger) = Self.outboxWithSimulatedWriters()
        // When one frame at a time is posted as soon as the previous one was taken (so often right in that yield)
        for index in 0..<2_000 {
            #expect(outbox.post(.pong) == .queued)
            var spins = 0
            while ledger.taken.load(ordering: .relaxed) <= index {
                spins += 1
                if spins > 1_000_000 {
                    // Then no frame is ever left behind without a writer
                    Issue.record(
                        "frame \(index) was never written (writing: \(outbox.writing.load(ordering: .relaxed)))"
                    )
                    return
                }
                await Task.yield()
            }
        }
        #expect(ledger.overlaps.load(ordering: .relaxed) == 0)
    }

    @Test("a caller posting writing-if-idle becomes the writer when none runs, and starts none when one does")
    func postWritingIfIdle() async throws {
        // Given an outbox with no writer running and none startable (the caller is to write)
        let outbox = Outbox(limit: 1 << 16)
        let started = Atomic<Int>(0)
        outbox.onWork { started.wrappingAdd(1, ordering: .relaxed) }
        // When a frame is posted that way, the caller is told to write, and no writer is started
        let first = outbox.postWritingIfIdle(.pong)
        #expect(first.result == .queued && first.mustWrite)
        let writing = outbox.writing.load(ordering: .relaxed)
        #expect(writing)
        // And while it writes, a second such post leaves the frame to it
        let second = outbox.postWritingIfIdle(.pong)
        #expect(second.result == .queued && !second.mustWrite)
        // Then, as the writer, it takes both and goes idle; a plain post afterwards starts a writer
        var batch: [Outbox.Item] = []
        _ = outbox.takeReady(upTo: 8, into: &batch)
        #expect(batch.count == 2)
        for item in batch { outbox.written(item) }
        #expect(outbox.writerGoesIdle())
        #expect(outbox.post(.pong) == .queued)
        #expect(started.load(ordering: .relaxed) == 1)
    }

    @Test("the last frame starts a writer like any other, and a closed outbox takes none")
    func finishAndClose() async throws {
        let (outbox, ledger) = Self.outboxWithSimulatedWriters()
        #expect(await outbox.finish(with: .goodbye))
        var spins = 0
        while ledger.taken.load(ordering: .relaxed) < 1 && spins < 1_000_000 {
            spins += 1
            await Task.yield()
        }
        #expect(ledger.taken.load(ordering: .relaxed) == 1)
        outbox.close()
        #expect(await outbox.finish(with: .goodbye) == false)
        #expect(outbox.post(.pong) == .closed)
    }
}
