import Glibc
import Synchronization
import Testing

@testable import SluiceIO

@Suite("Readiness bookkeeping")
struct RegistrationTests {
    @Test("a wait without a task runs its action once: at once when ready, else on the event, the close or endWait")
    func waitWithoutATask() async throws {
        final class Calls: Sendable {
            let count = Atomic<Int>(0)
            var value: Int { self.count.load(ordering: .relaxed) }
            func add() { self.count.wrappingAdd(1, ordering: .relaxed) }
        }
        // Given a registration that is readable: the action runs at once, on this thread
        let registration = Registration()
        registration.eventsArrived(readable: true, writable: false, tick: 1)
        let ready = Calls()
        registration.whenReady(.read) { ready.add() }
        #expect(ready.value == 1)
        // When readiness is gone, the action waits for the next read event (a write event is not it)
        registration.clearReadiness(.read, ifTick: registration.tick(.read))
        let onEvent = Calls()
        registration.whenReady(.read) { onEvent.add() }
        registration.eventsArrived(readable: false, writable: true, tick: 2)
        #expect(onEvent.value == 0)
        registration.eventsArrived(readable: true, writable: false, tick: 3)
        registration.eventsArrived(readable: true, writable: false, tick: 4)
        #expect(onEvent.value == 1)
        // And an ended wait runs it, unless only a task's wait is to end
        registration.clearReadiness(.read, ifTick: registration.tick(.read))
        let ended = Calls()
        registration.whenReady(.read) { ended.add() }
        registration.endWait(.read, tasksOnly: true)
        #expect(ended.value == 0)
        registration.endWait(.read)
        registration.endWait(.read)
        #expect(ended.value == 1)
        // And a close runs it; a task may wait again once it has run
        let closed = Calls()
        registration.whenReady(.read) { closed.add() }
        registration.close()
        #expect(closed.value == 1)
        await #expect(throws: IOError.self) { try await registration.waitUntilReady(.read) }
    }

    @Test(
        "endWait(tasksOnly:) ends a task's wait with CancellationError without cancelling the task",
        .timeLimit(.minutes(1))
    )
    func endWaitOfATask() async throws {
        let registration = Registration()
        let done = Atomic<Bool>(false)
        let waiter = Task {
            defer { done.store(true, ordering: .releasing) }
            do {
                try await registration.waitUntilReady(.read)
                return "ready"
            } catch is CancellationError {
                return Task.isCancelled ? "cancelled task" : "wait ended"
            } catch {
                return "\(error)"
            }
        }
        // The waiter may not be stored yet: end the wait until it has ended (bounded)
        for _ in 0..<5_000 where !done.load(ordering: .acquiring) {
            registration.endWait(.read, tasksOnly: true)
            try await Task.sleep(for: .milliseconds(1))
        }
        #expect(await waiter.value == "wait ended")
    }

    @Test("an event that lands between EAGAIN and the clear is not lost (the edge-triggered race)")
    func readinessRefreshedAfterSnapshotSurvivesClear() async throws {
        // Given a socket that was readable at tick 1
        let registration = Registration()
        registration.eventsArrived(readable: true, writable: false, tick: 1)
        // When a reader snapshots tick 1, its read returns EAGAIN, and before it clears, new data arrives (tick 2)
        let snapshot = registration.tick(.read)
        registration.eventsArrived(readable: true, writable: false, tick: 2)
        registration.clearReadiness(.read, ifTick: snapshot)
        // Then the readiness survived: the wait returns at once instead of sleeping through the only edge
        try await registration.waitUntilReady(.read)
    }

    @Test("a clear with the current tick forgets readiness, so the next wait suspends until an event")
    func clearWithCurrentTickForgets() async throws {
        let registration = Registration()
        registration.eventsArrived(readable: true, writable: false, tick: 1)
        registration.clearReadiness(.read, ifTick: registration.tick(.read))
        let waiter = Task { try await registration.waitUntilReady(.read) }
        // The waiter cannot finish until an event arrives; deliver one and it must.
        for _ in 0..<1000 { await Task.yield() }
        registration.eventsArrived(readable: true, writable: false, tick: 2)
        try await waiter.value
    }

    @Test("a hang-up is sticky: a clear after a short read does not forget an end that came with the data")
    func hangupSurvivesClear() async throws {
        // Given data and the peer's FIN reported in one edge
        let registration = Registration()
        registration.eventsArrived(readable: true, writable: false, readFinal: true, tick: 1)
        // When a short read clears read readiness with the current tick
        registration.clearReadiness(.read, ifTick: registration.tick(.read))
        // Then the next wait still returns at once, so the reader gets to see the end
        try await registration.waitUntilReady(.read)
        // While writes, which the hang-up did not end, wait as before
        registration.eventsArrived(readable: false, writable: true, tick: 2)
        registration.clearReadiness(.write, ifTick: registration.tick(.write))
        let writer = Task { try await registration.waitUntilReady(.write) }
        for _ in 0..<100 { await Task.yield() }
        registration.eventsArrived(readable: false, writable: true, tick: 3)
        try await writer.value
    }

    @Test("a stale token from a closed registration finds nothing, even after its slot is reused")
    func staleTokens() {
        var table = SlotTable()
        let first = Registration()
        let token = table.insert(first)
        #expect(table.lookup(token) === first)
        #expect(table.remove(token) === first)
        let second = Registration()
        let reused = table.insert(second)
        #expect(reused & 0xFFFF_FFFF == token & 0xFFFF_FFFF, "the slot is reused")
        #expect(table.lookup(token) == nil, "the old token is stale")
        #expect(table.lookup(reused) === second)
    }

    @Test("a closed registration fails current and later waits")
    func closeFailsWaits() async throws {
        let registration = Registration()
        let waiter = Task { try await registration.waitUntilReady(.write) }
        for _ in 0..<100 { await Task.yield() }
        registration.close()
        await #expect(throws: IOError.self) { try await waiter.value }
        await #expect(throws: IOError.self) { try await registration.waitUntilReady(.read) }
    }

    @Test("the syscall wrapper retries nothing on success, maps EAGAIN to wouldBlock and names other failures")
    func syscallWrapper() throws {
        #expect(try syscall("ok") { 5 } == .processed(5))
        #expect(
            try syscall("eagain") { () -> Int in
                Glibc.errno = EAGAIN; return -1
            } == .wouldBlock
        )
        #expect(throws: IOError(errno: ECONNREFUSED, operation: "connect")) {
            _ = try syscall("connect") { () -> Int in
                Glibc.errno = ECONNREFUSED; return -1
            }
        }
        var calls = 0
        let result = try syscall("interrupted") { () -> Int in
            calls += 1
            if calls == 1 { Glibc.errno = EINTR; return -1 }
            return 7
        }
        #expect(result == .processed(7) && calls == 2)
    }
}
