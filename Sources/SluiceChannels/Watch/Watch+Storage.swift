extension Watch {
    /// The shared core of one watch channel: the state machine behind a lock, and the code that acts on its
    /// answers.
    ///
    /// Every method decides under the lock and acts after it: continuations are resumed, and replaced values are
    /// destroyed, only once the lock is released. The one exception is by design: the closures of
    /// ``Sender/sendModify(_:)`` and ``Sender/sendIfModified(_:)`` run under the lock, because the point of them
    /// is an atomic read-modify-write of the value in place. The lock is a ``Locked``: a `Mutex`
    /// whose hand-overs ThreadSanitizer can see.
    @usableFromInline
    final class Storage: Sendable {
        @usableFromInline let state: Locked<StateMachine>

        @inlinable
        init(initial: Value) {
            self.state = Locked(StateMachine(initial: initial))
        }

        // MARK: Introspection (tests, and the handles' properties)

        @inlinable
        var receiverCount: Int { self.state.withLock { $0.receiverCount } }
        @inlinable
        var version: UInt64 { self.state.withLock { $0.version } }
        /// Tasks suspended in `changed()`; tests poll it to know a task is waiting.
        @inlinable
        var changeWaiterCount: Int { self.state.withLock { $0.changeWaiterCount } }
        /// Tasks suspended in the sender's `closed()`; tests poll it to know a task is waiting.
        @inlinable
        var closedWaiterCount: Int { self.state.withLock { $0.closedWaiterCount } }

        // MARK: Sender side

        @inlinable
        func sendReplace(_ value: Value) -> Value {
            let (old, wakeups) = self.state.withLock { $0.send(value) }
            wakeups.resumeAll()
            return old  // the caller destroys it, outside the lock
        }

        @inlinable
        func sendIfModified(_ body: (inout Value) -> Bool) -> Bool {
            let (modified, wakeups) = self.state.withLock { state in
                var value = state.beginModify()
                let modified = body(&value)
                return (modified, state.endModify(value, notify: modified))
            }
            wakeups.resumeAll()
            return modified
        }

        @inlinable
        func borrow() -> Value {
            self.state.withLock { $0.value }
        }

        @inlinable
        func subscribe() -> Int {
            self.state.withLock { $0.subscribe() }
        }

        @inlinable
        func senderDropped() {
            let wakeups = self.state.withLock { $0.senderDropped() }
            wakeups.resumeAll()
        }

        @inlinable
        func closed() async throws(CancellationError) {
            try await self.state.waitUntilClosed()
        }

        // MARK: Receiver side

        @inlinable
        func cloneReceiver(slot: Int) -> Int {
            self.state.withLock { $0.cloneReceiver(slot: slot) }
        }

        @inlinable
        func receiverDropped(slot: Int) {
            let wakeups = self.state.withLock { $0.receiverDropped(slot: slot) }
            wakeups.resumeAll()
        }

        @inlinable
        func borrowAndUpdate(slot: Int) -> Value {
            self.state.withLock { $0.borrowAndUpdate(slot: slot) }
        }

        @inlinable
        func hasChanged(slot: Int) -> Result<Bool, RecvError> {
            self.state.withLock { $0.hasChanged(slot: slot) }
        }

        @inlinable
        func seenVersion(slot: Int) -> UInt64? {
            self.state.withLock { $0.seenVersion(slot: slot) }
        }

        /// Waits for a version receiver `slot` has not seen and marks it seen.
        ///
        /// - Returns: the value of the version now marked seen (so that an iterator hands out exactly the version
        ///   it marked), or `nil` once the sender is gone and the last version is seen.
        @inlinable
        func changed(slot: Int) async throws(CancellationError) -> Value? {
            let id: UInt64
            switch self.state.withLock({ $0.changed(slot: slot) }) {
            case .changed(let value): return value
            case .closed: return nil
            case .suspend(let waiterID): id = waiterID
            }
            let outcome: ChangeOutcome = await suspend { continuation in
                self.state.withLock {
                    $0.changedSuspended(id: id, slot: slot, continuation: continuation, isCancelled: Task.isCancelled)
                }?.resume()
            } onCancel: {
                self.state.withLock { $0.changedCancelled(id: id) }?.resume()
            }
            switch outcome {
            case .changed(let value): return value
            case .closed: return nil
            case .cancelled: throw CancellationError()
            }
        }
    }
}
