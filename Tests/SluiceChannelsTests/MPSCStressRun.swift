import Testing

@testable import SluiceChannels

// One seeded stress run of the MPSC channel, used by `MPSCStressTests`: producers, a consumer, the cancellations
// and permits they use, and the check of the outcome against the sequential model.

/// What one producer did.
struct MPSCProducerLog: Sendable {
    /// Values whose send (or permit send, or trySend) returned normally, in order.
    var delivered: [Int] = []
    /// Sends and reserves that ended with `CancellationError`.
    var cancelled = 0
    /// Sends whose task was cancelled but which returned normally (the value was already in).
    var deliveredDespiteCancel = 0
    /// Operations refused because the receiver closed.
    var closed = 0
    var droppedPermits = 0
}

/// What the consumer did.
struct MPSCConsumerLog: Sendable {
    var received: [Int] = []
    var maxBuffered = 0
    var cancelledReceives = 0
    var sawEnd = false
}

/// Marks the current task cancelled, so that its next wait sees the flag before suspending.
private func cancelSelf() {
    withUnsafeCurrentTask { $0?.cancel() }
}

/// How a child operation is cancelled: before it starts waiting, right after it was started, after a few
/// yields, or never.
private enum CancelMode: CaseIterable {
    case beforeWaiting, immediately, afterYields, never
}

/// How much cancellation a run exercised: a run that cancelled nothing proves little.
struct MPSCStressCoverage {
    var cancelledSends = 0
    var cancelledReceives = 0

    static func += (total: inout Self, run: Self) {
        total.cancelledSends += run.cancelledSends
        total.cancelledReceives += run.cancelledReceives
    }

    /// Expects receives, and sends where they regularly wait (small capacities), to have been cancelled.
    func expectExercised(sendsWait: Bool, _ sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(self.cancelledReceives > 0, "no receive was cancelled", sourceLocation: sourceLocation)
        if sendsWait { #expect(self.cancelledSends > 0, "no send was cancelled", sourceLocation: sourceLocation) }
    }
}

struct MPSCStressRun {
    let seed: UInt64
    let capacity: Int?
    let threads: Int
    let permits: Bool
    /// Close the receiver after receiving this many values.
    let closeAt: Int?
    /// Ring slots, if smaller than the default, so that values spill beyond the ring.
    var ringLimit: Int? = nil
    var producers = 6
    let sendsPerProducer = 120

    var label: String {
        "seed \(self.seed), capacity \(self.capacity.map(String.init) ?? "unbounded"), threads \(self.threads)"
            + (self.permits ? ", permits" : "") + (self.closeAt.map { ", close at \($0)" } ?? "")
            + (self.ringLimit.map { ", ring \($0)" } ?? "") + ", \(self.producers) producers"
    }

    func run() async -> MPSCStressCoverage {
        let harness = ParkingHarness(threads: self.threads)
        let aborting = HarnessFlag()
        var sender: MPSC<Int>.Sender?
        let receiver: MPSC<Int>.Receiver
        if let ringLimit {
            (sender, receiver) = MPSC<Int>.channel(capacity: self.capacity, ringLimit: ringLimit)
        } else if let capacity {
            (sender, receiver) = MPSC<Int>.channel(capacity: capacity)
        } else {
            (sender, receiver) = MPSC<Int>.unboundedChannel()
        }
        var producerProbes: [HarnessTask<MPSCProducerLog>] = []
        for index in 0..<self.producers {
            let producerSender = sender!
            let run = self
            producerProbes.append(
                harness.spawn { await run.produce(index, producerSender, harness, aborting) }
            )
        }
        sender = nil  // from now on only the producers hold the sender
        let run = self
        let consumer = harness.spawn { await run.consume(receiver, harness, aborting) }

        // Wait for the end, or for every task to be parked with work left: a deadlock.
        var deadlocked = false
        for _ in 0..<20_000_000 {
            let quiet = harness.isQuiescent  // read first: once quiet, nothing moves, so the flags below are exact
            if consumer.isFinished && producerProbes.allSatisfy({ $0.isFinished }) { break }
            if quiet {
                deadlocked = true
                break
            }
            await Task.yield()
        }
        if deadlocked {
            // Diagnose: at quiescence no permit is held (a holder only ever parks in `Task.yield`, which keeps a
            // job queued), so an empty buffer means every slot is free. A refused trySend then proves waiting
            // senders that were never admitted. A probe that gets in is filtered out below (values are >= 0).
            let state = receiver.storage.diagnosis
            let buffered = receiver.count
            let probe = describe(receiver.storage.trySend(-1))
            let diagnosis =
                buffered == 0 && probe == "full(-1)"
                ? "every slot is free, yet trySend is refused: senders are queued but were never admitted"
                : "trySend answered \(probe)"
            let parked = producerProbes.filter { !$0.isFinished }.count
            Issue.record(
                """
                deadlock (\(self.label)): \(parked) producers parked, consumer \
                \(consumer.isFinished ? "finished" : "parked"), \(buffered) values buffered; \(diagnosis); \
                channel: \(state)
                """
            )
            aborting.set()
            harness.cancelAll()
            await harness.quiesce()
        }

        // Check the run against the model.
        var logs: [MPSCProducerLog] = []
        for probe in producerProbes { logs.append((try? await probe.result.get()) ?? MPSCProducerLog()) }
        var consumed = (try? await consumer.result.get()) ?? MPSCConsumerLog()
        if deadlocked {
            while let value = try? receiver.tryRecv() { consumed.received.append(value) }
            consumed.received.removeAll { $0 < 0 }
        } else {
            #expect(consumed.sawEnd, "the consumer should have seen the end (\(self.label))")
            #expect(throws: MPSC<Int>.TryRecvError.disconnected) { try receiver.tryRecv() }
        }
        for (index, log) in logs.enumerated() {
            let mine = consumed.received.filter { $0 / 1_000_000 == index }
            #expect(
                mine == log.delivered,
                "producer \(index): received exactly its successful sends, once each, in order (\(self.label))"
            )
        }
        #expect(consumed.received.count == logs.reduce(0) { $0 + $1.delivered.count }, "\(self.label)")
        if let capacity { #expect(consumed.maxBuffered <= capacity, "\(self.label)") }
        return MPSCStressCoverage(
            cancelledSends: logs.reduce(0) { $0 + $1.cancelled },
            cancelledReceives: consumed.cancelledReceives
        )
    }

    // MARK: Producer

    private func produce(
        _ index: Int,
        _ sender: MPSC<Int>.Sender,
        _ harness: ParkingHarness,
        _ aborting: HarnessFlag
    ) async -> MPSCProducerLog {
        var rng = SplitMix64Generator(seed: self.seed &* 1_000_003 &+ UInt64(index))
        var log = MPSCProducerLog()
        var sawClosed = false
        for sequence in 0..<self.sendsPerProducer where !aborting.isSet {
            let value = index * 1_000_000 + sequence
            // Pause now and then, so that the consumer also finds the channel empty and has to wait.
            if rng.chance(30) {
                for _ in 0..<(1 + rng.below(4)) { await Task.yield() }
            }
            let outcome: Outcome
            switch rng.below(self.permits ? 12 : 8) {
            case 0...2:
                outcome = await Self.classify(value) { try await sender.send(value) }
            case 3:
                switch sender.trySend(value) {
                case .success: outcome = .delivered
                case .failure(.full(let handed)): outcome = handed == value ? .refused : .wrongValue
                case .failure(.closed(let handed)): outcome = handed == value ? .closed : .wrongValue
                }
            case 4...7:
                let mode = CancelMode.allCases[rng.below(4)]
                let yields = rng.below(6)
                let child = harness.spawn {
                    if mode == .beforeWaiting { cancelSelf() }
                    try await sender.send(value)
                }
                outcome = await Self.classify(value, mode: mode, yields: yields, child: child)
            case 8...10:
                let mode = CancelMode.allCases[rng.below(4)]
                let yields = rng.below(6)
                let hold = rng.below(3)
                let drop = rng.chance(25)
                let child = harness.spawn { () -> Bool in
                    if mode == .beforeWaiting { cancelSelf() }
                    let permit = try await sender.reserve()
                    for _ in 0..<hold { await Task.yield() }
                    if drop {
                        _ = consume permit
                        return false
                    }
                    try permit.send(value)
                    return true
                }
                outcome = await Self.classify(value, mode: mode, yields: yields, child: child)
            default:
                outcome = Self.tryReserveAndSend(sender, value, drop: rng.chance(25))
            }
            switch outcome {
            case .delivered, .deliveredDespiteCancel:
                #expect(!sawClosed, "a send succeeded after this producer saw the channel closed (\(self.label))")
                log.delivered.append(value)
                if outcome == .deliveredDespiteCancel { log.deliveredDespiteCancel += 1 }
            case .cancelled: log.cancelled += 1
            case .closed:
                sawClosed = true
                log.closed += 1
                #expect(self.closeAt != nil, "a send failed as closed although nobody closed (\(self.label))")
            case .droppedPermit: log.droppedPermits += 1
            case .refused: break
            case .wrongValue: Issue.record("an error handed back another value than \(value) (\(self.label))")
            }
        }
        return log
    }

    private enum Outcome: Equatable {
        case delivered, deliveredDespiteCancel, cancelled, closed, refused, droppedPermit, wrongValue
    }

    /// Takes a permit without waiting, then spends or drops it.
    private static func tryReserveAndSend(_ sender: MPSC<Int>.Sender, _ value: Int, drop: Bool) -> Outcome {
        let permit: MPSC<Int>.Permit
        do {
            permit = try sender.tryReserve()
        } catch {
            switch error {
            case .full: return .refused
            case .closed: return .closed
            }
        }
        if drop {
            _ = consume permit
            return .droppedPermit
        }
        do {
            try permit.send(value)
            return .delivered
        } catch {
            return error.value == value ? .closed : .wrongValue
        }
    }

    /// Runs a send that is not cancelled on purpose.
    private static func classify(_ value: Int, _ body: () async throws -> Void) async -> Outcome {
        do {
            try await body()
            return .delivered
        } catch let error as SendError<Int> {
            return error.value == value ? .closed : .wrongValue
        } catch is ClosedError {
            return .closed
        } catch is CancellationError {
            return .cancelled  // only the deadlock unwinding cancels these
        } catch {
            Issue.record("unexpected error \(error)")
            return .wrongValue
        }
    }

    /// Cancels `child` as `mode` says and classifies how it ended. A `false` result is a dropped permit.
    private static func classify<Success>(
        _ value: Int,
        mode: CancelMode,
        yields: Int,
        child: HarnessTask<Success>
    ) async -> Outcome {
        switch mode {
        case .immediately: child.cancel()
        case .afterYields:
            for _ in 0..<yields { await Task.yield() }
            child.cancel()
        case .beforeWaiting, .never: break
        }
        switch await child.result {
        case .success(let sent as Bool) where !sent: return .droppedPermit
        case .success: return mode == .never ? .delivered : .deliveredDespiteCancel
        case .failure(let error as SendError<Int>): return error.value == value ? .closed : .wrongValue
        case .failure(is ClosedError): return .closed
        case .failure(is CancellationError): return .cancelled  // with `.never`, only from the deadlock unwinding
        case .failure(let error):
            Issue.record("unexpected error \(error)")
            return .wrongValue
        }
    }

    // MARK: Consumer

    private func consume(
        _ receiver: MPSC<Int>.Receiver,
        _ harness: ParkingHarness,
        _ aborting: HarnessFlag
    ) async -> MPSCConsumerLog {
        var rng = SplitMix64Generator(seed: self.seed &* 7_000_003)
        var log = MPSCConsumerLog()
        var batch: [Int] = []
        var closed = false
        do {
            while !aborting.isSet {
                if let closeAt, !closed, log.received.count >= closeAt {
                    receiver.close()
                    closed = true
                }
                log.maxBuffered = max(log.maxBuffered, receiver.count)
                var got: [Int] = []
                switch rng.below(8) {
                case 0, 1:
                    got = try await receiver.recv().map { [$0] } ?? []
                case 2:
                    got = try await receiver.recv(upTo: 1 + rng.below(8))
                case 3:
                    batch.removeAll(keepingCapacity: true)
                    let count = try await receiver.recv(upTo: 1 + rng.below(8), into: &batch)
                    #expect(count == batch.count)
                    got = batch
                case 4:
                    do throws(MPSC<Int>.TryRecvError) {
                        got = [try receiver.tryRecv()]
                    } catch .empty {
                        continue  // the next round may wait; a tryRecv never spins twice on its own
                    } catch {
                        got = []
                    }
                default:
                    // Usually take everything ready first, so that the cancellable receive finds the channel
                    // empty and has to wait.
                    if rng.chance(70) {
                        while let value = try? receiver.tryRecv() { log.received.append(value) }
                    }
                    let mode = CancelMode.allCases[rng.below(4)]
                    let yields = rng.below(6)
                    let limit = rng.chance(50) ? 1 : 1 + rng.below(8)
                    let child = harness.spawn { () -> [Int] in
                        if mode == .beforeWaiting { cancelSelf() }
                        if limit == 1 { return try await receiver.recv().map { [$0] } ?? [] }
                        return try await receiver.recv(upTo: limit)
                    }
                    switch mode {
                    case .immediately: child.cancel()
                    case .afterYields:
                        for _ in 0..<yields { await Task.yield() }
                        child.cancel()
                    case .beforeWaiting, .never: break
                    }
                    switch await child.result {
                    case .success(let values): got = values
                    case .failure:
                        log.cancelledReceives += 1
                        continue  // nothing was taken: try again
                    }
                }
                if got.isEmpty {
                    log.sawEnd = true
                    break
                }
                log.received.append(contentsOf: got)
            }
        } catch {
            // Cancelled by the deadlock unwinding.
        }
        return log
    }
}
