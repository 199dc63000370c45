public import Synchronization

extension MPSC {
    /// The shared core of one channel: the state machine behind a lock, and the code that acts on its answers.
    ///
    /// Every method decides under the lock and acts after it: continuations are resumed, and dropped values are
    /// destroyed, only once the lock is released, so a resumed task never contends with the thread that woke it.
    /// A `Mutex` (not an actor) because nothing here awaits while holding state, the critical sections are a
    /// few instructions, and the fast paths must not hop executors.
    @usableFromInline
    final class Storage: Sendable {
        @usableFromInline let state: Locked<StateMachine>
        /// Lets a receiver about to park spin for the next value instead; senders end the spin. See
        /// ``ArrivalSignal`` for why and when.
        @usableFromInline let arrival = ArrivalSignal()
        /// The receiver's running total of values handed out from its `recv()` batches, published without the
        /// channel lock (see ``Receiver/taken``); the state machine applies it lazily to free their slots.
        @usableFromInline let handedOut = Atomic<UInt64>(0)
        /// Set (under the lock) by a sender about to wait for a slot; tells the receiver that handing out a
        /// batch value must free its slot now. With `handedOut` this is a Dekker pair: the sender stores the
        /// flag then loads the total, the receiver stores the total then loads the flag, all sequentially
        /// consistent, so at least one of them sees the other and a freed slot always reaches a waiting sender.
        @usableFromInline let sendersWaiting = Atomic<Bool>(false)

        @inlinable
        init(capacity: Int?) {
            self.state = Locked(StateMachine(capacity: capacity))
        }

        @inlinable
        var capacity: Int? { self.state.withLock { $0.capacity } }
        @inlinable
        var count: Int { self.state.withLock { $0.count } }
        @inlinable
        var isClosedForSending: Bool { self.state.withLock { $0.isClosedForSending } }

        // MARK: Sending

        @inlinable
        func trySend(_ value: Element) -> Result<Void, TrySendError<Element>> {
            var action = self.state.withLock { $0.send(value, mayWait: false) }
            if case .full = action {
                // The receiver may have handed out batch values it has not reported yet: count them, then retry.
                let total = self.handedOut.load(ordering: .sequentiallyConsistent)
                action = self.state.withLock {
                    $0.applyHandedOut(total)
                    return $0.send(value, mayWait: false)
                }
            }
            switch action {
            case .stored:
                self.arrival.notify()
                return .success(())
            case .resumeReceiver(let receiver):
                receiver.resume()
                return .success(())
            case .full, .suspend: return .failure(.full(value))
            case .closed: return .failure(.closed(value))
            }
        }

        @inlinable
        func send(_ value: Element) async throws {
            let id: UInt64
            switch self.state.withLock({ $0.send(value, mayWait: true) }) {
            case .stored:
                self.arrival.notify()
                return
            case .resumeReceiver(let receiver):
                receiver.resume()
                return
            case .closed: throw SendError(value)
            case .full: preconditionFailure("MPSC.send got .full although it may wait")
            case .suspend(let waiterID): id = waiterID
            }
            switch await self.waitForSlot(id: id, value: value) {
            case .sent: return
            case .closed: throw SendError(value)
            case .cancelled: throw CancellationError()
            case .reserved: preconditionFailure("MPSC.send waiter with a value was resumed as a reservation")
            }
        }

        /// Waits until a slot is free and the reservation is ours.
        @inlinable
        func reserve() async throws {
            let id: UInt64
            switch self.state.withLock({ $0.reserve() }) {
            case .reserved: return
            case .closed: throw ClosedError()
            case .suspend(let waiterID): id = waiterID
            }
            switch await self.waitForSlot(id: id, value: nil) {
            case .reserved: return
            case .closed: throw ClosedError()
            case .cancelled: throw CancellationError()
            case .sent: preconditionFailure("MPSC.reserve waiter was resumed as a send")
            }
        }

        @inlinable
        func tryReserve() -> Result<Void, TrySendError<Void>> {
            let total = self.handedOut.load(ordering: .sequentiallyConsistent)
            return self.state.withLock { state -> Result<Void, TrySendError<Void>> in
                if state.isClosedForSending { return .failure(.closed(())) }
                state.applyHandedOut(total)
                // A reserve that would have to wait gets an id it never uses; ids only need to be unique.
                if case .reserved = state.reserve() { return .success(()) }
                return .failure(.full(()))
            }
        }

        @inlinable
        func waitForSlot(id: UInt64, value: Element?) async -> SendOutcome {
            await suspend { continuation in
                let (action, receiver) = self.state.withLock {
                    // About to wait: first make sure the receiver has not freed slots we do not know of yet.
                    self.sendersWaiting.store(true, ordering: .sequentiallyConsistent)
                    $0.applyHandedOut(self.handedOut.load(ordering: .sequentiallyConsistent))
                    return $0.sendSuspended(
                        id: id,
                        value: value,
                        continuation: continuation,
                        isCancelled: Task.isCancelled
                    )
                }
                receiver?.resume()
                if case .resume(let sender) = action { sender.resume() }
            } onCancel: {
                self.state.withLock { $0.sendCancelled(id: id) }?.resume()
            }
        }

        @inlinable
        func permitSend(_ value: Element) -> Result<Void, SendError<Element>> {
            switch self.state.withLock({ $0.permitSend(value) }) {
            case .delivered(let stored, let wakeups):
                if stored { self.arrival.notify() }
                wakeups.resumeAll()
                return .success(())
            case .closed: return .failure(SendError(value))
            }
        }

        @inlinable
        func permitDropped() {
            self.state.withLock { $0.permitDropped() }.resumeAll()
        }

        // MARK: Receiving

        @inlinable
        func tryReceive() -> Result<Element, TryRecvError> {
            switch self.state.withLock({ $0.receive(mayWait: false) }) {
            case .value(let value, let sender):
                sender?.resume()
                return .success(value)
            case .finished: return .failure(.disconnected)
            case .empty, .suspend: return .failure(.empty)
            }
        }

        @inlinable
        func receive() async throws(CancellationError) -> Element? {
            var spun = false
            while true {
                switch self.state.withLock({ $0.receive(mayWait: true) }) {
                case .value(let value, let sender):
                    sender?.resume()
                    return value
                case .finished: return nil
                case .empty: preconditionFailure("MPSC.recv got .empty although it may wait")
                case .suspend(let id):
                    // Spin once for the next value before parking; the second miss parks.
                    if !spun && self.arrival.spin() {
                        spun = true
                        continue
                    }
                    return try await self.waitForValue(id: id)
                }
            }
        }

        @inlinable
        func receive(
            upTo limit: Int,
            into values: inout [Element],
            hold: Bool = false
        ) async throws(CancellationError) -> Bool {
            var id: UInt64 = 0
            var spun = false
            // A batch for `recv()` first settles the previous batch's slots (its values are all handed out).
            let total = hold ? self.handedOut.load(ordering: .relaxed) : 0
            while true {
                let action = self.state.withLock {
                    if hold { $0.applyHandedOut(total) }
                    return $0.receive(upTo: limit, into: &values, hold: hold)
                }
                switch action {
                case .values(let wakeups):
                    wakeups.resumeAll()
                    return true
                case .finished: return false
                case .suspend(let waiterID): id = waiterID
                }
                // Spin once for the next value before parking; the second miss parks.
                guard !spun && self.arrival.spin() else { break }
                spun = true
            }
            // Wait for the first value, then take whatever else arrived with it without waiting again.
            guard let first = try await self.waitForValue(id: id) else { return false }
            values.append(first)
            if limit > 1 || hold {
                self.state.withLock { state -> Wakeups in
                    if hold { state.holdDelivered() }
                    guard limit > 1 else { return Wakeups() }
                    switch state.receive(upTo: limit - 1, into: &values, hold: hold) {
                    case .values(let wakeups): return wakeups
                    case .finished, .suspend: return Wakeups()
                    }
                }.resumeAll()
            }
            return true
        }

        /// The receiver handed out batch values (running total `total`, already published). If senders wait, free
        /// the slots now and admit them; otherwise the next sender that finds the channel full does it.
        @inlinable
        func receiverHandedOut(total: UInt64) {
            guard self.sendersWaiting.load(ordering: .sequentiallyConsistent) else { return }
            self.state.withLock { state -> Wakeups in
                let wakeups = state.receiverHandedOut(total: total)
                if !state.hasWaitingSenders { self.sendersWaiting.store(false, ordering: .relaxed) }
                return wakeups
            }.resumeAll()
        }

        /// Takes up to `limit` buffered values without waiting; returns how many it appended.
        @inlinable
        func tryReceive(upTo limit: Int, into values: inout [Element]) -> Int {
            let before = values.count
            let wakeups = self.state.withLock { state -> Wakeups in
                if case .values(let wakeups) = state.receive(upTo: limit, into: &values) { return wakeups }
                return Wakeups()
            }
            wakeups.resumeAll()
            return values.count - before
        }

        @inlinable
        func waitForValue(id: UInt64) async throws(CancellationError) -> Element? {
            let outcome: ReceiveOutcome = await suspend { continuation in
                let action = self.state.withLock {
                    $0.receiveSuspended(id: id, continuation: continuation, isCancelled: Task.isCancelled)
                }
                if case .resume(let (receiver, sender)) = action {
                    sender?.resume()
                    receiver.resume()
                }
            } onCancel: {
                self.state.withLock { $0.receiveCancelled(id: id) }?.resume()
            }
            switch outcome {
            case .value(let value): return value
            case .closed: return nil
            case .cancelled: throw CancellationError()
            }
        }

        // MARK: Lifecycle

        @inlinable
        func sendersDropped() {
            self.state.withLock { $0.sendersDropped() }.resumeAll()
        }

        @inlinable
        func close() {
            self.state.withLock { $0.receiverClosed() }.resumeAll()
        }

        @inlinable
        func receiverDropped() {
            let (wakeups, dropped) = self.state.withLock { $0.receiverDropped() }
            wakeups.resumeAll()
            _ = consume dropped  // buffered values are destroyed here, after unlocking
        }
    }
}
