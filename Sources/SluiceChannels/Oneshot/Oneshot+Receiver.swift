extension Oneshot {
    /// The receiving half of a oneshot channel: a future for the one value.
    ///
    /// It is a reference, and any number of tasks may await it at once; they all get the same outcome. Once the
    /// value has arrived, ``value()`` and ``tryValue()`` return it again on every call, like a completed future.
    ///
    /// When the last reference to the receiver is gone, the sender learns it: ``Sender/isClosed`` becomes true,
    /// ``Sender/closed()`` returns, and a later ``Sender/send(_:)`` hands its value back. A value sent but never
    /// received is destroyed then.
    public final class Receiver: Sendable {
        @usableFromInline let storage: Storage

        @inlinable
        init(storage: Storage) { self.storage = storage }

        deinit { self.storage.receiverDropped() }

        /// The value, waiting for the sender to send it.
        ///
        /// Returns at once, without suspending, if the value is already there (including on every call after
        /// the first one that got it).
        ///
        /// ## Errors
        /// - ``RecvError/senderDropped`` if the sender was dropped without sending, or if ``close()`` was called
        ///   before a value was sent: either way no value can arrive.
        /// - `CancellationError` if the task is cancelled, whether before or while it waits.
        ///
        /// ## Cancellation
        /// Cancel-safe: a cancelled `value()` takes nothing, and a later `value()` (from this or another task)
        /// still gets the value. Cancellation only ends a wait: a value that is already there is returned even to
        /// a task that is cancelled, and one that arrived before the cancellation was noticed is returned rather
        /// than thrown away.
        ///
        /// ## Examples
        /// ```swift
        /// let channel = Oneshot<Int>.channel()
        /// let reply = channel.sender, response = channel.receiver
        /// startResponder(with: consume reply)             // sends once, or drops the sender if it gives up
        /// do {
        ///     print(try await response.value())
        /// } catch Oneshot<Int>.RecvError.senderDropped {
        ///     print("the responder left without answering")
        /// }
        /// ```
        @inlinable
        public func value() async throws -> Value {
            try await self.storage.value()
        }

        /// The value if it has been sent, without waiting.
        ///
        /// ## Errors
        /// - ``TryRecvError/empty`` if nothing was sent yet and the sender is still there.
        /// - ``TryRecvError/senderDropped`` if the sender was dropped without sending, or ``close()`` was called
        ///   before a value was sent.
        @inlinable
        public func tryValue() throws(TryRecvError) -> Value {
            try self.storage.tryValue().get()
        }

        /// Stops the sender from sending, keeping a value that was already sent.
        ///
        /// After `close()`, ``Sender/send(_:)`` fails and hands its value back, ``Sender/isClosed`` is true and
        /// ``Sender/closed()`` returns. If a value was sent before the close, ``value()`` still returns it;
        /// otherwise ``value()`` (including tasks waiting in it now) throws ``RecvError/senderDropped``. Calling it
        /// again does nothing.
        ///
        /// ## Examples
        /// ```swift
        /// response.close()                                // the requester's deadline passed
        /// if let late = try? response.tryValue() {        // a reply that beat the close is still there
        ///     cache(late)
        /// }
        /// ```
        @inlinable
        public func close() {
            self.storage.close()
        }
    }
}
