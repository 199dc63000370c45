extension Watch {
    /// One watcher of a watch channel: it reads the current value and waits for it to change.
    ///
    /// Each receiver remembers the newest version it has *seen*; the channel keeps that record for it, so the
    /// receiver itself holds only constants and may be shared between tasks (they then share one record: a
    /// change marked seen by one task is seen for all of them). For independent watchers, use ``clone()``.
    ///
    /// The receiver counts for ``Sender/receiverCount`` until its last reference is gone.
    public final class Receiver: Sendable {
        @usableFromInline let storage: Storage
        /// This receiver's index in the channel's table of seen versions; reused by another receiver once this
        /// one is gone.
        @usableFromInline let slot: Int

        @inlinable
        init(storage: Storage, slot: Int) {
            self.storage = storage
            self.slot = slot
        }

        deinit { self.storage.receiverDropped(slot: self.slot) }

        /// The current value, without marking it seen.
        ///
        /// A following ``changed()`` still returns at once if this value had not been seen. Prefer
        /// ``borrowAndUpdate()`` when reacting to the value: reading and marking in one step cannot miss a send
        /// that lands in between.
        @inlinable
        public func borrow() -> Value {
            self.storage.borrow()
        }

        /// The current value, now marked seen: ``changed()`` waits for the next send after this.
        ///
        /// ## Examples
        /// ```swift
        /// while true {
        ///     apply(watcher.borrowAndUpdate())     // the value and the mark come from one critical section
        ///     try await watcher.changed()
        /// }
        /// ```
        @inlinable
        public func borrowAndUpdate() -> Value {
            self.storage.borrowAndUpdate(slot: self.slot)
        }

        /// Whether the channel holds a version this receiver has not seen. Marks nothing.
        ///
        /// ## Errors
        /// ``RecvError/closed`` once the sender is gone, **even if an unseen value remains** (as tokio's
        /// `has_changed`): it answers "can this still change?" first. To drain the last value, use ``changed()``,
        /// which returns once more for it, or read it with ``borrowAndUpdate()``.
        @inlinable
        public func hasChanged() throws(RecvError) -> Bool {
            try self.storage.hasChanged(slot: self.slot).get()
        }

        /// Waits until the channel holds a version this receiver has not seen, and marks the newest one seen.
        ///
        /// Returns at once, without suspending, if such a version is already there. Several sends while the
        /// receiver is busy make it return once; read the value with ``borrow()`` or ``borrowAndUpdate()``
        /// afterwards (the newest value, which may be newer still than the version marked here).
        ///
        /// ## Errors
        /// - ``RecvError/closed`` once the sender is gone and this receiver has seen the last value. A last value
        ///   it has not seen is reported as a change first, so a receiver always ends on the last value.
        /// - `CancellationError` if the task is cancelled, whether before or while it waits.
        ///
        /// ## Cancellation
        /// Cancel-safe: a cancelled `changed()` marks nothing seen, so a change that arrives meanwhile is reported
        /// by the next call. Cancellation only ends a wait: a change that is already there is returned even to a
        /// task that is cancelled, and one that resumed the task before the cancellation was noticed is returned
        /// normally, not thrown away.
        ///
        /// ## Examples
        /// ```swift
        /// let (flag, watcher) = Watch<Bool>.channel(false)
        /// Task { flag.send(true) }
        /// try await watcher.changed()
        /// print(watcher.borrowAndUpdate())            // true
        /// ```
        @inlinable
        public func changed() async throws {
            guard try await self.storage.changed(slot: self.slot) != nil else { throw RecvError.closed }
        }

        /// A new receiver that has seen exactly what this one has seen.
        ///
        /// From then on the two are independent: marking a value seen on one does not mark it on the other.
        @inlinable
        public func clone() -> Receiver {
            Receiver(storage: self.storage, slot: self.storage.cloneReceiver(slot: self.slot))
        }
    }
}

extension Watch.Receiver: AsyncSequence {
    public typealias Element = Value
    public typealias Failure = Never

    /// Iterates the current value, then the newest value after each change, until the channel closes.
    ///
    /// The first ``next()`` returns the current value at once, whether or not the receiver had seen it; each
    /// later one waits for a change and returns the newest value. Intermediate values may be skipped, but the
    /// last value sent before the sender went away is always returned before the iteration ends. Iterating marks
    /// values seen on the receiver it iterates.
    ///
    /// ## Cancellation
    /// A cancelled wait ends the iteration (`nil`) and marks nothing seen.
    ///
    /// ## Examples
    /// ```swift
    /// for await value in sender.subscribe() {   // the broker's WATCH: current value, then each newest one
    ///     try await write(.value(key, value))
    /// }
    /// ```
    public struct AsyncIterator: AsyncIteratorProtocol {
        @inlinable
        init(receiver: Watch.Receiver) {
            self.receiver = receiver
        }

        @usableFromInline let receiver: Watch.Receiver
        /// False until the current value has been handed out.
        @usableFromInline var started = false

        /// The current value on the first call; then the newest value after the next change, or `nil` once the
        /// channel has closed and the last value was returned, or the task was cancelled.
        @inlinable
        public mutating func next() async -> Value? {
            guard self.started else {
                self.started = true
                return self.receiver.borrowAndUpdate()
            }
            do {
                return try await self.receiver.storage.changed(slot: self.receiver.slot)
            } catch {
                return nil
            }
        }
    }

    @inlinable
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(receiver: self)
    }
}
