extension Broadcast {
    /// The shared core of one channel: the state machine behind a lock, and the code that acts on its answers.
    ///
    /// The lock is a `Mutex` (through ``Locked``, so that ThreadSanitizer sees it), not an
    /// actor: nothing here awaits while holding state, the critical sections are short, and the fast paths must not
    /// hop executors.
    ///
    /// Every method decides under the lock and acts after it: waiters are resumed, and values the ring let go of
    /// are destroyed, only once the lock is released. A value's destruction can run arbitrary `deinit` code (a
    /// 1 MiB buffer being freed), and a resumed task should never contend with the thread that woke it.
    ///
    /// Receivers are addressed by the small id the state machine gave them at subscription; the
    /// ``Broadcast/Receiver`` object only carries that id, and its cursor lives here.
    @usableFromInline
    final class Storage: Sendable {
        @usableFromInline let state: Locked<StateMachine>
        /// Values the ring holds; fixed for the channel's life, so it is read without the lock.
        @usableFromInline let capacity: Int

        @inlinable
        init(capacity: Int) {
            self.capacity = capacity
            self.state = Locked(StateMachine(capacity: capacity))
        }

        // MARK: Sending

        /// Publishes `value`; returns how many receivers will see it (0: not stored).
        @inlinable
        func send(_ value: Element) -> Int {
            switch self.state.withLock({ $0.send(value) }) {
            case .noReceivers:
                return 0
            case .sent(let receiverCount, let wakeup, let displaced):
                wakeup?.resumeAll()
                // The overwritten value, if any, is destroyed here, after unlocking.
                _ = consume displaced
                return receiverCount
            }
        }

        /// Publishes every value of `values`, in order, under one lock; returns how many receivers will see them.
        @inlinable
        func send<Values: Collection<Element>>(contentsOf values: Values) -> Int {
            self.send(contentsOf: values, backlogAbove: .max).receivers
        }

        /// Sends like ``send(contentsOf:)`` and, in the same critical section, measures the backlog when it can
        /// exceed `threshold`: that needs more values owed than `threshold`, so a ring not grown past it (the
        /// usual case) answers nil without a look at the receivers.
        @inlinable
        func send<Values: Collection<Element>>(
            contentsOf values: Values,
            backlogAbove threshold: Int
        ) -> (receivers: Int, backlog: Int?) {
            var displacedValues: [Element] = []
            var wakeups: [ReceiverWakeup] = []
            let result = self.state.withLock { state -> (Int, Int?) in
                var receivers = state.receiverCount
                for value in values {
                    switch state.send(value) {
                    case .noReceivers:
                        return (0, nil)
                    case .sent(let receiverCount, let wakeup, let displaced):
                        // Only a send that finds receivers waiting wakes any, so normally just the first one.
                        if let wakeup { wakeups.append(wakeup) }
                        if let displaced { displacedValues.append(displaced) }
                        receivers = receiverCount
                    }
                }
                // Owed values live in the ring (it grows only to keep them), so a backlog over `threshold` needs a
                // ring larger than `threshold`, or one already at capacity (lag counts past it).
                let mayExceed = state.slots.count > threshold || state.slots.count == state.capacity
                return (receivers, mayExceed && threshold < .max ? state.backlog : nil)
            }
            for wakeup in wakeups { wakeup.resumeAll() }
            // The overwritten values are destroyed here, after unlocking.
            _ = consume displacedValues
            return result
        }

        @inlinable
        func senderDropped() {
            self.state.withLock { $0.senderDropped() }?.resumeAll()
        }

        // MARK: Subscription

        @inlinable
        func subscribe() -> Int {
            self.state.withLock { $0.subscribe() }
        }

        @inlinable
        func unsubscribe(receiver: Int) {
            let released = self.state.withLock { $0.unsubscribe(receiver: receiver) }
            // Values only this receiver still owed are destroyed here, after unlocking.
            _ = consume released
        }

        @inlinable
        var receiverCount: Int { self.state.withLock { $0.receiverCount } }

        var backlog: Int { self.state.withLock { $0.backlog } }

        @inlinable
        func pendingCount(receiver: Int) -> Int {
            self.state.withLock { $0.pendingCount(receiver: receiver) }
        }

        // MARK: Receiving

        @inlinable
        func tryReceive(receiver: Int) -> Result<Element, TryRecvError> {
            switch self.state.withLock({ $0.receive(receiver: receiver, mayWait: false) }) {
            case .value(let value): return .success(value)
            case .lagged(let missed): return .failure(.lagged(missed))
            case .closed: return .failure(.closed)
            case .empty: return .failure(.empty)
            case .suspend: preconditionFailure("Broadcast.tryRecv got .suspend although it may not wait")
            }
        }

        @inlinable
        func receive(receiver: Int) async throws -> Element {
            let id: UInt64
            switch self.state.withLock({ $0.receive(receiver: receiver, mayWait: true) }) {
            case .value(let value): return value
            case .lagged(let missed): throw RecvError.lagged(missed)
            case .closed: throw RecvError.closed
            case .empty: preconditionFailure("Broadcast.recv got .empty although it may wait")
            case .suspend(let waiterID): id = waiterID
            }
            return try await self.waitForValue(receiver: receiver, id: id)
        }

        @inlinable
        func receive(receiver: Int, upTo limit: Int, into values: inout [Element]) async throws -> Int {
            let id: UInt64
            switch self.state.withLock({ $0.receive(receiver: receiver, upTo: limit, into: &values) }) {
            case .values(let taken): return taken
            case .lagged(let missed): throw RecvError.lagged(missed)
            case .closed: throw RecvError.closed
            case .suspend(let waiterID): id = waiterID
            }
            // Wait for the first value, then take whatever else is ready without waiting again. A lag found then is
            // left for the next receive, so the value already taken is not lost to an error.
            values.append(try await self.waitForValue(receiver: receiver, id: id))
            guard limit > 1 else { return 1 }
            return 1 + self.state.withLock { $0.receiveReady(receiver: receiver, upTo: limit - 1, into: &values) }
        }

        @inlinable
        func waitForValue(receiver: Int, id: UInt64) async throws -> Element {
            let outcome: ReceiveOutcome = await suspend { continuation in
                self.state.withLock {
                    $0.receiveSuspended(
                        receiver: receiver,
                        id: id,
                        continuation: continuation,
                        isCancelled: Task.isCancelled
                    )
                }?.resume()
            } onCancel: {
                self.state.withLock { $0.receiveCancelled(id: id) }?.resume()
            }
            switch outcome {
            case .value(let value): return value
            case .lagged(let missed): throw RecvError.lagged(missed)
            case .closed: throw RecvError.closed
            case .cancelled: throw CancellationError()
            }
        }

        // MARK: Introspection for tests

        /// Suspended receives, across all receivers.
        @inlinable
        var waiterCount: Int { self.state.withLock { $0.waiterCount } }

        /// Slots holding a value right now: what the channel keeps alive.
        @inlinable
        var heldValueCount: Int { self.state.withLock { $0.heldValueCount } }

        /// The position the next send gets.
        @inlinable
        var tail: UInt64 { self.state.withLock { $0.tail } }

        /// The first broken invariant of the state machine, or `nil`.
        @inlinable
        func invariantViolation() -> String? { self.state.withLock { $0.invariantViolation() } }

        /// The position `receiver` reads next.
        @inlinable
        func cursor(of receiver: Int) -> UInt64 {
            self.state.withLock { $0.cursor(of: receiver) }
        }
    }
}
