extension MPSC {
    /// How a suspended `recv` ends.
    @usableFromInline
    enum ReceiveOutcome: Sendable {
        case value(Element)
        /// Every sender is gone (or the receiver closed) and nothing is buffered or reserved.
        case closed
        case cancelled
    }

    /// How a suspended `send` or `reserve` ends. A value of a waiting `send` is never handed back through
    /// here: the waiting caller still holds its own copy and hands that back itself.
    @usableFromInline
    enum SendOutcome: Sendable {
        /// The waiter's value was moved into the buffer (or straight to a receiver).
        case sent
        /// A `reserve` waiter now holds one slot.
        case reserved
        /// The receiver closed or went away; the value was not enqueued.
        case closed
        /// The waiting task was cancelled; the value was not enqueued.
        case cancelled
    }

    @usableFromInline
    typealias ReceiveContinuation = UnsafeContinuation<ReceiveOutcome, Never>
    @usableFromInline
    typealias SendContinuation = UnsafeContinuation<SendOutcome, Never>

    /// A receiver to resume after unlocking, with what it gets.
    @usableFromInline
    typealias ReceiverResumption = Resumption<ReceiveContinuation, ReceiveOutcome>

    /// A sender (or reserver) to resume after unlocking, with what it gets.
    @usableFromInline
    typealias SenderResumption = Resumption<SendContinuation, SendOutcome>

    /// Everything a slow-path event wakes: resumed after unlocking, never under the lock.
    @usableFromInline
    struct Wakeups {
        @inlinable
        init() {}
        @usableFromInline var senders: [SenderResumption] = []
        @usableFromInline var receivers: [ReceiverResumption] = []
        @inlinable
        func resumeAll() {
            for sender in self.senders { sender.resume() }
            for receiver in self.receivers { receiver.resume() }
        }
    }

    /// The pure state of one channel: no locks, no tasks, no clocks. ``MPSC/Storage`` owns it inside a
    /// `Mutex`, calls one event method per thing that happened, and performs the returned action after unlocking.
    ///
    /// The state is a struct of fields rather than an enum because the two sides close independently (senders
    /// dropped, receiver closed) while the buffer outlives both: an enum would repeat the buffer and both waiter
    /// queues in every case. See `docs/decisions/0001-channel-state-machines.md`.
    ///
    /// Invariants, checked by the tests that drive this type directly:
    /// - `buffer.count + reserved <= capacity` (bounded channels).
    /// - `receiveWaiters` is non-empty only while `buffer` is empty.
    /// - `sendWaiters` is non-empty only while the channel is full (bounded, open for sending).
    @usableFromInline
    struct StateMachine: ~Copyable {
        /// A task suspended in `send` or `reserve`, in arrival order.
        @usableFromInline
        struct SendWaiter {
            @inlinable
            init(id: UInt64, value: Element?, continuation: SendContinuation) {
                self.id = id
                self.value = value
                self.continuation = continuation
            }
            @usableFromInline let id: UInt64
            /// The value a waiting `send` will enqueue when a slot frees; `nil` for a waiting `reserve`.
            @usableFromInline let value: Element?
            @usableFromInline let continuation: SendContinuation
        }

        /// A task suspended in `recv` on an empty buffer.
        @usableFromInline
        struct ReceiveWaiter {
            @inlinable
            init(id: UInt64, continuation: ReceiveContinuation) {
                self.id = id
                self.continuation = continuation
            }
            @usableFromInline let id: UInt64
            @usableFromInline let continuation: ReceiveContinuation
        }

        /// Slots in total, or `nil` for an unbounded channel.
        @usableFromInline let capacity: Int?
        /// Sent values not yet received, oldest first.
        @usableFromInline var buffer: RingBuffer<Element>
        /// Slots held by live ``MPSC/Permit``s: counted against `capacity` until the permit sends or is dropped.
        @usableFromInline var reserved = 0
        /// Values the receiver took in a batch (``MPSC/Receiver/recv()``) and had not handed out by the last time
        /// it said so. They have left `buffer` but still count against `capacity`, so prefetching never lets a
        /// producer run further ahead of what its consumer has actually taken.
        @usableFromInline var held = 0
        /// The receiver's running total of batch values handed out, as far as `held` accounts for it.
        @usableFromInline var handedOutApplied: UInt64 = 0
        /// Senders and reservers waiting for a slot, FIFO: a freed slot always goes to the oldest.
        @usableFromInline var sendWaiters = RingBuffer<SendWaiter>()
        /// Receivers waiting for a value; more than one only if several tasks share a ``MPSC/Receiver``.
        @usableFromInline var receiveWaiters = RingBuffer<ReceiveWaiter>()
        /// False once the last ``MPSC/Sender`` is gone. Permits keep their sender alive, so this also means no
        /// permit is outstanding.
        @usableFromInline var sendersAlive = true
        /// True once the receiver called `close()` or went away: new sends fail, buffered values stay.
        @usableFromInline var closedForSending = false
        /// Ids for suspensions, so cancellation can find its waiter.
        @usableFromInline var nextWaiterID: UInt64 = 0

        @inlinable
        init(capacity: Int?) {
            self.capacity = capacity
            self.buffer = RingBuffer(minimumCapacity: min(capacity ?? 16, 1024))
        }

        /// Values buffered right now.
        @inlinable
        var count: Int { self.buffer.count }
        @inlinable
        var isClosedForSending: Bool { self.closedForSending }

        @usableFromInline var hasRoom: Bool {
            guard let capacity = self.capacity else { return true }
            return self.buffer.count + self.reserved + self.held < capacity
        }

        /// The receiver sees the end only when nothing is buffered and nothing more can arrive.
        @usableFromInline var isFinished: Bool {
            self.buffer.isEmpty && self.reserved == 0 && (!self.sendersAlive || self.closedForSending)
        }

        @inlinable
        mutating func makeWaiterID() -> UInt64 {
            self.nextWaiterID &+= 1
            return self.nextWaiterID
        }

        // MARK: - Sending

        @usableFromInline
        enum SendAction {
            /// The value is buffered.
            case stored
            /// A receiver was waiting on the empty buffer: resume it with the value.
            case resumeReceiver(ReceiverResumption)
            /// No free slot (or older senders are waiting) and the caller may not wait.
            case full
            /// No free slot: suspend as waiter `id` through ``sendSuspended(id:value:continuation:isCancelled:)``.
            case suspend(id: UInt64)
            /// The receiver closed or went away.
            case closed
        }

        /// A sender offers `value`; `mayWait` says whether it can suspend when there is no room.
        @inlinable
        mutating func send(_ value: Element, mayWait: Bool) -> SendAction {
            if self.closedForSending { return .closed }
            // A new sender never overtakes waiting ones: FIFO means it queues behind them.
            guard self.hasRoom && self.sendWaiters.isEmpty else {
                return mayWait ? .suspend(id: self.makeWaiterID()) : .full
            }
            if let receiver = self.deliver(value) { return .resumeReceiver(receiver) }
            return .stored
        }

        @usableFromInline
        enum WaiterAction<Resumption> {
            /// The waiter is stored; someone else resumes it later.
            case none
            /// Resume it now (after unlocking): the state changed between the fast path and the suspension.
            case resume(Resumption)
        }

        /// A sender that got `.suspend(id)` now holds a continuation. Re-checks everything, because the lock
        /// was released in between.
        @inlinable
        mutating func sendSuspended(
            id: UInt64,
            value: Element?,
            continuation: SendContinuation,
            isCancelled: Bool
        ) -> (WaiterAction<SenderResumption>, ReceiverResumption?) {
            if isCancelled { return (.resume(.init(continuation: continuation, outcome: .cancelled)), nil) }
            if self.closedForSending { return (.resume(.init(continuation: continuation, outcome: .closed)), nil) }
            if self.hasRoom && self.sendWaiters.isEmpty {
                guard let value else {
                    self.reserved += 1
                    return (.resume(.init(continuation: continuation, outcome: .reserved)), nil)
                }
                let receiver = self.deliver(value)
                return (.resume(.init(continuation: continuation, outcome: .sent)), receiver)
            }
            self.sendWaiters.append(SendWaiter(id: id, value: value, continuation: continuation))
            return (.none, nil)
        }

        /// The task waiting as sender `id` was cancelled. Returns it, to resume with `.cancelled`, if it was still
        /// waiting; `nil` if it was already resumed (its value was then enqueued, and stays enqueued).
        @inlinable
        mutating func sendCancelled(id: UInt64) -> SenderResumption? {
            guard let waiter = self.sendWaiters.removeFirst(where: { $0.id == id }) else { return nil }
            return SenderResumption(continuation: waiter.continuation, outcome: .cancelled)
        }

        /// A caller asks for a slot without a value (``MPSC/Sender/reserve()``).
        @usableFromInline
        enum ReserveAction {
            case reserved
            case suspend(id: UInt64)
            case closed
        }

        @inlinable
        mutating func reserve() -> ReserveAction {
            if self.closedForSending { return .closed }
            guard self.hasRoom && self.sendWaiters.isEmpty else { return .suspend(id: self.makeWaiterID()) }
            self.reserved += 1
            return .reserved
        }

        @usableFromInline
        enum PermitSendAction {
            /// The value is in: `stored` says whether it went into the buffer (rather than to a waiting receiver).
            /// Resume `wakeups` after unlocking.
            case delivered(stored: Bool, Wakeups)
            /// The receiver is gone for good; hand the value back.
            case closed
        }

        /// A permit spends its slot on `value`. Fails only if the receiver is gone for good.
        @inlinable
        mutating func permitSend(_ value: Element) -> PermitSendAction {
            precondition(self.reserved > 0, "MPSC permit sent with no reserved slot")
            self.reserved -= 1
            // After `close()` a permit may still send (the receiver drains it); after the receiver is gone
            // nobody could ever receive it, so the value is handed back.
            if self.receiverGone { return .closed }
            var wakeups = Wakeups()
            let receiver = self.deliver(value)
            if let receiver { wakeups.receivers.append(receiver) }
            // A value handed straight to a receiver took no slot: the permit's slot is free again.
            self.admitWaitingSenders(into: &wakeups)
            // On a closed channel this may have been the last value that could ever arrive.
            self.finishReceiversIfDone(&wakeups)
            return .delivered(stored: receiver == nil, wakeups)
        }

        /// A permit was dropped without sending: its slot frees, which may admit a waiting sender or end a
        /// receiver's wait on a closed channel.
        @inlinable
        mutating func permitDropped() -> Wakeups {
            precondition(self.reserved > 0, "MPSC permit dropped with no reserved slot")
            self.reserved -= 1
            var wakeups = Wakeups()
            self.admitWaitingSenders(into: &wakeups)
            self.finishReceiversIfDone(&wakeups)
            return wakeups
        }

        /// Puts `value` where the receiver gets it: straight into a waiting receiver, else into the buffer.
        @inlinable
        mutating func deliver(_ value: Element) -> ReceiverResumption? {
            if let waiter = self.receiveWaiters.popFirst() {
                return ReceiverResumption(continuation: waiter.continuation, outcome: .value(value))
            }
            self.buffer.append(value)
            return nil
        }

        /// Slots are free: hand them to the oldest waiting senders and reservers, for as long as there is room.
        ///
        /// A loop, not a single admission: a waiting sender's value that goes straight to a waiting receiver takes
        /// no slot, so the slot it was admitted into is still free for the next one. (Both kinds of waiter exist
        /// at once only while permits hold every slot.)
        @inlinable
        mutating func admitWaitingSenders(into wakeups: inout Wakeups) {
            while !self.closedForSending, self.hasRoom, let waiter = self.sendWaiters.popFirst() {
                guard let value = waiter.value else {
                    self.reserved += 1
                    wakeups.senders.append(SenderResumption(continuation: waiter.continuation, outcome: .reserved))
                    continue
                }
                if let receiver = self.deliver(value) { wakeups.receivers.append(receiver) }
                wakeups.senders.append(SenderResumption(continuation: waiter.continuation, outcome: .sent))
            }
        }

        /// The receive fast path freed exactly one slot by popping a buffered value: admit the oldest waiter into
        /// it. No receiver can be waiting (the buffer was not empty), so this admits at most one, and needs no
        /// array on the path every saturated channel takes for every value.
        @inlinable
        mutating func admitOneWaitingSender() -> SenderResumption? {
            assert(self.receiveWaiters.isEmpty, "MPSC receivers wait while values are buffered")
            guard !self.closedForSending, self.hasRoom, let waiter = self.sendWaiters.popFirst() else { return nil }
            guard let value = waiter.value else {
                self.reserved += 1
                return SenderResumption(continuation: waiter.continuation, outcome: .reserved)
            }
            self.buffer.append(value)
            return SenderResumption(continuation: waiter.continuation, outcome: .sent)
        }

        /// Applies the receiver's running total of batch values handed out (read from an atomic, so possibly
        /// stale: totals only grow, and an old one is ignored). Frees their slots; does not admit anyone.
        @inlinable
        mutating func applyHandedOut(_ total: UInt64) {
            let delta = Int(truncatingIfNeeded: total &- self.handedOutApplied)
            guard delta > 0 && delta <= self.held else { return }
            self.handedOutApplied = total
            self.held -= delta
        }

        /// The receiver handed out batch values while senders were waiting: free their slots and admit.
        @inlinable
        mutating func receiverHandedOut(total: UInt64) -> Wakeups {
            self.applyHandedOut(total)
            var wakeups = Wakeups()
            self.admitWaitingSenders(into: &wakeups)
            return wakeups
        }

        /// A `recv()` batch began with a value handed straight to the waiting receiver (it took no slot). The
        /// receiver counts every batch value as handed out, this one included, so count it as held too.
        @inlinable
        mutating func holdDelivered() { self.held += 1 }

        /// True while senders or reservers wait for a slot.
        @inlinable
        var hasWaitingSenders: Bool { !self.sendWaiters.isEmpty }

        // MARK: - Receiving

        @usableFromInline
        enum ReceiveAction {
            /// Here is a value. If it freed a slot that a waiting sender took, resume that sender after unlocking.
            case value(Element, SenderResumption?)
            /// The channel is finished: nothing buffered, nothing can arrive.
            case finished
            /// Nothing yet: suspend as waiter `id` through ``receiveSuspended(id:continuation:isCancelled:)``.
            case suspend(id: UInt64)
            /// Nothing yet and the caller may not wait.
            case empty
        }

        @inlinable
        mutating func receive(mayWait: Bool) -> ReceiveAction {
            if let value = self.buffer.popFirst() {
                guard !self.sendWaiters.isEmpty else { return .value(value, nil) }
                return .value(value, self.admitOneWaitingSender())
            }
            if self.isFinished { return .finished }
            return mayWait ? .suspend(id: self.makeWaiterID()) : .empty
        }

        /// Takes up to `limit` buffered values at once, and admits as many waiting senders as slots were freed.
        @inlinable
        mutating func receive(upTo limit: Int, into values: inout [Element], hold: Bool = false) -> ReceiveBatchAction {
            let before = values.count
            self.buffer.popFirst(upTo: limit, into: &values)
            let taken = values.count - before
            if taken > 0 {
                // A batch for `recv()` keeps its slots until the receiver says it handed the values out.
                if hold { self.held += taken }
                var wakeups = Wakeups()
                self.admitWaitingSenders(into: &wakeups)
                return .values(wakeups)
            }
            if self.isFinished { return .finished }
            return .suspend(id: self.makeWaiterID())
        }

        @usableFromInline
        enum ReceiveBatchAction {
            /// Values were appended; resume these senders after unlocking.
            case values(Wakeups)
            case finished
            case suspend(id: UInt64)
        }

        /// A receiver that got `.suspend(id)` now holds a continuation.
        @inlinable
        mutating func receiveSuspended(
            id: UInt64,
            continuation: ReceiveContinuation,
            isCancelled: Bool
        ) -> WaiterAction<(ReceiverResumption, SenderResumption?)> {
            if isCancelled { return .resume((.init(continuation: continuation, outcome: .cancelled), nil)) }
            switch self.receive(mayWait: false) {
            case .value(let value, let sender):
                return .resume((.init(continuation: continuation, outcome: .value(value)), sender))
            case .finished:
                return .resume((.init(continuation: continuation, outcome: .closed), nil))
            case .empty, .suspend:
                self.receiveWaiters.append(ReceiveWaiter(id: id, continuation: continuation))
                return .none
            }
        }

        /// The task waiting as receiver `id` was cancelled: returns it to resume with `.cancelled` if it was still
        /// waiting. A receiver already resumed with a value keeps that value.
        @inlinable
        mutating func receiveCancelled(id: UInt64) -> ReceiverResumption? {
            guard let waiter = self.receiveWaiters.removeFirst(where: { $0.id == id }) else { return nil }
            return ReceiverResumption(continuation: waiter.continuation, outcome: .cancelled)
        }

        // MARK: - Lifecycle

        /// The last sender is gone. Waiting receivers end once the buffer is empty (it is, if any are waiting).
        @inlinable
        mutating func sendersDropped() -> Wakeups {
            self.sendersAlive = false
            var wakeups = Wakeups()
            self.finishReceiversIfDone(&wakeups)
            return wakeups
        }

        /// The receiver closed: waiting senders and reservers fail; buffered values stay to be drained.
        @inlinable
        mutating func receiverClosed() -> Wakeups {
            self.closedForSending = true
            var wakeups = Wakeups()
            self.sendWaiters.drain { waiter in
                wakeups.senders.append(SenderResumption(continuation: waiter.continuation, outcome: .closed))
            }
            self.finishReceiversIfDone(&wakeups)
            return wakeups
        }

        /// True once the receiver object is gone (not merely closed).
        @usableFromInline var receiverGone = false

        /// The receiver is gone: close, then drop what is buffered, since nobody can ever receive it. The values
        /// are handed out so that they are destroyed after unlocking.
        @inlinable
        mutating func receiverDropped() -> (Wakeups, [Element]) {
            let wakeups = self.receiverClosed()
            self.receiverGone = true
            var dropped: [Element] = []
            self.buffer.popFirst(upTo: self.buffer.count, into: &dropped)
            return (wakeups, dropped)
        }

        @inlinable
        mutating func finishReceiversIfDone(_ wakeups: inout Wakeups) {
            guard self.isFinished else { return }
            self.receiveWaiters.drain { waiter in
                wakeups.receivers.append(ReceiverResumption(continuation: waiter.continuation, outcome: .closed))
            }
        }
    }
}
