import Glibc
import Synchronization
import Testing

@testable import SluiceChannels

/// The oneshot channel through its public API: one test per documented behaviour.
@Suite("Oneshot")
struct OneshotTests {
    typealias Support = WatchOneshotTestSupport

    /// How a `value()` call ended, as a value the tests can compare.
    enum Got: Equatable {
        case value(Int)
        case senderDropped
        case cancelled
        case other(String)
    }

    static func value(_ receiver: Oneshot<Int>.Receiver) async -> Got {
        do {
            return .value(try await receiver.value())
        } catch Oneshot<Int>.RecvError.senderDropped {
            return .senderDropped
        } catch is CancellationError {
            return .cancelled
        } catch {
            return .other("\(error)")
        }
    }

    /// A sender moved into a `Sendable` holder, so that another task can take it and send (a `Task` closure can
    /// only borrow a captured noncopyable value).
    final class SenderHolder<Value: Sendable>: Sendable {
        private let slot: Locked<Oneshot<Value>.Sender?>
        init(_ sender: consuming Oneshot<Value>.Sender) { self.slot = Locked(sender) }
        func take() -> Oneshot<Value>.Sender? { self.slot.withLock { $0.take() } }
    }

    /// A new channel split into its halves, with the `Channel` value itself gone: the receiver returned is then
    /// the only reference, so dropping it drops the receiver.
    static func split<Value: Sendable>(_ channel: consuming Oneshot<Value>.Channel) -> (
        SenderHolder<Value>, Oneshot<Value>.Receiver
    ) {
        (SenderHolder(channel.sender), channel.receiver)
    }

    /// Counts live instances, to see when a value is destroyed.
    final class Tracked: Sendable {
        static let live = Atomic<Int>(0)
        let id: Int
        init(_ id: Int) {
            self.id = id
            Self.live.add(1, ordering: .relaxed)
        }
        deinit { Self.live.subtract(1, ordering: .relaxed) }
    }

    // MARK: - Sending and receiving

    @Test("a value sent before value() is called is returned at once")
    func sendThenReceive() async throws {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        try sender.send(1)
        #expect(await Self.value(receiver) == .value(1))
    }

    @Test("value() waits until the value is sent")
    func receiveWaitsForSend() async {
        // Given a task waiting in value()
        let channel = Oneshot<Int>.channel()
        let holder = SenderHolder(channel.sender)
        let receiver = channel.receiver
        let waiting = Task { await Self.value(receiver) }
        await TestSupport.waitUntil("the receiver waits") { receiver.storage.receiveWaiterCount == 1 }
        // When
        try? holder.take()?.send(2)
        // Then
        #expect(await waiting.value == .value(2))
    }

    @Test("once received, value() and tryValue() return the same value again")
    func completedFuture() async throws {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        try sender.send(3)
        #expect(await Self.value(receiver) == .value(3))
        #expect(await Self.value(receiver) == .value(3))
        #expect(try receiver.tryValue() == 3)
    }

    @Test("several tasks awaiting the same receiver all get the value")
    func severalAwaiters() async {
        let channel = Oneshot<Int>.channel()
        let holder = SenderHolder(channel.sender)
        let receiver = channel.receiver
        let tasks = (0..<3).map { _ in Task { await Self.value(receiver) } }
        await TestSupport.waitUntil("three tasks wait") { receiver.storage.receiveWaiterCount == 3 }
        try? holder.take()?.send(4)
        for task in tasks { #expect(await task.value == .value(4)) }
    }

    @Test("a sender dropped without sending makes waiting and later value() calls throw senderDropped")
    func senderDropped() async {
        // Given a task waiting in value()
        let channel = Oneshot<Int>.channel()
        let holder = SenderHolder(channel.sender)
        let receiver = channel.receiver
        let waiting = Task { await Self.value(receiver) }
        await TestSupport.waitUntil("the receiver waits") { receiver.storage.receiveWaiterCount == 1 }
        // When the sender is dropped unsent
        _ = holder.take()
        // Then
        #expect(await waiting.value == .senderDropped)
        #expect(await Self.value(receiver) == .senderDropped)
        #expect(throws: Oneshot<Int>.TryRecvError.senderDropped) { try receiver.tryValue() }
    }

    @Test("a sender captured by a task is dropped when the task ends")
    func senderDroppedWithTask() async {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        let task = Task { [sender = consume sender] in sender.isClosed }
        #expect(await task.value == false)
        #expect(await Self.value(receiver) == .senderDropped)
    }

    @Test("tryValue reports empty, then the value once sent")
    func tryValue() throws {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        #expect(throws: Oneshot<Int>.TryRecvError.empty) { try receiver.tryValue() }
        try sender.send(5)
        #expect(try receiver.tryValue() == 5)
    }

    // MARK: - The receiver closes or goes

    @Test("send fails with the value handed back once the receiver is gone")
    func sendAfterReceiverDropped() {
        let (holder, only) = Self.split(Oneshot<Int>.channel())
        var receiver: Oneshot<Int>.Receiver? = consume only
        Support.drop(&receiver)
        guard let sender = holder.take() else { return }
        #expect(sender.isClosed == true)
        do {
            try sender.send(6)
            Issue.record("the send succeeded")
        } catch {
            #expect(error.value == 6)  // handed back
        }
    }

    @Test("send fails with the value handed back after close()")
    func sendAfterClose() {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        receiver.close()
        #expect(sender.isClosed == true)
        do {
            try sender.send(7)
            Issue.record("the send succeeded")
        } catch {
            #expect(error.value == 7)  // handed back
        }
    }

    @Test("a value sent before close() can still be taken")
    func closeKeepsSentValue() async throws {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        try sender.send(8)
        receiver.close()
        #expect(try receiver.tryValue() == 8)
        #expect(await Self.value(receiver) == .value(8))
    }

    @Test("close() before a send ends waiting and later value() calls with senderDropped")
    func closeEndsWaiters() async {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        let waiting = Task { await Self.value(receiver) }
        await TestSupport.waitUntil("the receiver waits") { receiver.storage.receiveWaiterCount == 1 }
        receiver.close()
        #expect(await waiting.value == .senderDropped)
        #expect(await Self.value(receiver) == .senderDropped)
        #expect(throws: Oneshot<Int>.TryRecvError.senderDropped) { try receiver.tryValue() }
        withExtendedLifetime(sender) {}
    }

    @Test("isClosed is false while the receiver is open")
    func isClosedWhileOpen() {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        #expect(sender.isClosed == false)
        withExtendedLifetime(receiver) {}
    }

    @Test("a value sent but never received is destroyed when the receiver goes")
    func undeliveredValueDestroyed() throws {
        let before = Tracked.live.load(ordering: .relaxed)
        let (holder, only) = Self.split(Oneshot<Tracked>.channel())
        var receiver: Oneshot<Tracked>.Receiver? = consume only
        try holder.take()?.send(Tracked(1))
        #expect(Tracked.live.load(ordering: .relaxed) == before + 1)
        Support.drop(&receiver)
        #expect(Tracked.live.load(ordering: .relaxed) == before)
    }

    // MARK: - Sender.closed()

    @Test("closed() returns at once when the receiver is already closed")
    func closedReturnsAtOnce() async throws {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        receiver.close()
        try await sender.closed()
        #expect(receiver.storage.closedWaiterCount == 0)
    }

    @Test("closed() waits until the receiver is gone")
    func closedWaitsForDrop() async {
        let (holder, only) = Self.split(Oneshot<Int>.channel())
        var receiver: Oneshot<Int>.Receiver? = consume only
        let storage = receiver?.storage
        guard let sender = holder.take() else { return }
        let waiting = Task { [sender = consume sender] () -> Bool in
            do {
                try await sender.closed()
                return true
            } catch {
                return false
            }
        }
        await TestSupport.waitUntil("closed() waits") { storage?.closedWaiterCount == 1 }
        Support.drop(&receiver)
        #expect(await waiting.value)
    }

    @Test("closed() waits until the receiver calls close()")
    func closedWaitsForClose() async {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        let waiting = Task { [sender = consume sender] () -> Bool in
            do {
                try await sender.closed()
                return true
            } catch {
                return false
            }
        }
        await TestSupport.waitUntil("closed() waits") { receiver.storage.closedWaiterCount == 1 }
        receiver.close()
        #expect(await waiting.value)
    }

    @Test("closed() cancelled before it suspends throws CancellationError, and the sender can still send")
    func closedCancelledBeforeSuspend() async {
        let channel = Oneshot<Int>.channel()
        let holder = SenderHolder(channel.sender)
        let receiver = channel.receiver
        let task = Task { () -> Bool in
            guard let sender = holder.take() else { return false }
            Support.cancelCurrentTask()
            do {
                try await sender.closed()
                return false
            } catch {
                #expect(receiver.storage.closedWaiterCount == 0)
                try? sender.send(9)
                return true
            }
        }
        #expect(await task.value)
        #expect(await Self.value(receiver) == .value(9))
    }

    @Test("closed() cancelled while suspended throws CancellationError, and the sender can still send")
    func closedCancelledWhileSuspended() async {
        let channel = Oneshot<Int>.channel()
        let holder = SenderHolder(channel.sender)
        let receiver = channel.receiver
        let task = Task { () -> Bool in
            guard let sender = holder.take() else { return false }
            do {
                try await sender.closed()
                return false
            } catch {
                try? sender.send(10)
                return true
            }
        }
        await TestSupport.waitUntil("closed() waits") { receiver.storage.closedWaiterCount == 1 }
        task.cancel()
        #expect(await task.value)
        #expect(receiver.storage.closedWaiterCount == 0)
        #expect(await Self.value(receiver) == .value(10))
    }

    // MARK: - Cancelling value()

    @Test("a value that is already there is returned even to a cancelled task")
    func valueFastPathIgnoresCancellation() async throws {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        try sender.send(11)
        let task = Task {
            Support.cancelCurrentTask()
            return await Self.value(receiver)
        }
        #expect(await task.value == .value(11))
    }

    @Test("value() cancelled before it suspends throws CancellationError, and a later value() still gets the value")
    func valueCancelledBeforeSuspend() async throws {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        let task = Task {
            Support.cancelCurrentTask()
            return await Self.value(receiver)
        }
        #expect(await task.value == .cancelled)
        #expect(receiver.storage.receiveWaiterCount == 0)
        try sender.send(12)
        #expect(await Self.value(receiver) == .value(12))
    }

    @Test("value() cancelled while suspended throws CancellationError, and a later value() still gets the value")
    func valueCancelledWhileSuspended() async throws {
        let channel = Oneshot<Int>.channel()
        let sender = channel.sender
        let receiver = channel.receiver
        let task = Task { await Self.value(receiver) }
        await TestSupport.waitUntil("the receiver waits") { receiver.storage.receiveWaiterCount == 1 }
        task.cancel()
        #expect(await task.value == .cancelled)
        #expect(receiver.storage.receiveWaiterCount == 0)
        try sender.send(13)
        #expect(await Self.value(receiver) == .value(13))
    }

    @Test("cancelling one of several tasks awaiting a receiver leaves the others waiting for the value")
    func cancelOneOfSeveral() async {
        let channel = Oneshot<Int>.channel()
        let holder = SenderHolder(channel.sender)
        let receiver = channel.receiver
        let cancelled = Task { await Self.value(receiver) }
        let others = (0..<2).map { _ in Task { await Self.value(receiver) } }
        await TestSupport.waitUntil("three tasks wait") { receiver.storage.receiveWaiterCount == 3 }
        cancelled.cancel()
        #expect(await cancelled.value == .cancelled)
        #expect(receiver.storage.receiveWaiterCount == 2)
        try? holder.take()?.send(14)
        for task in others { #expect(await task.value == .value(14)) }
    }

    // MARK: - A channel that delivers to an action

    /// What a delivering channel's action got, in order.
    final class Deliveries: Sendable {
        let got = Locked<[Got]>([])
        let threads = Locked<[pthread_t]>([])
        func record(_ outcome: Result<Int, Oneshot<Int>.RecvError>) {
            self.threads.withLock { $0.append(pthread_self()) }
            switch outcome {
            case .success(let value): self.got.withLock { $0.append(.value(value)) }
            case .failure(.senderDropped): self.got.withLock { $0.append(.senderDropped) }
            }
        }
    }

    @Test("channel(deliveringTo:) gives the sent value to the action before send returns, on the sender's thread")
    func deliveringSend() throws {
        let deliveries = Deliveries()
        let sender = Oneshot<Int>.channel { deliveries.record($0) }
        #expect(sender.isClosed == false)
        #expect(deliveries.got.withLock { $0 }.isEmpty)
        try sender.send(21)
        #expect(deliveries.got.withLock { $0 } == [.value(21)])
        #expect(deliveries.threads.withLock { $0 }.allSatisfy { pthread_equal($0, pthread_self()) != 0 })
    }

    @Test("channel(deliveringTo:) tells the action once when the sender is dropped unsent")
    func deliveringSenderDropped() {
        let deliveries = Deliveries()
        do {
            let sender = Oneshot<Int>.channel { deliveries.record($0) }
            _ = consume sender
        }
        #expect(deliveries.got.withLock { $0 } == [.senderDropped])
    }

    /// A value whose end a test watches with a weak reference (not ``Tracked``'s shared count: tests run in
    /// parallel).
    final class Boxed: Sendable {
        let id: Int
        init(_ id: Int) { self.id = id }
    }

    @Test("channel(deliveringTo:) keeps no reference to a sent value once the action returns")
    func deliveringKeepsNothing() throws {
        let seen = Locked<Int?>(nil)
        let sender = Oneshot<Boxed>.channel { outcome in
            seen.withLock { $0 = (try? outcome.get())?.id }
        }
        var value: Boxed? = Boxed(4)
        weak let watched = value
        try sender.send(value.take()!)
        #expect(seen.withLock { $0 } == 4)
        #expect(watched == nil)
    }
}
