import Testing

@testable import SluiceChannels

/// The oneshot state machine driven directly. Single waiters use continuations resumed before
/// `withUnsafeContinuation` returns; tests that need several waiters at once park helper tasks for their
/// continuations and then drive the machine from the test alone.
@Suite("Oneshot state machine")
struct OneshotStateMachineTests {
    typealias Machine = Oneshot<Int>.StateMachine
    typealias Outcome = Oneshot<Int>.ReceiveOutcome
    typealias ClosedOutcome = Oneshot<Int>.ClosedOutcome
    typealias Support = WatchOneshotTestSupport

    @Test("a new channel is empty: nothing to receive, and sending is open")
    func initialState() {
        var machine = Machine()
        #expect(machine.stateName == ".empty")
        #expect(machine.isClosedForSending == false)
        guard case .empty = machine.receive(mayWait: false) else {
            Issue.record("expected .empty")
            return
        }
    }

    @Test("a sent value is stored and every receive returns it again")
    func sendStoresValue() {
        var machine = Machine()
        guard case .stored = machine.send(7) else {
            Issue.record("expected .stored")
            return
        }
        #expect(machine.stateName == ".sent")
        for _ in 0..<2 {
            guard case .value(let value) = machine.receive(mayWait: true) else {
                Issue.record("expected .value")
                return
            }
            #expect(value == 7)
        }
    }

    @Test("a receive with nothing sent asks to suspend, with a fresh waiter id each time")
    func receiveSuspends() {
        var machine = Machine()
        guard case .suspend(let first) = machine.receive(mayWait: true),
            case .suspend(let second) = machine.receive(mayWait: true)
        else {
            Issue.record("expected .suspend twice")
            return
        }
        #expect(first != second)
    }

    @Test("a stored value waiter is resumed by the send with the value")
    func waiterResumedBySend() async {
        var machine = Machine()
        guard case .suspend(let id) = machine.receive(mayWait: true) else {
            Issue.record("expected .suspend")
            return
        }
        let outcome: Outcome = await withUnsafeContinuation { continuation in
            #expect(machine.receiveSuspended(id: id, continuation: continuation, isCancelled: false) == nil)
            #expect(machine.stateName == ".waiting")
            #expect(machine.receiveWaiterCount == 1)
            guard case .resumeReceivers(let wakeups) = machine.send(3) else {
                Issue.record("expected .resumeReceivers")
                return
            }
            wakeups.resumeAll()
        }
        #expect(outcome == .value(3))
        #expect(machine.stateName == ".sent")
    }

    @Test("several value waiters, the first inline and the rest in a list, all get the value")
    func severalWaitersResumedBySend() async {
        // Given three parked waiters registered in order
        var machine = Machine()
        let (continuations, tasks) = await Support.parkTasks(3, of: Outcome.self)
        for continuation in continuations {
            guard case .suspend(let id) = machine.receive(mayWait: true) else {
                Issue.record("expected .suspend")
                return
            }
            #expect(machine.receiveSuspended(id: id, continuation: continuation, isCancelled: false) == nil)
        }
        #expect(machine.receiveWaiterCount == 3)
        // When the value is sent
        guard case .resumeReceivers(let wakeups) = machine.send(5) else {
            Issue.record("expected .resumeReceivers")
            return
        }
        #expect(wakeups.waiters.count == 3)
        wakeups.resumeAll()
        // Then every one gets it
        for task in tasks { #expect(await task.value == .value(5)) }
        #expect(machine.receiveWaiterCount == 0)
    }

    @Test("a value waiter that finds the value when it registers is resumed at once with it")
    func registrationFindsValue() async {
        var machine = Machine()
        guard case .suspend(let id) = machine.receive(mayWait: true) else {
            Issue.record("expected .suspend")
            return
        }
        _ = machine.send(8)  // lands between the fast path and the registration
        let outcome: Outcome = await withUnsafeContinuation { continuation in
            machine.receiveSuspended(id: id, continuation: continuation, isCancelled: false)?.resume()
        }
        #expect(outcome == .value(8))
    }

    @Test("a registration made by a cancelled task resumes at once with cancelled and changes nothing")
    func cancelledRegistration() async {
        var machine = Machine()
        guard case .suspend(let id) = machine.receive(mayWait: true) else {
            Issue.record("expected .suspend")
            return
        }
        let outcome: Outcome = await withUnsafeContinuation { continuation in
            machine.receiveSuspended(id: id, continuation: continuation, isCancelled: true)?.resume()
        }
        #expect(outcome == .cancelled)
        #expect(machine.stateName == ".empty")
    }

    @Test("cancelling value waiters removes them; removing the last returns the state to empty")
    func cancelWaiters() async {
        // Given two parked waiters
        var machine = Machine()
        let (continuations, tasks) = await Support.parkTasks(2, of: Outcome.self)
        var ids: [UInt64] = []
        for continuation in continuations {
            guard case .suspend(let id) = machine.receive(mayWait: true) else {
                Issue.record("expected .suspend")
                return
            }
            ids.append(id)
            #expect(machine.receiveSuspended(id: id, continuation: continuation, isCancelled: false) == nil)
        }
        // When the first (inline) one is cancelled, the other stays
        machine.receiveCancelled(id: ids[0])?.resume()
        #expect(machine.receiveCancelled(id: ids[0]) == nil)
        #expect(machine.receiveWaiterCount == 1)
        #expect(machine.stateName == ".waiting")
        // When the second is cancelled too, the state is empty again
        machine.receiveCancelled(id: ids[1])?.resume()
        #expect(machine.stateName == ".empty")
        for task in tasks { #expect(await task.value == .cancelled) }
        // And a send now wakes nobody
        guard case .stored = machine.send(1) else {
            Issue.record("expected .stored")
            return
        }
    }

    @Test("the sender's drop before sending ends waiters and later receives with senderDropped")
    func senderDropped() async {
        var machine = Machine()
        guard case .suspend(let id) = machine.receive(mayWait: true) else {
            Issue.record("expected .suspend")
            return
        }
        let outcome: Outcome = await withUnsafeContinuation { continuation in
            #expect(machine.receiveSuspended(id: id, continuation: continuation, isCancelled: false) == nil)
            guard case .resumeReceivers(let wakeups) = machine.senderDropped() else {
                preconditionFailure("expected the waiter to be woken")
            }
            wakeups.resumeAll()
        }
        #expect(outcome == .senderDropped)
        guard case .senderDropped = machine.receive(mayWait: true) else {
            Issue.record("expected .senderDropped")
            return
        }
        let (undelivered, senders) = machine.receiverDropped()
        #expect(undelivered == nil)
        #expect(senders == nil)
    }

    @Test("close before a send: waiters end with closed, the sender's closed() waiters return, and sends fail")
    func closeBeforeSend() async {
        // Given a value waiter and a sender waiting in closed()
        var machine = Machine()
        let (receivers, receiverTasks) = await Support.parkTasks(1, of: Outcome.self)
        let (senders, senderTasks) = await Support.parkTasks(1, of: ClosedOutcome.self)
        guard case .suspend(let receiveID) = machine.receive(mayWait: true),
            case .suspend(let closedID) = machine.closed()
        else {
            Issue.record("expected .suspend")
            return
        }
        #expect(machine.receiveSuspended(id: receiveID, continuation: receivers[0], isCancelled: false) == nil)
        #expect(machine.closedSuspended(id: closedID, continuation: senders[0], isCancelled: false) == nil)
        #expect(machine.closedWaiterCount == 1)
        // When the receiver closes
        let (receiverWakeups, senderWakeups) = machine.receiverClosed()
        receiverWakeups?.resumeAll()
        senderWakeups?.resumeAll()
        // Then
        #expect(await receiverTasks[0].value == .closed)
        #expect(await senderTasks[0].value == .closed)
        #expect(machine.isClosedForSending == true)
        guard case .closed = machine.send(1), case .closed = machine.receive(mayWait: true) else {
            Issue.record("expected .closed")
            return
        }
        // And a second close, or the sender's drop, changes nothing
        let (moreReceivers, moreSenders) = machine.receiverClosed()
        #expect(moreReceivers == nil)
        #expect(moreSenders == nil)
        guard case .none = machine.senderDropped() else {
            Issue.record("expected nothing to wake")
            return
        }
        #expect(machine.stateName == ".closed")
    }

    @Test("close after a send keeps the value for the receiver")
    func closeAfterSend() {
        var machine = Machine()
        _ = machine.send(4)
        _ = machine.receiverClosed()
        guard case .value(let value) = machine.receive(mayWait: true) else {
            Issue.record("expected .value")
            return
        }
        #expect(value == 4)
    }

    @Test("the receiver's drop hands out an undelivered value to destroy, and closes sending")
    func receiverDroppedAfterSend() {
        var machine = Machine()
        _ = machine.send(6)
        let (undelivered, senders) = machine.receiverDropped()
        #expect(undelivered == 6)
        #expect(senders == nil)
        #expect(machine.stateName == ".closed")
    }

    @Test("the receiver's drop before a send resumes the sender's closed() waiter")
    func receiverDroppedBeforeSend() async {
        var machine = Machine()
        guard case .suspend(let id) = machine.closed() else {
            Issue.record("expected .suspend")
            return
        }
        let outcome: ClosedOutcome = await withUnsafeContinuation { continuation in
            #expect(machine.closedSuspended(id: id, continuation: continuation, isCancelled: false) == nil)
            let (undelivered, senders) = machine.receiverDropped()
            #expect(undelivered == nil)
            senders?.resumeAll()
        }
        #expect(outcome == .closed)
        #expect(machine.isClosedForSending == true)
        guard case .closed = machine.closed() else {
            Issue.record("expected .closed")
            return
        }
    }

    @Test("a closed() waiter is removed by cancellation, or resumed at once if registered already cancelled")
    func closedWaiterCancelled() async {
        var machine = Machine()
        guard case .suspend(let id) = machine.closed(), case .suspend(let other) = machine.closed() else {
            Issue.record("expected .suspend")
            return
        }
        let first: ClosedOutcome = await withUnsafeContinuation { continuation in
            #expect(machine.closedSuspended(id: id, continuation: continuation, isCancelled: false) == nil)
            machine.closedCancelled(id: id)?.resume()
            #expect(machine.closedCancelled(id: id) == nil)
        }
        let second: ClosedOutcome = await withUnsafeContinuation { continuation in
            machine.closedSuspended(id: other, continuation: continuation, isCancelled: true)?.resume()
        }
        #expect(first == .cancelled)
        #expect(second == .cancelled)
        #expect(machine.closedWaiterCount == 0)
    }

    @Test("the waiter list keeps arrival order across its inline slot and its overflow")
    func waiterListOrder() {
        var list = WaiterList<Int>()
        #expect(list.isEmpty)
        for waiter in 1...4 { list.append(waiter) }
        #expect(list.count == 4)
        #expect(list.removeFirst(where: { $0 == 1 }) == 1)  // the inline one: the next moves up
        #expect(list.removeFirst(where: { $0 == 3 }) == 3)
        #expect(list.removeFirst(where: { $0 == 9 }) == nil)
        var order: [Int] = []
        list.forEach { order.append($0) }
        #expect(order == [2, 4])
        list.append(5)
        order = []
        list.forEach { order.append($0) }
        #expect(order == [2, 4, 5])
    }

    // MARK: - A channel that delivers to an action

    @Test("a delivering channel hands its send to the action, once, and ends closed")
    func deliveringSend() {
        var machine = Machine(delivering: { _ in })
        #expect(machine.stateName == ".delivering")
        #expect(machine.isClosedForSending == false)
        guard case .deliver = machine.send(5) else {
            Issue.record("expected .deliver")
            return
        }
        #expect(machine.stateName == ".closed")
        guard case .none = machine.senderDropped() else {
            Issue.record("a used sender's drop wakes nothing")
            return
        }
    }

    @Test("a delivering channel's dropped sender hands the action its end")
    func deliveringSenderDropped() {
        var machine = Machine(delivering: { _ in })
        guard case .deliver = machine.senderDropped() else {
            Issue.record("expected .deliver")
            return
        }
        #expect(machine.stateName == ".senderDropped")
    }
}
