/// A multi-consumer broadcast channel: every ``Receiver`` sees every value sent after it subscribed.
///
/// `Broadcast` is the fan-out channel, with the semantics of `tokio::sync::broadcast`. One ``Sender`` publishes;
/// any number of receivers, each created by ``Sender/subscribe()`` or ``Receiver/resubscribe()``, read every value
/// sent after they were created, in the order it was sent. The broker keeps one per subject: a publisher never
/// waits for subscribers, and a slow subscriber is told exactly how much it missed.
///
/// The channel holds the last `capacity` values in a ring. A value is stored **once** and shared by every receiver:
/// a class instance or an array buffer is handed to each of them by reference count, never copied per receiver.
/// Each slot counts the receivers that still have to read its value and lets go of the value as soon as the last
/// of them has read it, dropped its receiver, or fallen so far behind that the slot was reused. Memory is
/// therefore bounded by `capacity` values, and a 1 MiB payload does not outlive its last reader. The ring itself
/// starts at 16 slots and grows (doubling, up to `capacity`) only while some receiver falls behind, so a large
/// `capacity` costs little until it is needed.
///
/// A send that finds no receiver at all stores nothing: ``Sender/send(_:)`` returns `0` and the value is
/// discarded, since no receiver could ever see it.
///
/// ## Lagging
///
/// Sending never waits. When the ring is full, a send overwrites the oldest value, even if some receiver has not
/// read it yet. That receiver has *lagged*: its next ``Receiver/recv()`` (or ``Receiver/tryRecv()``) throws
/// ``RecvError/lagged(_:)`` carrying exactly the number of values it missed, and moves its cursor to the oldest
/// value still held, so the receive after that continues from there. Nothing is ever delivered twice or out of
/// order; a lagged receiver only has a gap, and the error says how large.
///
/// ```swift
/// let (sender, receiver) = Broadcast<Int>.channel(capacity: 2)
/// for i in 1...5 { sender.send(i) }          // the ring keeps only 4 and 5
///
/// do {
///     _ = try await receiver.recv()
/// } catch Broadcast<Int>.RecvError.lagged(let missed) {
///     print("missed \(missed)")               // missed 3: the values 1, 2 and 3
/// }
/// print(try await receiver.recv())           // 4
/// print(try await receiver.recv())           // 5
/// ```
///
/// ## Closing
///
/// There is no explicit close. When the last reference to the ``Sender`` is gone, each receiver first drains
/// what it has not read yet, and then every receive throws ``RecvError/closed``; receivers waiting at that
/// moment are woken with it at once. Dropping a ``Receiver`` only unsubscribes it: the values it still owed are
/// released, ``Sender/receiverCount`` drops by one, and the other receivers are not affected.
///
/// ```swift
/// let receiver = {
///     let (sender, receiver) = Broadcast<String>.channel(capacity: 8)
///     sender.send("last words")
///     return receiver
/// }()                                         // the sender is gone: the channel is closed for receivers
///
/// print(try await receiver.recv())            // "last words": what was sent is still delivered
/// do {
///     _ = try await receiver.recv()
/// } catch Broadcast<String>.RecvError.closed {
///     print("done")                           // and then the end
/// }
/// ```
///
/// ## Examples
///
/// ```swift
/// let (sender, first) = Broadcast<Int>.channel(capacity: 16)
/// let second = sender.subscribe()
///
/// sender.send(1)                              // returns 2: both receivers will see it
/// print(try await first.recv())               // 1
/// print(try await second.recv())              // 1
/// ```
public enum Broadcast<Element: Sendable> {
    /// Creates a channel that holds the last `capacity` values, with its sender and a first receiver.
    ///
    /// - Parameter capacity: how many values the channel keeps for receivers that have not read them yet, at
    ///   least 1. A receiver that falls more than `capacity` values behind lags (see ``Broadcast``).
    /// - Returns: the sender and one receiver subscribed from the start.
    ///
    /// ## Examples
    /// ```swift
    /// let (sender, receiver) = Broadcast<[UInt8]>.channel(capacity: 1024)
    /// ```
    @inlinable
    public static func channel(capacity: Int) -> (sender: Sender, receiver: Receiver) {
        precondition(capacity >= 1, "Broadcast capacity must be at least 1, got \(capacity)")
        let storage = Storage(capacity: capacity)
        let receiver = Receiver(storage: storage, slot: storage.subscribe())
        return (Sender(storage: storage), receiver)
    }

    /// Why ``Receiver/recv()`` or ``Receiver/recv(upTo:into:)`` returned no value.
    public enum RecvError: Error, Equatable {
        /// Every sender is gone and this receiver has read everything that was sent to it.
        case closed
        /// This receiver fell more than `capacity` values behind and missed exactly this many values. Its cursor
        /// has moved to the oldest value still held; the next receive continues from there.
        case lagged(UInt64)
    }

    /// Why ``Receiver/tryRecv()`` returned no value.
    public enum TryRecvError: Error, Equatable {
        /// Nothing new right now, but more may come.
        case empty
        /// Every sender is gone and this receiver has read everything that was sent to it.
        case closed
        /// This receiver missed exactly this many values; the next receive continues from the oldest value still
        /// held.
        case lagged(UInt64)
    }
}
