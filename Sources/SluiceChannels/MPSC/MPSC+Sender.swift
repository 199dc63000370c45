extension MPSC {
    /// The sending half of a channel. Share it freely: it is a reference, and every task holding it may send.
    ///
    /// The channel stays open for receiving as long as any reference to the sender (or a ``Permit`` taken from
    /// it) exists. When the last one goes away the receiver drains what is buffered and then sees the end.
    public final class Sender: Sendable {
        @usableFromInline let storage: Storage

        @inlinable
        init(storage: Storage) { self.storage = storage }

        deinit { self.storage.sendersDropped() }

        /// Sends a value, waiting for a free slot while a bounded channel is full.
        ///
        /// Waiting senders get slots in the order they started waiting, and a new `send` queues behind them.
        /// When the receiver is waiting on an empty channel the value goes straight to it.
        ///
        /// - Parameter value: the value to send.
        ///
        /// ## Errors
        /// - ``SendError`` holding `value` if the receiver has closed or is gone, including while waiting.
        /// - `CancellationError` if the task is cancelled while waiting.
        ///
        /// ## Cancellation
        /// If the task is cancelled while waiting, the value is **not** enqueued and `CancellationError` is thrown
        /// (the caller still holds its own copy). If the value was enqueued before the cancellation was noticed,
        /// `send` returns normally: a value is never both enqueued and reported as failed. To wait for room
        /// without risking the value at all, use ``reserve()`` and send through the ``Permit``.
        ///
        /// ## Examples
        /// ```swift
        /// do {
        ///     try await sender.send(job)
        /// } catch let error as SendError<Job> {
        ///     requeue(error.value)                     // the consumer is gone; nothing was lost
        /// }
        /// ```
        @inlinable @inline(__always)
        public func send(_ value: Element) async throws {
            try await self.storage.send(value)
        }

        /// Sends a value if there is room now, without waiting.
        ///
        /// - Returns: `.success` if the value is in the channel.
        ///
        /// ## Errors
        /// - ``TrySendError/full(_:)`` when no slot is free, or when other senders are already waiting for one
        ///   (a `trySend` never overtakes them).
        /// - ``TrySendError/closed(_:)`` when the receiver has closed or is gone.
        ///
        /// Either way the value is handed back in the error.
        @discardableResult
        @inlinable
        public func trySend(_ value: Element) -> Result<Void, TrySendError<Element>> {
            self.storage.trySend(value)
        }

        /// Waits for a free slot and holds it in a ``Permit``.
        ///
        /// Sending through the permit never waits and never fails for lack of room. A permit dropped without
        /// sending gives its slot back. In an unbounded channel this returns at once.
        ///
        /// ## Errors
        /// - ``ClosedError`` if the receiver has closed or is gone.
        /// - `CancellationError` if the task is cancelled while waiting.
        ///
        /// ## Cancellation
        /// Cancel-safe: a cancelled `reserve` holds no slot and has lost nothing, because it carried no value.
        ///
        /// ## Examples
        /// ```swift
        /// let permit = try await sender.reserve()      // wait for room first…
        /// let job = try await fetchNextJob()           // …then produce the value
        /// try permit.send(job)                         // never waits
        /// ```
        @inlinable
        public func reserve() async throws -> Permit {
            Permit(sender: self, inSpill: try await self.storage.reserve())
        }

        /// Takes a free slot now if there is one.
        ///
        /// ## Errors
        /// ``TrySendError/full(_:)`` or ``TrySendError/closed(_:)``, carrying `()`.
        @inlinable
        public func tryReserve() throws(TrySendError<Void>) -> Permit {
            Permit(sender: self, inSpill: try self.storage.tryReserve().get())
        }

        /// Slots in total, or `nil` for an unbounded channel.
        @inlinable
        public var capacity: Int? { self.storage.capacity }

        /// True once the receiver has closed or is gone: every send from now on fails.
        @inlinable
        public var isClosed: Bool { self.storage.isClosedForSending }
    }

    /// One reserved slot of a bounded channel, from ``Sender/reserve()``.
    ///
    /// A permit is noncopyable: it holds exactly one slot and is used at most once. ``send(_:)`` consumes it;
    /// dropping it unused gives the slot back, which may admit the oldest waiting sender. A permit keeps its
    /// sender alive, so the channel does not end while one is outstanding.
    public struct Permit: ~Copyable, Sendable {
        @usableFromInline let sender: Sender
        /// True if the slot lies beyond the channel's ring (a large or unbounded channel whose ring is full): it is
        /// then counted under the channel lock instead of being one of the ring's permits.
        @usableFromInline let inSpill: Bool
        /// Set when the slot was spent on a value, so `deinit` does not give it back a second time.
        @usableFromInline var spent = false

        @inlinable
        init(sender: Sender, inSpill: Bool) {
            self.sender = sender
            self.inSpill = inSpill
        }

        /// Puts `value` into the reserved slot. Never waits.
        ///
        /// After ``Receiver/close()`` the value is still accepted, and the receiver drains it.
        ///
        /// ## Errors
        /// ``SendError`` holding `value` only if the receiver is gone entirely (dropped), so nobody could ever
        /// receive it.
        @inlinable
        public consuming func send(_ value: Element) throws(SendError<Element>) {
            self.spent = true
            try self.sender.storage.permitSend(value, inSpill: self.inSpill).get()
        }

        deinit {
            if !self.spent { self.sender.storage.permitDropped(inSpill: self.inSpill) }
        }
    }
}
