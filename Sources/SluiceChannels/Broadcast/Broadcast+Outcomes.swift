extension Broadcast {
    /// How a suspended receive ends. The continuation never throws: ``Broadcast/Storage`` maps these to
    /// ``Broadcast/RecvError`` or `CancellationError` in the public method, so nothing is boxed inside the channel.
    @usableFromInline
    enum ReceiveOutcome: Sendable {
        /// The value a send handed straight to this waiter; its receiver's cursor already moved past it.
        case value(Element)
        /// Found when the waiter was stored: the receiver had missed this many values meanwhile.
        case lagged(UInt64)
        /// The sender is gone and the receiver has read everything.
        case closed
        /// The waiting task was cancelled before anything was handed to it; nothing was consumed.
        case cancelled
    }

    @usableFromInline
    typealias ReceiveContinuation = UnsafeContinuation<ReceiveOutcome, Never>

    /// One receiver to resume after unlocking, with what it gets.
    @usableFromInline
    typealias ReceiverResumption = Resumption<ReceiveContinuation, ReceiveOutcome>

    /// Every waiter one event wakes, all with the same outcome: the value of one send, or the end of the channel.
    /// A send wakes one waiter per receiver, and they all share the one value the ``Wakeup`` holds.
    @usableFromInline
    typealias ReceiverWakeup = Wakeup<ReceiveOutcome>

    /// What ``Broadcast/StateMachine/send(_:)`` asks its caller to do.
    @usableFromInline
    enum SendAction: Sendable {
        /// No receiver is subscribed: the value was not stored, and nobody will ever see it.
        case noReceivers
        /// The value is in the channel for `receiverCount` receivers. After unlocking, resume `wakeup` (the
        /// receivers that were waiting, handed the value directly) and let go of `displaced`, the value the send
        /// overwrote because some lagging receiver still owed it.
        case sent(receiverCount: Int, wakeup: ReceiverWakeup?, displaced: Element?)
    }

    /// What a single receive finds.
    @usableFromInline
    enum ReceiveAction: Sendable {
        /// The next value; the receiver's cursor moved past it.
        case value(Element)
        /// The receiver missed this many values; its cursor moved to the oldest value still held.
        case lagged(UInt64)
        /// The sender is gone and the receiver has read everything.
        case closed
        /// Nothing yet, and the caller may not wait.
        case empty
        /// Nothing yet: suspend as waiter `id` through ``Broadcast/StateMachine/receiveSuspended(receiver:id:continuation:isCancelled:)``.
        case suspend(id: UInt64)
    }

    /// What a batch receive finds.
    @usableFromInline
    enum ReceiveBatchAction: Sendable {
        /// This many values (at least one) were appended, in order.
        case values(Int)
        /// The receiver had lagged when the batch started: nothing was appended, the cursor moved to the oldest value
        /// still held.
        case lagged(UInt64)
        case closed
        /// Nothing yet: suspend as waiter `id`.
        case suspend(id: UInt64)
    }
}
