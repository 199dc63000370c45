/// A channel for exactly one value: one ``Sender`` sends at most once, one ``Receiver`` awaits it.
///
/// `Oneshot` is a reply slot. The broker creates one per request: the requester awaits the ``Receiver``, the
/// chosen responder's session holds the ``Sender``. Its states are few and each is reported precisely:
///
/// - **Value sent.** ``Receiver/value()`` returns it, at once if it is already there. The value stays: every
///   later call returns it again, and several tasks may await the same receiver.
/// - **Sender dropped without sending.** The ``Sender`` is noncopyable, so it has an end: when it is dropped
///   unsent, ``Receiver/value()`` throws ``RecvError/senderDropped`` (the broker's `RESPONDER_GONE`).
/// - **Receiver closed or gone.** ``Receiver/close()``, or dropping the last reference to the receiver, makes
///   ``Sender/send(_:)`` fail with the value handed back in a ``SendError``, and wakes ``Sender/closed()``, so a
///   responder can stop working for a requester that left. A value sent before the close can still be taken.
///
/// ``Sender/send(_:)`` consumes the sender: sending twice does not compile.
///
/// ## Cancellation
///
/// Every wait is cancel-safe. A cancelled ``Receiver/value()`` takes nothing (the next call still gets the value),
/// and a cancelled ``Sender/closed()`` leaves the sender able to send.
///
/// ## Allocation
///
/// Creating a channel, sending a value and receiving it costs two allocations in all: the shared state (one lock,
/// the state and room for one waiter per side, inline) and the ``Receiver``. A receiver that has to wait is stored
/// inline, so waiting adds none; only a second task waiting on the same receiver at the same time makes a list.
/// (An error thrown by ``Receiver/value()`` is boxed, like every untyped Swift error.)
///
/// ## Examples
///
/// ```swift
/// let channel = Oneshot<String>.channel()
/// let reply = channel.sender, response = channel.receiver
/// try reply.send("pong")                       // consumes `reply`; it cannot send again
/// print(try await response.value())            // "pong"
/// print(try response.tryValue())               // "pong" again: the value stays
/// ```
///
/// A responder that gives up:
///
/// ```swift
/// let channel = Oneshot<String>.channel()
/// let reply = channel.sender, response = channel.receiver
/// _ = consume reply                            // dropped without sending
/// do {
///     _ = try await response.value()
/// } catch Oneshot<String>.RecvError.senderDropped {
///     print("no answer will come")
/// }
/// ```
public enum Oneshot<Value: Sendable> {
    /// Creates a oneshot channel.
    ///
    /// - Returns: the two halves in a ``Channel``: `sender`, which can send once, and `receiver`, which awaits that
    ///   value. Take them apart field by field (a tuple cannot hold the noncopyable sender).
    ///
    /// ## Examples
    /// ```swift
    /// let channel = Oneshot<Int>.channel()
    /// let reply = channel.sender
    /// let response = channel.receiver
    /// ```
    @inlinable
    public static func channel() -> Channel {
        let storage = Storage()
        return Channel(sender: Sender(storage: storage), receiver: Receiver(storage: storage))
    }

    /// Creates a oneshot channel whose receiving half is an action instead of a task: the sender's one value, or
    /// the news that none will come, is handed to `delivery` on the thread that sends (or drops the sender), after
    /// the channel's lock is released.
    ///
    /// It is the callback form of ``Receiver/value()``, for a receiver that has nothing to do until the value
    /// comes: no task waits, and nothing is allocated but the channel's shared state. `delivery` is called exactly
    /// once: with `.success(value)` by ``Sender/send(_:)``, or with `.failure(.senderDropped)` when the sender is
    /// dropped unsent. There is no ``Receiver``: ``Sender/isClosed`` stays false, a send never fails, and
    /// ``Sender/closed()`` does not return (an action never goes away), so it has no use on such a channel.
    ///
    /// The broker answers requests this way: the responder's REPLY (or the timeout, or the responder leaving)
    /// writes the RESPONSE to the requester from the thread it happens on, with no task per request.
    ///
    /// - Returns: the sender.
    ///
    /// ## Examples
    /// ```swift
    /// let reply = Oneshot<String>.channel { outcome in
    ///     switch outcome {
    ///     case .success(let answer): print(answer)
    ///     case .failure(.senderDropped): print("no answer will come")
    ///     }
    /// }
    /// try reply.send("pong")                       // prints "pong" here, before `send` returns
    /// ```
    @inlinable
    public static func channel(deliveringTo delivery: @escaping Delivery) -> Sender {
        Sender(storage: Storage(delivering: delivery))
    }

    /// The two halves of a new channel, as returned by ``Oneshot/channel()``.
    ///
    /// This plays the part of the `(sender:receiver:)` tuple the other channels return: Swift does not allow a
    /// noncopyable value such as ``Sender`` in a tuple. Move the fields out one at a time,
    /// `let reply = channel.sender` and `let response = channel.receiver`; a field left in place is dropped with
    /// the struct (a sender dropped that way counts as dropped without sending).
    ///
    /// The receiver is a class, so `channel.receiver` copies the reference and the `Channel` value keeps its own
    /// until the binding's lifetime ends. Where dropping the receiver must close the channel at a precise point,
    /// split the channel in a function of its own (as the broker does), or use ``Receiver/close()``, which does
    /// not depend on lifetimes.
    @frozen
    public struct Channel: ~Copyable, Sendable {
        @inlinable
        init(sender: consuming Sender, receiver: Receiver) {
            self.sender = sender
            self.receiver = receiver
        }

        /// The sending half; sends at most once.
        public let sender: Sender
        /// The receiving half.
        public let receiver: Receiver
    }

    /// Why ``Receiver/value()`` got no value.
    public enum RecvError: Error, Equatable {
        /// No value can arrive: the sender was dropped without sending, or ``Receiver/close()`` was called before
        /// a value was sent.
        case senderDropped
    }

    /// Why ``Receiver/tryValue()`` returned no value.
    public enum TryRecvError: Error, Equatable {
        /// No value yet, and the sender can still send one.
        case empty
        /// No value can arrive: the sender was dropped without sending, or the receiver closed first.
        case senderDropped
    }
}
