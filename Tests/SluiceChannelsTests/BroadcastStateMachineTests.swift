import Testing

@testable import SluiceChannels

/// The broadcast engine driven directly: no locks, no tasks (except real continuations created and resumed
/// synchronously inside `withUnsafeContinuation`, so that waiters are real).
@Suite("Broadcast state machine")
struct BroadcastStateMachineTests {
    typealias Machine = Broadcast<Int>.StateMachine

    /// Receives once without waiting and returns what the machine answered, as a comparable description.
    static func receive(_ machine: inout Machine, _ receiver: Int) -> Received {
        switch machine.receive(receiver: receiver, mayWait: false) {
        case .value(let value): return .value(value)
        case .lagged(let missed): return .lagged(missed)
        case .closed: return .closed
        case .empty: return .empty
        case .suspend: return .suspend
        }
    }

    enum Received: Equatable {
        case value(Int), lagged(UInt64), closed, empty, suspend
    }

    static func outcome(_ outcome: Broadcast<Int>.ReceiveOutcome) -> Received {
        switch outcome {
        case .value(let value): return .value(value)
        case .lagged(let missed): return .lagged(missed)
        case .closed: return .closed
        case .cancelled: return .suspend
        }
    }

    @Test("the ring grows only while a receiver owes values, up to the capacity, and lag stays exact")
    func ringGrowsOnDemand() {
        // Given a large capacity and a receiver that keeps up: the ring keeps its initial size
        var machine = Machine(capacity: 1_000)
        let fast = machine.subscribe()
        for value in 0..<5_000 {
            _ = machine.send(value)
            #expect(Self.receive(&machine, fast) == .value(value))
        }
        #expect(machine.slots.count == Machine.initialSlots)
        // When a second receiver stops reading, the ring doubles as it falls behind, and nothing lags yet
        let slow = machine.subscribe()
        for value in 5_000..<5_050 {
            _ = machine.send(value)
            #expect(Self.receive(&machine, fast) == .value(value))
        }
        #expect(machine.slots.count == 64)
        #expect(machine.invariantViolation() == nil)
        for value in 5_000..<5_050 { #expect(Self.receive(&machine, slow) == .value(value)) }
        #expect(Self.receive(&machine, slow) == .empty)
        // Given a capacity that is not a power of two, a receiver that never reads lags by the exact count once
        // the ring is at the capacity
        var bounded = Machine(capacity: 40)
        let idle = bounded.subscribe()
        for value in 0..<100 {
            _ = bounded.send(value)
            #expect(bounded.invariantViolation() == nil)
        }
        #expect(bounded.slots.count == 40)
        #expect(Self.receive(&bounded, idle) == .lagged(60))
        for value in 60..<100 { #expect(Self.receive(&bounded, idle) == .value(value)) }
        #expect(bounded.heldValueCount == 0)
    }

    @Test("a send with no receiver stores nothing and reports zero")
    func sendWithoutReceivers() {
        // Given a machine nobody subscribed to
        var machine = Machine(capacity: 2)
        // When a value is sent
        guard case .noReceivers = machine.send(1) else {
            Issue.record("expected .noReceivers")
            return
        }
        // Then no position was used and no slot holds anything, so a later subscriber starts empty
        #expect(machine.tail == 0)
        #expect(machine.heldValueCount == 0)
        let late = machine.subscribe()
        #expect(Self.receive(&machine, late) == .empty)
    }

    @Test("a value is stored once with a count of its readers and released by the last one")
    func slotCountsReaders() {
        // Given three receivers
        var machine = Machine(capacity: 4)
        let receivers = [machine.subscribe(), machine.subscribe(), machine.subscribe()]
        // When one value is sent
        guard case .sent(let count, let wakeup, let displaced) = machine.send(7) else {
            Issue.record("expected .sent")
            return
        }
        // Then one slot holds it for all three, and nobody was waiting or overwritten
        #expect(count == 3)
        #expect(wakeup == nil)
        #expect(displaced == nil)
        #expect(machine.heldValueCount == 1)
        #expect(machine.remaining(at: 0) == 3)
        // And each read lowers the count; the last read empties the slot
        #expect(Self.receive(&machine, receivers[0]) == .value(7))
        #expect(machine.remaining(at: 0) == 2)
        #expect(Self.receive(&machine, receivers[1]) == .value(7))
        #expect(machine.heldValueCount == 1)
        #expect(Self.receive(&machine, receivers[2]) == .value(7))
        #expect(machine.remaining(at: 0) == 0)
        #expect(machine.heldValueCount == 0)
        // And a receiver that read everything finds nothing more
        #expect(Self.receive(&machine, receivers[2]) == .empty)
    }

    @Test("a subscriber starts at the tail and owes nothing sent before")
    func subscribeStartsAtTail() {
        // Given one value sent to an early receiver
        var machine = Machine(capacity: 4)
        let early = machine.subscribe()
        _ = machine.send(1)
        // When a second receiver subscribes, and another value is sent
        let late = machine.subscribe()
        #expect(machine.cursor(of: late) == 1)
        _ = machine.send(2)
        // Then the first slot is owed by the early receiver only, the second by both
        #expect(machine.remaining(at: 0) == 1)
        #expect(machine.remaining(at: 1) == 2)
        #expect(Self.receive(&machine, late) == .value(2))
        #expect(Self.receive(&machine, late) == .empty)
        #expect(Self.receive(&machine, early) == .value(1))
        #expect(Self.receive(&machine, early) == .value(2))
    }

    @Test("a lagged receiver gets the exact count, then resumes at the oldest held value")
    func lagExactCount() {
        // Given a receiver that reads nothing while five values go through a ring of two
        var machine = Machine(capacity: 2)
        let receiver = machine.subscribe()
        var displacedValues: [Int] = []
        for value in 0..<5 {
            guard case .sent(_, _, let displaced) = machine.send(value) else {
                Issue.record("expected .sent")
                return
            }
            if let displaced { displacedValues.append(displaced) }
        }
        // Then every overwritten value came back to be destroyed, and only the last two are held
        #expect(displacedValues == [0, 1, 2])
        #expect(machine.heldValueCount == 2)
        #expect(machine.pendingCount(receiver: receiver) == 5)
        // When it receives, it learns it missed exactly three, then reads 3 and 4 in order
        #expect(Self.receive(&machine, receiver) == .lagged(3))
        #expect(machine.cursor(of: receiver) == 3)
        #expect(Self.receive(&machine, receiver) == .value(3))
        #expect(Self.receive(&machine, receiver) == .value(4))
        #expect(Self.receive(&machine, receiver) == .empty)
        #expect(machine.heldValueCount == 0)
    }

    @Test("an unsubscribed receiver releases what only it owed and frees its id for reuse")
    func unsubscribeReleases() {
        // Given two receivers, one of which already read the first value
        var machine = Machine(capacity: 4)
        let reader = machine.subscribe()
        let idle = machine.subscribe()
        _ = machine.send(10)
        _ = machine.send(11)
        #expect(Self.receive(&machine, reader) == .value(10))
        // When the idle receiver goes away
        let released = machine.unsubscribe(receiver: idle)
        // Then the value only it still owed is handed back; the value the reader still owes stays
        #expect(released == [10])
        #expect(machine.remaining(at: 1) == 1)
        #expect(machine.heldValueCount == 1)
        #expect(machine.receiverCount == 1)
        // And its id is reused by the next subscriber, which starts at the tail
        let next = machine.subscribe()
        #expect(next == idle)
        #expect(machine.receiverCount == 2)
        #expect(Self.receive(&machine, next) == .empty)
    }

    @Test("after the sender is gone a receiver drains, then sees closed")
    func closeAfterDrain() {
        // Given a receiver with two unread values
        var machine = Machine(capacity: 4)
        let receiver = machine.subscribe()
        _ = machine.send(1)
        _ = machine.send(2)
        // When the sender is dropped, with nobody waiting
        #expect(machine.senderDropped() == nil)
        // Then the values come first, then the end, every time after
        #expect(Self.receive(&machine, receiver) == .value(1))
        #expect(Self.receive(&machine, receiver) == .value(2))
        #expect(Self.receive(&machine, receiver) == .closed)
        #expect(Self.receive(&machine, receiver) == .closed)
    }

    @Test("a batch reports a lag at the start instead of values, and stops at a lag found later")
    func batchLag() {
        // Given a receiver that lagged by one in a ring of two
        var machine = Machine(capacity: 2)
        let receiver = machine.subscribe()
        for value in 0..<3 { _ = machine.send(value) }
        var values: [Int] = []
        // When it receives a batch, the lag is the whole answer
        guard case .lagged(1) = machine.receive(receiver: receiver, upTo: 8, into: &values) else {
            Issue.record("expected .lagged(1)")
            return
        }
        #expect(values.isEmpty)
        // Then the next batch takes what is held, up to the limit
        guard case .values(1) = machine.receive(receiver: receiver, upTo: 1, into: &values) else {
            Issue.record("expected .values(1)")
            return
        }
        #expect(values == [1])
        // When it falls behind again, collecting ready values stops at the gap without consuming the lag
        for value in 3..<6 { _ = machine.send(value) }
        #expect(machine.receiveReady(receiver: receiver, upTo: 8, into: &values) == 0)
        #expect(Self.receive(&machine, receiver) == .lagged(2))
        #expect(machine.receiveReady(receiver: receiver, upTo: 8, into: &values) == 2)
        #expect(values == [1, 4, 5])
    }

    @Test("a send hands its value to each waiting receiver and keeps it only for the others")
    func sendWakesWaiters() async {
        var machine = Machine(capacity: 4)
        let waiting = machine.subscribe()
        let idle = machine.subscribe()
        // Given a receiver whose task is suspended
        let outcome = await withUnsafeContinuation { continuation in
            guard case .suspend(let id) = machine.receive(receiver: waiting, mayWait: true) else {
                preconditionFailure("expected .suspend")
            }
            let stored = machine.receiveSuspended(
                receiver: waiting,
                id: id,
                continuation: continuation,
                isCancelled: false
            )
            #expect(stored == nil)
            #expect(machine.waiterCount == 1)
            // When a value is sent
            guard case .sent(let count, let wakeup?, nil) = machine.send(5) else {
                preconditionFailure("expected .sent with a wakeup")
            }
            // Then the waiter is handed the value, and the slot counts only the idle receiver
            #expect(count == 2)
            #expect(wakeup.continuations.count == 1)
            #expect(machine.waiterCount == 0)
            #expect(machine.remaining(at: 0) == 1)
            #expect(machine.cursor(of: waiting) == 1)
            wakeup.resumeAll()
        }
        #expect(Self.outcome(outcome) == .value(5))
        #expect(Self.receive(&machine, idle) == .value(5))
        #expect(machine.heldValueCount == 0)
    }

    @Test("a value every receiver was waiting for is never stored")
    func allWaitingStoresNothing() async {
        var machine = Machine(capacity: 4)
        let receiver = machine.subscribe()
        let outcome = await withUnsafeContinuation { continuation in
            // Given the only receiver waiting
            guard case .suspend(let id) = machine.receive(receiver: receiver, mayWait: true) else {
                preconditionFailure("expected .suspend")
            }
            _ = machine.receiveSuspended(receiver: receiver, id: id, continuation: continuation, isCancelled: false)
            // When a value is sent, then it goes to the waiter and no slot keeps it
            guard case .sent(1, let wakeup?, nil) = machine.send(9) else { preconditionFailure("expected .sent") }
            #expect(machine.heldValueCount == 0)
            #expect(machine.remaining(at: 0) == 0)
            wakeup.resumeAll()
        }
        #expect(Self.outcome(outcome) == .value(9))
    }

    @Test("cancelling a stored waiter removes it; cancelling an already resumed one does nothing")
    func cancelWaiter() async {
        var machine = Machine(capacity: 4)
        let receiver = machine.subscribe()
        var waiterID: UInt64 = 0
        let outcome = await withUnsafeContinuation { continuation in
            guard case .suspend(let id) = machine.receive(receiver: receiver, mayWait: true) else {
                preconditionFailure("expected .suspend")
            }
            waiterID = id
            _ = machine.receiveSuspended(receiver: receiver, id: id, continuation: continuation, isCancelled: false)
            // When it is cancelled while stored, it is handed back to resume with .cancelled
            guard let resumption = machine.receiveCancelled(id: id) else { preconditionFailure("expected the waiter") }
            #expect(machine.waiterCount == 0)
            resumption.resume()
        }
        guard case .cancelled = outcome else {
            Issue.record("expected .cancelled")
            return
        }
        // Then a second cancellation finds nothing, and the next value is still there for the receiver
        #expect(machine.receiveCancelled(id: waiterID) == nil)
        _ = machine.send(3)
        #expect(Self.receive(&machine, receiver) == .value(3))
        // And the receiver has no waiter left, so it can unsubscribe
        #expect(machine.unsubscribe(receiver: receiver).isEmpty)
    }

    @Test("a waiter registered after cancellation or after a value arrived is resumed at once")
    func suspendedRechecks() async {
        var machine = Machine(capacity: 4)
        let receiver = machine.subscribe()
        // Given a task that is already cancelled when it registers
        let cancelled = await withUnsafeContinuation { continuation in
            guard case .suspend(let id) = machine.receive(receiver: receiver, mayWait: true) else {
                preconditionFailure("expected .suspend")
            }
            machine.receiveSuspended(receiver: receiver, id: id, continuation: continuation, isCancelled: true)?
                .resume()
        }
        guard case .cancelled = cancelled else {
            Issue.record("expected .cancelled")
            return
        }
        #expect(machine.waiterCount == 0)
        // Given a value sent between the decision to suspend and the registration
        let late = await withUnsafeContinuation { continuation in
            guard case .suspend(let id) = machine.receive(receiver: receiver, mayWait: true) else {
                preconditionFailure("expected .suspend")
            }
            _ = machine.send(8)
            machine.receiveSuspended(receiver: receiver, id: id, continuation: continuation, isCancelled: false)?
                .resume()
        }
        #expect(Self.outcome(late) == .value(8))
        #expect(machine.waiterCount == 0)
    }

    @Test("dropping the sender wakes every waiter with closed")
    func senderDroppedWakesWaiters() async {
        var machine = Machine(capacity: 4)
        let first = machine.subscribe()
        let second = machine.subscribe()
        let outcome = await withUnsafeContinuation { continuation in
            guard case .suspend(let id) = machine.receive(receiver: first, mayWait: true) else {
                preconditionFailure("expected .suspend")
            }
            _ = machine.receiveSuspended(receiver: first, id: id, continuation: continuation, isCancelled: false)
            guard let wakeup = machine.senderDropped() else { preconditionFailure("expected a wakeup") }
            #expect(wakeup.continuations.count == 1)
            wakeup.resumeAll()
        }
        #expect(Self.outcome(outcome) == .closed)
        #expect(Self.receive(&machine, second) == .closed)
        var values: [Int] = []
        #expect(machine.receive(receiver: second, upTo: 4, into: &values).isClosed)
    }

    @Test("random sends, receives and unsubscriptions match a sequential model", arguments: [1, 2, 3, 4] as [UInt64])
    func randomAgainstModel(seed: UInt64) {
        // The model: every value sent is its position; a receiver is a cursor; a receiver more than `capacity`
        // behind lags by exactly the distance to the oldest held position.
        var random = TestSupport.SplitMix64(seed: seed)
        let capacity = Int.random(in: 1...5, using: &random)
        var machine = Machine(capacity: capacity)
        var sent = 0
        var cursors: [Int: Int] = [:]  // receiver id -> model cursor
        for step in 0..<3_000 {
            switch Int.random(in: 0..<10, using: &random) {
            case 0 where cursors.count < 6:
                let id = machine.subscribe()
                #expect(cursors[id] == nil, "id \(id) handed out twice")
                cursors[id] = sent
            case 1:
                guard let id = cursors.keys.sorted().randomElement(using: &random), let cursor = cursors[id] else {
                    break
                }
                let released = machine.unsubscribe(receiver: id)
                cursors[id] = nil
                // It releases exactly the held values it owed that no other receiver still owes.
                let expected = (max(cursor, sent - capacity)..<max(sent, cursor)).filter { position in
                    !cursors.values.contains { $0 <= position }
                }
                #expect(released == expected, "step \(step)")
            case 2, 3, 4:
                let action = machine.send(sent)
                if cursors.isEmpty {
                    guard case .noReceivers = action else {
                        Issue.record("step \(step): expected .noReceivers")
                        return
                    }
                } else {
                    guard case .sent(let count, nil, _) = action else {
                        Issue.record("step \(step): expected .sent without waiters")
                        return
                    }
                    #expect(count == cursors.count)
                    sent += 1
                }
            default:
                guard let id = cursors.keys.sorted().randomElement(using: &random), let cursor = cursors[id] else {
                    break
                }
                let oldest = max(0, sent - capacity)
                let expected: Received
                if cursor < oldest {
                    expected = .lagged(UInt64(oldest - cursor))
                    cursors[id] = oldest
                } else if cursor < sent {
                    expected = .value(cursor)
                    cursors[id] = cursor + 1
                } else {
                    expected = .empty
                }
                #expect(Self.receive(&machine, id) == expected, "step \(step)")
            }
            if let violation = machine.invariantViolation() {
                Issue.record("step \(step): \(violation)")
                return
            }
            #expect(machine.receiverCount == cursors.count)
        }
        // Every receiver gone: nothing may stay held.
        for id in cursors.keys { _ = machine.unsubscribe(receiver: id) }
        #expect(machine.heldValueCount == 0)
    }

}

extension Broadcast.ReceiveBatchAction {
    fileprivate var isClosed: Bool {
        if case .closed = self { return true }
        return false
    }
}
