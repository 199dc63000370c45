extension Broadcast {
    /// One subscription to a broadcast channel: it reads, in order, every value sent after it was created.
    ///
    /// A receiver is a reference to one subscription, and its position in the channel lives inside the channel, so
    /// every method is safe to call from any task. Tasks that share a receiver share its cursor: each value goes to
    /// exactly one of them, the oldest waiting first, and the order is the receiver's order. For an independent
    /// copy of the stream, use ``resubscribe()`` or ``Sender/subscribe()``.
    ///
    /// When the last reference is gone the receiver unsubscribes: ``Sender/receiverCount`` drops at once, and values
    /// only this receiver still had to read are released.
    public final class Receiver: Sendable {
        @usableFromInline let storage: Storage
        /// This receiver's id in the channel's receiver table, where its cursor lives.
        @usableFromInline let slot: Int

        @inlinable
        init(storage: Storage, slot: Int) {
            self.storage = storage
            self.slot = slot
        }

        deinit { self.storage.unsubscribe(receiver: self.slot) }

        /// Receives the next value, waiting until one is sent.
        ///
        /// A value that is already in the channel is returned at once, without suspending.
        ///
        /// ## Errors
        /// - ``Broadcast/RecvError/lagged(_:)`` with the exact number of values missed, if this receiver fell more
        ///   than `capacity` values behind. Its cursor then moves to the oldest value still held, and the next call
        ///   returns that value.
        /// - ``Broadcast/RecvError/closed`` once the sender is gone and this receiver has read everything.
        /// - `CancellationError` if the task is cancelled while waiting.
        ///
        /// ## Cancellation
        /// Cancel-safe: a cancelled `recv` has consumed nothing, and the next receive gets the value it would have
        /// got. A value that is ready is returned even if the task is already cancelled; a value handed to the
        /// waiting task before the cancellation took effect is returned too, so none is ever lost.
        ///
        /// ## Examples
        /// ```swift
        /// while true {
        ///     do {
        ///         handle(try await receiver.recv())
        ///     } catch Broadcast<Message>.RecvError.lagged(let missed) {
        ///         log("slow consumer, skipped \(missed)")   // and go on from the oldest value still held
        ///     } catch {
        ///         break                                      // closed, or cancelled
        ///     }
        /// }
        /// ```
        @inlinable
        public func recv() async throws -> Element {
            try await self.storage.receive(receiver: self.slot)
        }

        /// Receives the next value if one is ready, without waiting.
        ///
        /// ## Errors
        /// - ``Broadcast/TryRecvError/empty`` when no new value has been sent yet.
        /// - ``Broadcast/TryRecvError/lagged(_:)`` with the exact number of values missed; the cursor moves to the
        ///   oldest value still held, as for ``recv()``.
        /// - ``Broadcast/TryRecvError/closed`` once the sender is gone and this receiver has read everything.
        @inlinable
        public func tryRecv() throws(TryRecvError) -> Element {
            try self.storage.tryReceive(receiver: self.slot).get()
        }

        /// Appends every ready value, up to `limit`, to `values` under one lock; reuse one array to receive without
        /// allocating.
        ///
        /// Waits only when nothing is ready; it then returns as soon as the first value arrives, together with
        /// whatever else is ready by the time it takes the lock again.
        ///
        /// - Parameters:
        ///   - limit: the most values to append, at least 1.
        ///   - values: the array the values are appended to, in order.
        /// - Returns: how many values were appended, between 1 and `limit`.
        ///
        /// ## Errors
        /// - ``Broadcast/RecvError/lagged(_:)`` when this receiver has lagged at the moment the call starts: nothing is
        ///   appended, the cursor moves to the oldest value still held, and the next call continues from there. A
        ///   lag that happens while values are being collected after a wait is not thrown: the call returns what it
        ///   has, and the next call reports the lag.
        /// - ``Broadcast/RecvError/closed`` once the sender is gone and this receiver has read everything.
        /// - `CancellationError` if the task is cancelled while waiting.
        ///
        /// ## Cancellation
        /// Cancel-safe like ``recv()``: nothing is appended and nothing consumed.
        ///
        /// ## Examples
        /// ```swift
        /// var batch: [Message] = []
        /// while true {
        ///     batch.removeAll(keepingCapacity: true)
        ///     _ = try await receiver.recv(upTo: 64, into: &batch)
        ///     try await connection.write(batch)                  // one write for up to 64 messages
        /// }
        /// ```
        @inlinable
        public func recv(upTo limit: Int, into values: inout [Element]) async throws -> Int {
            precondition(limit >= 1, "Broadcast.recv(upTo:) needs a limit of at least 1, got \(limit)")
            return try await self.storage.receive(receiver: self.slot, upTo: limit, into: &values)
        }

        /// Creates a new receiver of the same channel, starting at its current tail.
        ///
        /// The new receiver sees every value sent from now on, whatever this receiver has or has not read yet.
        /// Resubscribing to a channel whose sender is gone gives a receiver that is closed at once.
        @inlinable
        public func resubscribe() -> Receiver {
            Receiver(storage: self.storage, slot: self.storage.subscribe())
        }

        /// Values sent that this receiver has not received yet, including values it has lagged past.
        ///
        /// When this is larger than the channel's capacity, the next receive reports a lag.
        @inlinable
        public var count: Int { self.storage.pendingCount(receiver: self.slot) }

        /// True when no value has been sent that this receiver has not received yet.
        @inlinable
        public var isEmpty: Bool { self.count == 0 }
    }
}
