import Testing

@testable import SluiceChannels

/// The watch channel's receiving side through its public API: one test per documented behaviour. The sending side
/// is in `WatchSenderTests`.
@Suite("Watch receiver")
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
        await TestSupport.waitUntil("the receiver waits") { receiver.storage.changeWaiterCount == 1 }
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
        await TestSupport.waitUntil("the receiver waits") { receiver.storage.changeWaiterCount == 1 }
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
        await TestSupport.waitUntil("three tasks wait") { receiver.storage.changeWaiterCount == 3 }
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
        await TestSupport.waitUntil("the iterator waits") { receiver.storage.changeWaiterCount == 1 }
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
        await TestSupport.waitUntil("the iterator waits") { receiver.storage.changeWaiterCount == 1 }
        task.cancel()
        #expect(await task.value == [0])
        sender.send(1)
        #expect(try receiver.hasChanged() == true)
    }
}
