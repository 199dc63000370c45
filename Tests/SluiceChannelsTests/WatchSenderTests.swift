import Testing

@testable import SluiceChannels

/// The watch channel's sending side through its public API: one test per documented behaviour.
@Suite("Watch sender")
struct WatchSenderTests {
    typealias Support = WatchOneshotTestSupport

    @Test("send replaces the value and a waiting receiver wakes")
    func sendWakesReceiver() async {
        // Given a receiver waiting in changed()
        let (sender, receiver) = Watch<Int>.channel(0)
        let waiting = Task { await WatchTests.changed(receiver) }
        await TestSupport.waitUntil("the receiver waits") { receiver.storage.changeWaiterCount == 1 }
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
        let waiting = Task { await WatchTests.changed(receiver) }
        await TestSupport.waitUntil("the receiver waits") { receiver.storage.changeWaiterCount == 1 }
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
        await TestSupport.waitUntil("closed() waits") { sender.storage.closedWaiterCount == 1 }
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
        await TestSupport.waitUntil("closed() waits") { sender.storage.closedWaiterCount == 1 }
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
        let waiting = Task { await WatchTests.changed(receiver) }
        await TestSupport.waitUntil("the receiver waits") { receiver.storage.changeWaiterCount == 1 }
        // When
        Support.drop(&sender)
        // Then
        #expect(await waiting.value == .closed)
        #expect(receiver.borrow() == 0)  // the value stays readable
    }
}
