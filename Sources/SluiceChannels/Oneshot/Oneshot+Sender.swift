extension Oneshot {
    /// The sending half of a oneshot channel: it sends at most one value, and the type enforces it.
    ///
    /// `Sender` is noncopyable. ``send(_:)`` consumes it, so a second send does not compile, and there is never a
    /// second sender to race with. Dropping it without sending (letting it go out of scope, or the task that owns
    /// it ending) tells the receiver that no value will come: ``Receiver/value()`` throws
    /// ``RecvError/senderDropped``. That is how the broker answers `RESPONDER_GONE` at once.
    ///
    /// ## Moving it to another task
    /// An escaping closure, such as a `Task`'s, can capture the sender only to borrow it:
    /// `Task { [reply = consume reply] in … }` may call ``isClosed`` and ``closed()``, and drops the sender when
    /// the task ends, but cannot call the consuming ``send(_:)``. To send from another task, pass the sender
    /// through something that can give up ownership once, such as a `Mutex<Oneshot<T>.Sender?>` in a `Sendable`
    /// class that the task empties with `withLock { $0.take() }`.
    public struct Sender: ~Copyable, Sendable {
        @usableFromInline let storage: Storage
        /// Set by ``send(_:)`` before it hands the value over, so that `deinit` does not also report the sender as
        /// dropped. (`discard self` is not available for a struct with class fields; see ``MPSC/Permit``.)
        @usableFromInline var used = false

        @inlinable
        init(storage: Storage) { self.storage = storage }

        deinit {
            if !self.used { self.storage.senderDropped() }
        }

        /// Sends the value, consuming the sender. Never waits.
        ///
        /// A task waiting in ``Receiver/value()`` is resumed with the value; otherwise the value is kept until the
        /// receiver asks for it.
        ///
        /// ## Errors
        /// ``SendError`` holding `value` if the receiver has closed (``Receiver/close()``) or is gone: nothing was
        /// sent, and the value is handed back.
        ///
        /// ## Examples
        /// ```swift
        /// let channel = Oneshot<String>.channel()
        /// let reply = channel.sender, response = channel.receiver
        /// do {
        ///     try reply.send("pong")
        /// } catch {
        ///     log("requester left; dropping \(error.value)")
        /// }
        /// ```
        @inlinable
        public consuming func send(_ value: Value) throws(SendError<Value>) {
            self.used = true
            try self.storage.send(value).get()
        }

        /// True once the receiver has closed or is gone: a send now would fail.
        ///
        /// Use it to skip work whose result nobody will receive.
        @inlinable
        public var isClosed: Bool { self.storage.isClosedForSending }

        /// Waits until the receiver has closed or is gone.
        ///
        /// Returns at once if it already has. A responder can race this against its work, to stop as soon as
        /// the requester gives up.
        ///
        /// ## Errors
        /// `CancellationError` if the task is cancelled, whether before or while it waits.
        ///
        /// ## Cancellation
        /// Cancel-safe: the wait holds nothing and changes nothing; the sender can still send.
        ///
        /// ## Examples
        /// ```swift
        /// try await reply.closed()       // the requester timed out or hung up
        /// cancelExpensiveQuery()
        /// ```
        @inlinable
        public func closed() async throws(CancellationError) {
            try await self.storage.closed()
        }
    }
}
