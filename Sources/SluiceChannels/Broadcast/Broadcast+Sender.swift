extension Broadcast {
    /// The sending half of a broadcast channel. Share it freely: every reference is the same sender.
    ///
    /// The channel stays open as long as any reference to the sender exists. When the last one goes away, each
    /// receiver drains what it has not read yet and then gets ``Broadcast/RecvError/closed`` (see ``Broadcast``,
    /// "Closing").
    public final class Sender: Sendable {
        @usableFromInline let storage: Storage

        @inlinable
        init(storage: Storage) { self.storage = storage }

        deinit { self.storage.senderDropped() }

        /// Publishes a value to every current receiver. Never waits.
        ///
        /// The value is stored once, in the oldest slot of the ring, and shared by every receiver. If that slot still
        /// held a value some receiver had not read, the value is overwritten and that receiver lags (see
        /// ``Broadcast``, "Lagging"). Receivers waiting in ``Receiver/recv()`` are handed the value directly.
        ///
        /// - Parameter value: the value to publish.
        /// - Returns: how many receivers are subscribed and will see the value, unless they lag past it. When it is
        ///   `0`, nobody is subscribed and the value is **not stored**: a receiver subscribing later does not see
        ///   it. This is not an error for a broadcast: a publisher with no audience just talks to nobody.
        ///
        /// ## Examples
        /// ```swift
        /// let (sender, receiver) = Broadcast<String>.channel(capacity: 4)
        /// sender.send("hello")                    // 1: `receiver` will see it
        ///
        /// let (lonely, _) = Broadcast<String>.channel(capacity: 4)
        /// lonely.send("anyone?")                  // 0: nobody is subscribed, the value is dropped
        /// ```
        @discardableResult
        @inlinable
        public func send(_ value: Element) -> Int {
            self.storage.send(value)
        }

        /// Sends every value of `values`, in order, as ``send(_:)`` would one by one, but under one lock: receivers
        /// see them in the same order, and a publisher with many values ready pays one lock round trip, not one each.
        ///
        /// - Returns: how many receivers will see the values; 0 means nobody is subscribed and they were dropped.
        ///
        /// ## Examples
        /// ```swift
        /// let (sender, receiver) = Broadcast<Int>.channel(capacity: 8)
        /// sender.send(contentsOf: [1, 2, 3])      // 1
        /// print(try await receiver.recv())         // 1
        /// ```
        @discardableResult
        @inlinable
        public func send<Values: Collection<Element>>(contentsOf values: Values) -> Int {
            self.storage.send(contentsOf: values)
        }

        /// Sends like ``send(contentsOf:)`` and reports, from the same critical section, how far the slowest
        /// receiver is behind (see ``backlog``) when that can be more than `threshold`; nil when it cannot, which
        /// the channel knows without looking at every receiver. One lock round trip for a publisher that wants to
        /// notice a slow receiver without asking ``backlog`` after every send.
        ///
        /// - Returns: how many receivers will see the values (0: nobody is subscribed, they were dropped), and the
        ///   backlog when it may exceed `threshold`.
        ///
        /// ## Examples
        /// ```swift
        /// let (sender, receiver) = Broadcast<Int>.channel(capacity: 64)
        /// sender.send(contentsOf: [1, 2, 3], backlogAbove: 48)        // (1, nil): 3 values cannot be 48 behind
        /// ```
        @discardableResult
        public func send<Values: Collection<Element>>(
            contentsOf values: Values,
            backlogAbove threshold: Int
        ) -> (receivers: Int, backlog: Int?) {
            self.storage.send(contentsOf: values, backlogAbove: threshold)
        }

        /// Creates a new receiver that sees every value sent from now on, and nothing sent before.
        ///
        /// ## Examples
        /// ```swift
        /// let (sender, _) = Broadcast<Int>.channel(capacity: 4)
        /// sender.send(1)                          // 0: the first receiver is already gone
        /// let late = sender.subscribe()
        /// sender.send(2)                          // 1
        /// print(try await late.recv())            // 2
        /// ```
        @inlinable
        public func subscribe() -> Receiver {
            Receiver(storage: self.storage, slot: self.storage.subscribe())
        }

        /// Receivers subscribed right now.
        ///
        /// Exact at all times: a ``Receiver`` counts from the moment ``subscribe()`` (or
        /// ``Receiver/resubscribe()``) returns it until its last reference is gone, which unsubscribes it at once.
        @inlinable
        public var receiverCount: Int { self.storage.receiverCount }

        /// Values the channel holds for receivers that have not read them; a receiver further behind lags.
        @inlinable
        public var capacity: Int { self.storage.capacity }

        /// How far the slowest receiver is behind: the values sent that it has yet to take, counting any it has
        /// already lagged past (so it may exceed ``capacity``). 0 when every receiver is caught up, or there is none.
        ///
        /// A publisher that may pause can use it to let a slow receiver catch up before it lags (the broker stalls
        /// a publisher for a bounded time this way).
        ///
        /// ## Examples
        /// ```swift
        /// let (sender, receiver) = Broadcast<Int>.channel(capacity: 8)
        /// sender.send(contentsOf: [1, 2, 3])
        /// print(sender.backlog)                   // 3
        /// _ = try await receiver.recv()
        /// print(sender.backlog)                   // 2
        /// ```
        public var backlog: Int { self.storage.backlog }
    }
}
