extension Watch {
    /// The sending half of a watch channel: it owns the value, replaces or modifies it, and counts the receivers.
    ///
    /// It is a reference; share it freely, and every task holding it may send. The channel closes for the
    /// receivers when the **last reference** is gone: each ``Receiver/changed()`` then returns once more if its
    /// receiver has not seen the last value, and throws ``RecvError/closed`` after that.
    ///
    /// Sends never wait and never fail. A value sent while no receiver exists is still stored: a receiver that
    /// subscribes later sees it (see ``subscribe()``).
    ///
    /// ## Closures run under the lock
    /// ``sendModify(_:)`` and ``sendIfModified(_:)`` run their closure while holding the channel lock, so that
    /// the read-modify-write is atomic with respect to other senders and to every receiver. The closure must be
    /// short, must not block or suspend, and must not call back into this channel (through this sender or any of
    /// its receivers): the lock is not re-entrant, and re-entering it stops the process.
    public final class Sender: Sendable {
        @usableFromInline let storage: Storage

        @inlinable
        init(storage: Storage) { self.storage = storage }

        deinit { self.storage.senderDropped() }

        /// Replaces the value and notifies every receiver.
        ///
        /// The value is stored even when no receiver exists. The old value is destroyed after the lock is released.
        ///
        /// ## Examples
        /// ```swift
        /// let (config, _) = Watch<Config>.channel(.defaults)
        /// config.send(try loadConfig())       // every watcher's changed() returns
        /// ```
        @inlinable
        public func send(_ value: Value) {
            _ = self.storage.sendReplace(value)
        }

        /// Modifies the value in place and notifies every receiver, whatever the closure did.
        ///
        /// - Parameter body: runs under the channel lock; it must not block, suspend or call back into the channel.
        ///
        /// ## Examples
        /// ```swift
        /// let (counter, watcher) = Watch<Int>.channel(0)
        /// counter.sendModify { $0 += 1 }      // atomic against other tasks doing the same
        /// ```
        @inlinable
        public func sendModify(_ body: (inout Value) -> Void) {
            _ = self.storage.sendIfModified { value in
                body(&value)
                return true
            }
        }

        /// Modifies the value in place and notifies the receivers only if the closure returns `true`.
        ///
        /// When `body` returns `false` the version does not change and no receiver is woken, **even if `body`
        /// changed the value**: receivers then see the new value only through ``Receiver/borrow()`` or after a
        /// later notifying send. Return `false` only when the value is unchanged, or when the change does not
        /// matter to watchers.
        ///
        /// - Parameter body: runs under the channel lock; it must not block, suspend or call back into the channel.
        /// - Returns: what `body` returned, that is, whether the receivers were notified.
        ///
        /// ## Examples
        /// ```swift
        /// let (members, _) = Watch<Set<String>>.channel([])
        /// members.sendIfModified { $0.insert("eu-1").inserted }   // a duplicate wakes nobody
        /// ```
        @discardableResult
        @inlinable
        public func sendIfModified(_ body: (inout Value) -> Bool) -> Bool {
            self.storage.sendIfModified(body)
        }

        /// Replaces the value, notifies every receiver, and returns the value it replaced.
        ///
        /// ## Examples
        /// ```swift
        /// let (state, _) = Watch<String>.channel("starting")
        /// let previous = state.sendReplace("running")    // "starting"
        /// ```
        @discardableResult
        @inlinable
        public func sendReplace(_ value: Value) -> Value {
            self.storage.sendReplace(value)
        }

        /// The current value. Does not affect what any receiver has seen.
        @inlinable
        public func borrow() -> Value {
            self.storage.borrow()
        }

        /// Creates a receiver that has already seen the current value: its ``Receiver/changed()`` waits for the
        /// next send.
        ///
        /// To act on the current value too, read it first with ``Receiver/borrowAndUpdate()`` (or iterate the
        /// receiver, which yields the current value first).
        ///
        /// ## Examples
        /// ```swift
        /// let watcher = shutdown.subscribe()
        /// if watcher.borrowAndUpdate() { return }          // already shutting down
        /// try await watcher.changed()                      // wait for the flag to flip
        /// ```
        @inlinable
        public func subscribe() -> Receiver {
            Receiver(storage: self.storage, slot: self.storage.subscribe())
        }

        /// The number of receivers alive right now, exactly.
        ///
        /// A receiver counts from its creation (``Watch/channel(_:)``, ``subscribe()``, ``Receiver/clone()``) until
        /// its last reference is gone.
        @inlinable
        public var receiverCount: Int { self.storage.receiverCount }

        /// True when no receiver exists. It can become false again through ``subscribe()``.
        @inlinable
        public var isClosed: Bool { self.receiverCount == 0 }

        /// Waits until every receiver is gone.
        ///
        /// Returns at once if there is no receiver now. Receivers created later (through ``subscribe()``) do not
        /// matter to a `closed()` that has already returned.
        ///
        /// ## Errors
        /// `CancellationError` if the task is cancelled, whether before or while it waits.
        ///
        /// ## Cancellation
        /// Cancel-safe: the wait holds nothing and changes nothing.
        ///
        /// ## Examples
        /// ```swift
        /// let (progress, watcher) = Watch<Int>.channel(0)
        /// showProgress(consume watcher)            // a task that watches until 100, then drops its receiver
        /// for percent in 1...100 { progress.send(percent) }
        /// try await progress.closed()              // the display has finished
        /// ```
        @inlinable
        public func closed() async throws(CancellationError) {
            try await self.storage.closed()
        }
    }
}
