extension Oneshot {
    /// The shared core of one oneshot channel: the state machine behind a lock, and the code that acts on its
    /// answers.
    ///
    /// This object is the channel's one shared allocation (the lock and the state are stored inline, and the
    /// first waiter of each side is stored inline in the state). The lock is a ``Locked``: a
    /// `Mutex` whose hand-overs ThreadSanitizer can see. The ``Sender`` is a struct holding a reference to
    /// it; the ``Receiver`` is the only other object. Every method decides under the lock and acts after it:
    /// continuations are resumed, and an undeliverable value is destroyed, only once the lock is released.
    @usableFromInline
    final class Storage: Sendable {
        @usableFromInline let state: Locked<StateMachine>

        @inlinable
        init() { self.state = Locked(StateMachine()) }

        @inlinable
        init(delivering delivery: @escaping Delivery) { self.state = Locked(StateMachine(delivering: delivery)) }

        // MARK: Introspection (tests, and the handles' properties)

        @inlinable
        var isClosedForSending: Bool { self.state.withLock { $0.isClosedForSending } }
        /// Tasks suspended in `value()`; tests poll it to know a task is waiting.
        @inlinable
        var receiveWaiterCount: Int { self.state.withLock { $0.receiveWaiterCount } }
        /// Tasks suspended in the sender's `closed()`; tests poll it to know a task is waiting.
        @inlinable
        var closedWaiterCount: Int { self.state.withLock { $0.closedWaiterCount } }

        // MARK: Sender side

        @inlinable
        func send(_ value: Value) -> Result<Void, SendError<Value>> {
            switch self.state.withLock({ $0.send(value) }) {
            case .stored: return .success(())
            case .resumeReceivers(let wakeups):
                wakeups.resumeAll()
                return .success(())
            case .closed: return .failure(SendError(value))
            case .deliver(let delivery):
                delivery(.success(value))
                return .success(())
            }
        }

        @inlinable
        func senderDropped() {
            switch self.state.withLock({ $0.senderDropped() }) {
            case .none: break
            case .resumeReceivers(let wakeups): wakeups.resumeAll()
            case .deliver(let delivery): delivery(.failure(.senderDropped))
            }
        }

        @inlinable
        func closed() async throws(CancellationError) {
            try await self.state.waitUntilClosed()
        }

        // MARK: Receiver side

        @inlinable
        func tryValue() -> Result<Value, TryRecvError> {
            switch self.state.withLock({ $0.receive(mayWait: false) }) {
            case .value(let value): return .success(value)
            case .senderDropped, .closed: return .failure(.senderDropped)
            case .empty: return .failure(.empty)
            case .suspend: preconditionFailure("Oneshot tryValue got .suspend although it may not wait")
            }
        }

        @inlinable
        func value() async throws -> Value {
            let id: UInt64
            switch self.state.withLock({ $0.receive(mayWait: true) }) {
            case .value(let value): return value
            case .senderDropped, .closed: throw RecvError.senderDropped
            case .empty: preconditionFailure("Oneshot value() got .empty although it may wait")
            case .suspend(let waiterID): id = waiterID
            }
            let outcome: ReceiveOutcome = await suspend { continuation in
                self.state.withLock {
                    $0.receiveSuspended(id: id, continuation: continuation, isCancelled: Task.isCancelled)
                }?.resume()
            } onCancel: {
                self.state.withLock { $0.receiveCancelled(id: id) }?.resume()
            }
            switch outcome {
            case .value(let value): return value
            case .senderDropped, .closed: throw RecvError.senderDropped
            case .cancelled: throw CancellationError()
            }
        }

        @inlinable
        func close() {
            let (receivers, senders) = self.state.withLock { $0.receiverClosed() }
            receivers?.resumeAll()
            senders?.resumeAll()
        }

        @inlinable
        func receiverDropped() {
            let (undelivered, senders) = self.state.withLock { $0.receiverDropped() }
            senders?.resumeAll()
            _ = consume undelivered  // a value nobody can receive any more is destroyed here, after unlocking
        }
    }
}
