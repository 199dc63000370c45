/// A multi-producer, single-consumer channel: many ``Sender``s feed one ``Receiver``, in order.
///
/// `MPSC` is the channel to reach for when several tasks hand work to one task: the broker's session writer,
/// a work queue, an actor-like loop that owns some state. It comes in two flavours:
///
/// - **Bounded** (``channel(capacity:)``): at most `capacity` values are buffered. ``Sender/send(_:)`` waits
///   while the channel is full, and waiting senders get room in the order they arrived. That wait is the
///   backpressure: a producer can never run ahead of its consumer by more than `capacity` values.
/// - **Unbounded** (``unboundedChannel()``): sends never wait. Use it only where something else bounds the
///   producer, since memory grows with the backlog.
///
/// Values from one sender arrive in the order that sender sent them. Sending a value and receiving it
/// allocates nothing when nobody has to wait, and takes no lock when the channel has room and nobody waits.
///
/// ## Memory
///
/// A channel allocates its ring when it is created: `capacity` slots (at least 2, rounded up to a power of two), at
/// most 1,024. An unbounded channel, or a bounded one with more slots, keeps further values in a buffer that grows
/// with the backlog.
///
/// ## Disconnection
///
/// The channel needs no explicit "finish" call. When every reference to the ``Sender`` is gone, the receiver
/// drains what is buffered and then ``Receiver/recv()`` returns `nil`. ``Receiver/close()`` makes every later
/// send fail with its value handed back, while buffered values can still be drained. Dropping the
/// ``Receiver`` fails waiting senders the same way and discards what was buffered.
///
/// ## Examples
///
/// ```swift
/// let (sender, receiver) = MPSC<Int>.channel(capacity: 2)
/// Task {
///     for i in 1...5 { try await sender.send(i) }   // waits whenever two values are pending
/// }                                                 // the task ends, the sender goes with it
/// for await value in receiver { print(value) }      // 1 2 3 4 5, then the loop ends
/// ```
public enum MPSC<Element: Sendable> {
    /// Creates a bounded channel that buffers at most `capacity` values.
    ///
    /// - Parameter capacity: slots in the channel, at least 1. A slot is taken by a buffered value or by a
    ///   ``Permit`` and freed when the value is received or the permit is dropped.
    /// - Returns: the sending and the receiving half.
    @inlinable
    public static func channel(capacity: Int) -> (sender: Sender, receiver: Receiver) {
        precondition(capacity >= 1, "MPSC capacity must be at least 1, got \(capacity)")
        let storage = Storage(capacity: capacity)
        return (Sender(storage: storage), Receiver(storage: storage))
    }

    /// Creates a channel whose sends never wait.
    ///
    /// Memory grows with the number of values sent and not yet received: use it only where something else
    /// bounds the producer.
    @inlinable
    public static func unboundedChannel() -> (sender: Sender, receiver: Receiver) {
        let storage = Storage(capacity: nil)
        return (Sender(storage: storage), Receiver(storage: storage))
    }

    /// A channel whose lock-free ring has at most `ringLimit` slots; values beyond it wait in the spill (under the
    /// lock) until the ring has room, so the capacity is unchanged. For channels that are usually nearly empty but
    /// must allow bursts, where a full 1,024-slot ring allocated up front would cost more than it saves (the
    /// broker's per-connection outbox), and for tests that reach the spill with a handful of values. `capacity`
    /// `nil` is unbounded.
    package static func channel(capacity: Int?, ringLimit: Int) -> (sender: Sender, receiver: Receiver) {
        let storage = Storage(capacity: capacity, ringLimit: ringLimit)
        return (Sender(storage: storage), Receiver(storage: storage))
    }

    /// Why ``Receiver/tryRecv()`` returned no value.
    public enum TryRecvError: Error, Equatable {
        /// Nothing is buffered right now, but more may come.
        case empty
        /// Nothing is buffered and nothing more can come: every sender is gone, or the receiver closed.
        case disconnected
    }
}
