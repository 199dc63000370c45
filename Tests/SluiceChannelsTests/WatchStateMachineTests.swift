import Testing

@testable import SluiceChannels

/// The watch state machine driven directly: no tasks race here. Waiters use real continuations that are
/// resumed before `withUnsafeContinuation` returns, so every test runs straight through.
@Suite("Watch state machine")
struct WatchStateMachineTests {
    typealias Machine = Watch<Int>.StateMachine
    typealias Outcome = Watch<Int>.ChangeOutcome

    @Test("a new channel holds version 0 of the initial value, already seen by its one receiver in slot 0")
    func initialState() {
        // Given a fresh machine
        let machine = Machine(initial: 7)
        // Then
        #expect(machine.value == 7)
        #expect(machine.version == 0)
        #expect(machine.receiverCount == 1)
        #expect(machine.seenVersion(slot: 0) == 0)
        #expect(machine.hasChanged(slot: 0) == .success(false))
        #expect(machine.isSenderAlive == true)
    }

    @Test("a send replaces the value, returns the old one and makes a version the receiver has not seen")
    func sendMakesUnseenVersion() {
        // Given
        var machine = Machine(initial: 1)
        // When
        let (old, wakeups) = machine.send(2)
        // Then
        #expect(old == 1)
        #expect(wakeups.isEmpty)
        #expect(machine.version == 1)
        #expect(machine.hasChanged(slot: 0) == .success(true))
        // And changed() returns the value at once, marking it seen
        guard case .changed(let value) = machine.changed(slot: 0) else {
            Issue.record("expected .changed")
            return
        }
        #expect(value == 2)
        #expect(machine.seenVersion(slot: 0) == 1)
        #expect(machine.hasChanged(slot: 0) == .success(false))
    }

    @Test("changed with nothing unseen asks to suspend, with a fresh waiter id each time")
    func changedSuspendsWithFreshIDs() {
        var machine = Machine(initial: 0)
        guard case .suspend(let first) = machine.changed(slot: 0),
            case .suspend(let second) = machine.changed(slot: 0)
        else {
            Issue.record("expected .suspend twice")
            return
        }
        #expect(first != second)
    }

    @Test("a stored change waiter is resumed by the next send with the new value, and its slot has seen it")
    func storedWaiterResumedBySend() async {
        var machine = Machine(initial: 0)
        guard case .suspend(let id) = machine.changed(slot: 0) else {
            Issue.record("expected .suspend")
            return
        }
        let outcome: Outcome = await withUnsafeContinuation { continuation in
            // Given a stored waiter
            #expect(machine.changedSuspended(id: id, slot: 0, continuation: continuation, isCancelled: false) == nil)
            #expect(machine.changeWaiterCount == 1)
            // When the sender sends
            let (_, wakeups) = machine.send(5)
            #expect(wakeups.count == 1)
            for wakeup in wakeups { wakeup.resume() }
        }
        // Then
        #expect(outcome == .changed(5))
        #expect(machine.changeWaiterCount == 0)
        #expect(machine.seenVersion(slot: 0) == 1)
    }

    @Test("a change waiter that finds an unseen version when it registers is resumed at once with that value")
    func registrationFindsUnseenVersion() async {
        var machine = Machine(initial: 0)
        guard case .suspend(let id) = machine.changed(slot: 0) else {
            Issue.record("expected .suspend")
            return
        }
        // Given a send between the fast path and the registration
        _ = machine.send(9)
        let outcome: Outcome = await withUnsafeContinuation { continuation in
            machine.changedSuspended(id: id, slot: 0, continuation: continuation, isCancelled: false)?.resume()
        }
        #expect(outcome == .changed(9))
        #expect(machine.changeWaiterCount == 0)
        #expect(machine.seenVersion(slot: 0) == 1)
    }

    @Test("a registration made by a cancelled task resumes at once with cancelled and marks nothing seen")
    func cancelledRegistration() async {
        var machine = Machine(initial: 0)
        guard case .suspend(let id) = machine.changed(slot: 0) else {
            Issue.record("expected .suspend")
            return
        }
        _ = machine.send(1)
        let outcome: Outcome = await withUnsafeContinuation { continuation in
            machine.changedSuspended(id: id, slot: 0, continuation: continuation, isCancelled: true)?.resume()
        }
        #expect(outcome == .cancelled)
        #expect(machine.seenVersion(slot: 0) == 0)  // the unseen version is still there for the next call
        #expect(machine.changeWaiterCount == 0)
    }

    @Test("cancelling a stored change waiter removes it, and a second cancellation of the same id finds nothing")
    func cancelStoredWaiter() async {
        var machine = Machine(initial: 0)
        guard case .suspend(let id) = machine.changed(slot: 0) else {
            Issue.record("expected .suspend")
            return
        }
        let outcome: Outcome = await withUnsafeContinuation { continuation in
            #expect(machine.changedSuspended(id: id, slot: 0, continuation: continuation, isCancelled: false) == nil)
            let resumption = machine.changedCancelled(id: id)
            #expect(resumption != nil)
            #expect(machine.changedCancelled(id: id) == nil)
            resumption?.resume()
        }
        #expect(outcome == .cancelled)
        #expect(machine.changeWaiterCount == 0)
        // And a later send wakes nobody
        #expect(machine.send(1).wakeups.isEmpty)
    }

    @Test("a modification that reports no change keeps the version and wakes nobody, though the value changed")
    func modifyWithoutNotify() async {
        var machine = Machine(initial: 1)
        guard case .suspend(let id) = machine.changed(slot: 0) else {
            Issue.record("expected .suspend")
            return
        }
        let outcome: Outcome = await withUnsafeContinuation { continuation in
            #expect(machine.changedSuspended(id: id, slot: 0, continuation: continuation, isCancelled: false) == nil)
            // When a modification reports false
            var value = machine.beginModify()
            value += 10
            #expect(machine.endModify(value, notify: false).isEmpty)
            // Then nothing is notified
            #expect(machine.version == 0)
            #expect(machine.value == 11)
            #expect(machine.changeWaiterCount == 1)
            // And a modification that reports true notifies
            value = machine.beginModify()
            value += 1
            let wakeups = machine.endModify(value, notify: true)
            #expect(wakeups.count == 1)
            for wakeup in wakeups { wakeup.resume() }
        }
        #expect(outcome == .changed(12))
        #expect(machine.version == 1)
    }

    @Test("dropping the sender ends stored waiters with closed")
    func senderDroppedEndsWaiters() async {
        var machine = Machine(initial: 0)
        guard case .suspend(let id) = machine.changed(slot: 0) else {
            Issue.record("expected .suspend")
            return
        }
        let outcome: Outcome = await withUnsafeContinuation { continuation in
            #expect(machine.changedSuspended(id: id, slot: 0, continuation: continuation, isCancelled: false) == nil)
            let wakeups = machine.senderDropped()
            #expect(wakeups.count == 1)
            for wakeup in wakeups { wakeup.resume() }
        }
        #expect(outcome == .closed)
        #expect(machine.isSenderAlive == false)
        guard case .closed = machine.changed(slot: 0) else {
            Issue.record("expected .closed")
            return
        }
    }

    @Test("after the sender is gone, changed reports the unseen last version once, then closed")
    func lastVersionBeforeClosed() {
        var machine = Machine(initial: 0)
        _ = machine.send(1)
        _ = machine.send(2)
        #expect(machine.senderDropped().isEmpty)
        guard case .changed(let last) = machine.changed(slot: 0) else {
            Issue.record("expected .changed")
            return
        }
        #expect(last == 2)
        guard case .closed = machine.changed(slot: 0) else {
            Issue.record("expected .closed")
            return
        }
    }

    @Test("hasChanged reports closed once the sender is gone, even with an unseen version")
    func hasChangedAfterSenderDropped() {
        var machine = Machine(initial: 0)
        _ = machine.send(1)
        _ = machine.senderDropped()
        #expect(machine.hasChanged(slot: 0) == .failure(.closed))
    }

    @Test("subscribe starts at the current version, clone copies the seen version, and freed slots are reused")
    func slotsAndVersions() {
        var machine = Machine(initial: 0)
        _ = machine.send(1)
        // subscribe: has seen version 1
        let subscribed = machine.subscribe()
        #expect(machine.seenVersion(slot: subscribed) == 1)
        // clone of slot 0, which has seen version 0
        let cloned = machine.cloneReceiver(slot: 0)
        #expect(machine.seenVersion(slot: cloned) == 0)
        #expect(machine.receiverCount == 3)
        #expect(Set([0, subscribed, cloned]).count == 3)
        // When one receiver is dropped, its slot is free and the next receiver gets it
        #expect(machine.receiverDropped(slot: subscribed).isEmpty)
        #expect(machine.seenVersion(slot: subscribed) == nil)
        #expect(machine.receiverCount == 2)
        let reused = machine.subscribe()
        #expect(reused == subscribed)
        #expect(machine.seenVersion(slot: reused) == 1)
    }

    @Test("borrowAndUpdate returns the current value and marks its version seen")
    func borrowAndUpdateMarks() {
        var machine = Machine(initial: 0)
        _ = machine.send(4)
        #expect(machine.borrowAndUpdate(slot: 0) == 4)
        #expect(machine.seenVersion(slot: 0) == 1)
        #expect(machine.hasChanged(slot: 0) == .success(false))
    }

    @Test("the last receiver's drop resumes the sender's closed waiters; with no receivers closed() is immediate")
    func closedWaiters() async {
        var machine = Machine(initial: 0)
        guard case .suspend(let id) = machine.closed() else {
            Issue.record("expected .suspend")
            return
        }
        let second = machine.subscribe()
        let outcome: Watch<Int>.ClosedOutcome = await withUnsafeContinuation { continuation in
            #expect(machine.closedSuspended(id: id, continuation: continuation, isCancelled: false) == nil)
            #expect(machine.receiverDropped(slot: 0).isEmpty)  // one receiver is left
            let wakeups = machine.receiverDropped(slot: second)
            #expect(wakeups.count == 1)
            for wakeup in wakeups { wakeup.resume() }
        }
        #expect(outcome == .closed)
        guard case .closed = machine.closed() else {
            Issue.record("expected .closed")
            return
        }
    }

    @Test("a closed waiter that is cancelled is removed, or resumed at once if already cancelled")
    func closedWaiterCancelled() async {
        var machine = Machine(initial: 0)
        guard case .suspend(let id) = machine.closed(), case .suspend(let other) = machine.closed() else {
            Issue.record("expected .suspend")
            return
        }
        let first: Watch<Int>.ClosedOutcome = await withUnsafeContinuation { continuation in
            #expect(machine.closedSuspended(id: id, continuation: continuation, isCancelled: false) == nil)
            #expect(machine.closedWaiterCount == 1)
            machine.closedCancelled(id: id)?.resume()
        }
        let second: Watch<Int>.ClosedOutcome = await withUnsafeContinuation { continuation in
            machine.closedSuspended(id: other, continuation: continuation, isCancelled: true)?.resume()
        }
        #expect(first == .cancelled)
        #expect(second == .cancelled)
        #expect(machine.closedWaiterCount == 0)
    }
}
