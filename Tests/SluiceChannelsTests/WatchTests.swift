import Testing

@testable import SluiceChannels

/// The watch channel through its public API: one test per documented behaviour.
@Suite("Watch")
struct WatchTests {
    typealias Support = WatchOneshotTestSupport

    /// How a `changed()` call ended, as a value the tests can compare.
    enum Ended: Equatable {
        case changed
        case closed
        case cancelled
        case other(String)
    }

    static func changed(_ receiver: Watch<Int>.Receiver) async -> Ended {
        do {
            try await receiver.changed()
            return .changed
        } catch Watch<Int>.RecvError.closed {
            return .closed
        } catch is CancellationError {
            return .cancelled
        } catch {
            return .other("\(error)")
        }
    }

    // MARK: - Sender

    @Test("send replaces the value and a waiting receiver wakes")
    func sendWakesReceiver() async {
        // Given a receiver waiting in changed()
        let (sender, receiver) = Watch<Int>.channel(0)
        let waiting = Task { await Self.changed(receiver) }
        await Support.waitUntil("the receiver waits") { receiver.storage.changeWaiterCount == 1 }
        // When
        sender.send(1)
        // Then
        #expect(await waiting.value == .changed)
        #expect(receiver.borrowAndUpdate() == 1)
    }

    @Test("a value sent while no receiver exists is still stored, and a later subscriber sees it as seen")
    func sendWithoutReceivers() {
        // Given a channel whose only receiver is gone
        var receiver: Watch<Int>.Receiver? = nil
        let sender: Watch<Int>.Sender
        (sender, receiver) = Watch<Int>.channel(0)
        Support.drop(&receiver)
        #expect(sender.isClosed)
        // When
        sender.send(42)
        // Then the value is there for the sender and for a new subscriber
        #expect(sender.borrow() == 42)
        let late = sender.subscribe()
        #expect(late.borrow() == 42)
        #expect((try? late.hasChanged()) == false)
    }

    @Test("sendModify changes the value in place and notifies")
    func sendModifyNotifies() throws {
        let (sender, receiver) = Watch<[Int]>.channel([1])
        sender.sendModify { $0.append(2) }
        #expect(try receiver.hasChanged())
        #expect(receiver.borrowAndUpdate() == [1, 2])
    }

    @Test("sendIfModified notifies only when its closure returns true")
    func sendIfModified() throws {
        // Given
        let (sender, receiver) = Watch<Int>.channel(1)
        // When the closure changes the value but returns false
        let first = sender.sendIfModified { value in
            value = 2
            return false
        }
        // Then nobody is notified, yet the value is stored
        #expect(first == false)
        #expect(try receiver.hasChanged() == false)
        #expect(receiver.borrow() == 2)
        // When it returns true
        let second = sender.sendIfModified { value in
            value = 3
            return true
        }
        // Then
        #expect(second == true)
        #expect(try receiver.hasChanged())
        #expect(receiver.borrowAndUpdate() == 3)
    }

    @Test("sendReplace returns the value it replaced and notifies")
    func sendReplaceReturnsOld() throws {
        let (sender, receiver) = Watch<String>.channel("starting")
        #expect(sender.sendReplace("running") == "starting")
        #expect(sender.sendReplace("stopping") == "running")
        #expect(try receiver.hasChanged())
        #expect(receiver.borrow() == "stopping")
    }

    @Test("the sender's borrow returns the current value and marks nothing for any receiver")
    func senderBorrow() throws {
        let (sender, receiver) = Watch<Int>.channel(5)
        sender.send(6)
        #expect(sender.borrow() == 6)
        #expect(try receiver.hasChanged())
    }

    @Test("subscribe creates a receiver that has seen the current value")
    func subscribeStartsAtCurrentVersion() async throws {
        // Given a channel that has moved on from its initial value
        let (sender, _) = Watch<Int>.channel(0)
        sender.send(1)
        // When
        let receiver = sender.subscribe()
        // Then the current value counts as seen: changed() waits for the next send
        #expect(try receiver.hasChanged() == false)
        #expect(receiver.borrow() == 1)
        let waiting = Task { await Self.changed(receiver) }
        await Support.waitUntil("the receiver waits") { receiver.storage.changeWaiterCount == 1 }
        sender.send(2)
        #expect(await waiting.value == .changed)
    }

    @Test("receiverCount counts every live receiver exactly, and isClosed is true when there is none")
    func receiverCountAndIsClosed() {
        // Given
        var first: Watch<Int>.Receiver? = nil
        let sender: Watch<Int>.Sender
        (sender, first) = Watch<Int>.channel(0)
        #expect(sender.receiverCount == 1)
        // When receivers are subscribed and cloned
        var second: Watch<Int>.Receiver? = sender.subscribe()
        var third: Watch<Int>.Receiver? = second?.clone()
        #expect(sender.receiverCount == 3)
        #expect(!sender.isClosed)
        // When they go away
        Support.drop(&second)
        #expect(sender.receiverCount == 2)
        Support.drop(&first)
        Support.drop(&third)
        #expect(sender.receiverCount == 0)
        #expect(sender.isClosed)
        // And a new subscriber opens it again
        let fourth = sender.subscribe()
        #expect(sender.receiverCount == 1)
        #expect(!sender.isClosed)
        withExtendedLifetime(fourth) {}
    }

    @Test("dropping a receiver unregisters it, and its slot goes to the next receiver")
    func receiverSlotReused() {
        let (sender, _) = Watch<Int>.channel(0)
        var dropped: Watch<Int>.Receiver? = sender.subscribe()
        let slot = dropped?.slot
        dropped = nil
        let next = sender.subscribe()
        #expect(next.slot == slot)
        #expect(sender.receiverCount == 1)  // the first receiver was discarded at once
    }

    @Test("closed() returns at once when no receiver exists")
    func closedWithoutReceivers() async throws {
        var receiver: Watch<Int>.Receiver? = nil
        let sender: Watch<Int>.Sender
        (sender, receiver) = Watch<Int>.channel(0)
        Support.drop(&receiver)
        try await sender.closed()
        #expect(sender.storage.closedWaiterCount == 0)
    }

    @Test("closed() waits until every receiver is gone")
    func closedWaitsForEveryReceiver() async {
        // Given two receivers and a task waiting in closed()
        var first: Watch<Int>.Receiver? = nil
        let sender: Watch<Int>.Sender
        (sender, first) = Watch<Int>.channel(0)
        var second: Watch<Int>.Receiver? = first?.clone()
        let waiting = Task { () -> Bool in
            do {
                try await sender.closed()
                return true
            } catch {
                return false
            }
        }
        await Support.waitUntil("closed() waits") { sender.storage.closedWaiterCount == 1 }
        // When one goes, it still waits
        Support.drop(&first)
        #expect(sender.storage.closedWaiterCount == 1)
        // When the last goes, it returns
        Support.drop(&second)
        #expect(await waiting.value)
        #expect(sender.isClosed)
    }

    @Test("closed() cancelled before it suspends throws CancellationError and leaves no waiter")
    func closedCancelledBeforeSuspend() async {
        let (sender, receiver) = Watch<Int>.channel(0)
        let task = Task { () -> Bool in
            Support.cancelCurrentTask()
            do {
                try await sender.closed()
                return false
            } catch {
                return true  // typed throws: the only error is CancellationError
            }
        }
        #expect(await task.value)
        #expect(sender.storage.closedWaiterCount == 0)
        withExtendedLifetime(receiver) {}
    }

    @Test("closed() cancelled while suspended throws CancellationError and leaves no waiter")
    func closedCancelledWhileSuspended() async {
        let (sender, receiver) = Watch<Int>.channel(0)
        let task = Task { () -> Bool in
            do {
                try await sender.closed()
                return false
            } catch {
                return true
            }
        }
        await Support.waitUntil("closed() waits") { sender.storage.closedWaiterCount == 1 }
        task.cancel()
        #expect(await task.value)
        #expect(sender.storage.closedWaiterCount == 0)
        #expect(sender.receiverCount == 1)
        withExtendedLifetime(receiver) {}
    }

    @Test("dropping the last sender reference ends a waiting changed() with RecvError.closed")
    func senderDropClosesWaiters() async {
        // Given
        var sender: Watch<Int>.Sender? = nil
        let receiver: Watch<Int>.Receiver
        (sender, receiver) = Watch<Int>.channel(0)
        let waiting = Task { await Self.changed(receiver) }
        await Support.waitUntil("the receiver waits") { receiver.storage.changeWaiterCount == 1 }
        // When
        Support.drop(&sender)
        // Then
        #expect(await waiting.value == .closed)
        #expect(receiver.borrow() == 0)  // the value stays readable
    }

    // MARK: - Receiver

    @Test("borrow returns the current value without marking it seen")
    func borrowDoesNotMark() throws {
        let (sender, receiver) = Watch<Int>.channel(0)
        sender.send(1)
        #expect(receiver.borrow() == 1)
        #expect(try receiver.hasChanged())
    }

    @Test("borrowAndUpdate returns the current value and marks it seen")
    func borrowAndUpdateMarks() throws {
        let (sender, receiver) = Watch<Int>.channel(0)
        sender.send(1)
        #expect(receiver.borrowAndUpdate() == 1)
        #expect(try receiver.hasChanged() == false)
    }

    @Test("hasChanged tells whether an unseen version exists and marks nothing")
    func hasChangedMarksNothing() throws {
        let (sender, receiver) = Watch<Int>.channel(0)
        #expect(try receiver.hasChanged() == false)
        sender.send(1)
        #expect(try receiver.hasChanged())
        #expect(try receiver.hasChanged())  // still: asking marks nothing
    }

    @Test("hasChanged throws RecvError.closed once the sender is gone, even with an unseen value")
    func hasChangedAfterSenderGone() {
        var sender: Watch<Int>.Sender? = nil
        let receiver: Watch<Int>.Receiver
        (sender, receiver) = Watch<Int>.channel(0)
        sender?.send(1)
        Support.drop(&sender)
        #expect(throws: Watch<Int>.RecvError.closed) { try receiver.hasChanged() }
        #expect(receiver.borrowAndUpdate() == 1)  // the last value is still readable
    }

    @Test("changed returns at once for an unseen version and marks the newest one seen")
    func changedReturnsAtOnce() async throws {
        let (sender, receiver) = Watch<Int>.channel(0)
        sender.send(1)
        sender.send(2)
        try await receiver.changed()
        #expect(try receiver.hasChanged() == false)  // both versions are covered by one changed()
        #expect(receiver.borrow() == 2)
    }

    @Test("changed waits while the current value is seen, until the next send")
    func changedWaits() async {
        let (sender, receiver) = Watch<Int>.channel(0)
        let waiting = Task { await Self.changed(receiver) }
        await Support.waitUntil("the receiver waits") { receiver.storage.changeWaiterCount == 1 }
        #expect(receiver.storage.changeWaiterCount == 1)
        sender.send(1)
        #expect(await waiting.value == .changed)
        #expect(receiver.storage.seenVersion(slot: receiver.slot) == 1)
    }

    @Test("after the sender is gone, changed returns once for the unseen last value, then throws closed")
    func changedDrainsLastValue() async {
        var sender: Watch<Int>.Sender? = nil
        let receiver: Watch<Int>.Receiver
        (sender, receiver) = Watch<Int>.channel(0)
        sender?.send(1)
        Support.drop(&sender)
        #expect(await Self.changed(receiver) == .changed)
        #expect(receiver.borrowAndUpdate() == 1)
        #expect(await Self.changed(receiver) == .closed)
    }

    @Test("a change that is already there is returned even to a cancelled task")
    func changedFastPathIgnoresCancellation() async {
        let (sender, receiver) = Watch<Int>.channel(0)
        sender.send(1)
        let task = Task {
            Support.cancelCurrentTask()
            return await Self.changed(receiver)
        }
        #expect(await task.value == .changed)
    }

    @Test("changed cancelled before it suspends throws CancellationError and marks nothing seen")
    func changedCancelledBeforeSuspend() async {
        // Given a receiver with nothing unseen, and a task cancelled before calling changed()
        let (sender, receiver) = Watch<Int>.channel(0)
        let task = Task {
            Support.cancelCurrentTask()
            return await Self.changed(receiver)
        }
        // Then
        #expect(await task.value == .cancelled)
        #expect(receiver.storage.changeWaiterCount == 0)
        // And the receiver still works: a later send is reported
        sender.send(1)
        #expect(await Self.changed(receiver) == .changed)
    }

    @Test("changed cancelled while suspended throws CancellationError, and a later change is not lost")
    func changedCancelledWhileSuspended() async {
        // Given a task waiting in changed()
        let (sender, receiver) = Watch<Int>.channel(0)
        let task = Task { await Self.changed(receiver) }
        await Support.waitUntil("the receiver waits") { receiver.storage.changeWaiterCount == 1 }
        // When it is cancelled
        task.cancel()
        // Then
        #expect(await task.value == .cancelled)
        #expect(receiver.storage.changeWaiterCount == 0)
        #expect(receiver.storage.seenVersion(slot: receiver.slot) == 0)
        // And a send afterwards is reported by the next call, at once
        sender.send(1)
        #expect(await Self.changed(receiver) == .changed)
        #expect(receiver.borrow() == 1)
    }

    @Test("several tasks waiting on one receiver all wake on a send")
    func sharedReceiverWakesEveryWaiter() async {
        let (sender, receiver) = Watch<Int>.channel(0)
        let tasks = (0..<3).map { _ in Task { await Self.changed(receiver) } }
        await Support.waitUntil("three tasks wait") { receiver.storage.changeWaiterCount == 3 }
        sender.send(1)
        for task in tasks { #expect(await task.value == .changed) }
    }

    @Test("clone creates a receiver that has seen what the original has seen, and is independent afterwards")
    func cloneCopiesSeenVersion() throws {
        let (sender, original) = Watch<Int>.channel(0)
        sender.send(1)
        // When cloned before the original marked version 1
        let clone = original.clone()
        #expect(try clone.hasChanged())
        // Then marking on one leaves the other alone
        _ = original.borrowAndUpdate()
        #expect(try original.hasChanged() == false)
        #expect(try clone.hasChanged())
        // And a clone of an up-to-date receiver is up to date
        #expect(try original.clone().hasChanged() == false)
    }

    @Test("a slow receiver skips intermediate values but ends on the last one")
    func slowReceiverEndsOnLast() async {
        var sender: Watch<Int>.Sender? = nil
        let receiver: Watch<Int>.Receiver
        (sender, receiver) = Watch<Int>.channel(0)
        for value in 1...100 { sender?.send(value) }
        Support.drop(&sender)
        var seen: [Int] = []
        while await Self.changed(receiver) == .changed { seen.append(receiver.borrowAndUpdate()) }
        #expect(seen == [100])
    }

    // MARK: - AsyncSequence

    @Test("iterating yields the current value at once, then the newest value after each change, then ends")
    func iteration() async {
        // Given
        var sender: Watch<Int>.Sender? = nil
        let receiver: Watch<Int>.Receiver
        (sender, receiver) = Watch<Int>.channel(10)
        var iterator = receiver.makeAsyncIterator()
        // Then the current value comes first, although it was seen
        #expect(await iterator.next() == 10)
        // And after several sends, only the newest
        sender?.send(11)
        sender?.send(12)
        #expect(await iterator.next() == 12)
        // And a waiting next() gets the next send
        let collector = Task { () -> [Int] in
            var values: [Int] = []
            for await value in receiver { values.append(value) }  // a new iterator: current value first
            return values
        }
        await Support.waitUntil("the iterator waits") { receiver.storage.changeWaiterCount == 1 }
        sender?.send(13)
        sender?.send(14)
        Support.drop(&sender)
        // Then it ends on the last value, having seen only increasing values
        let tail = await collector.value
        #expect(tail.first == 12)
        #expect(tail.last == 14)
        #expect(tail == tail.sorted() && Set(tail).count == tail.count)
    }

    @Test("a cancelled iteration ends with nil and marks nothing seen")
    func iterationCancelled() async throws {
        let (sender, receiver) = Watch<Int>.channel(0)
        let task = Task { () -> [Int] in
            var values: [Int] = []
            for await value in receiver { values.append(value) }
            return values
        }
        await Support.waitUntil("the iterator waits") { receiver.storage.changeWaiterCount == 1 }
        task.cancel()
        #expect(await task.value == [0])
        sender.send(1)
        #expect(try receiver.hasChanged() == true)
    }
}
