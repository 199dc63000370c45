extension MPSC {
    /// How a suspended `recv` ends. A woken receiver is not handed a value: it takes the next one from the ring
    /// itself, so that a value has exactly one way out of the channel.
    @usableFromInline
    enum ReceiveOutcome: Sendable {
        /// A value may be ready (or the spill can be moved into the ring): look again.
        case ready
        /// Every sender is gone (or the receiver closed) and nothing is buffered, reserved or on its way in.
        case closed
        case cancelled
    }

    /// How a suspended `send` or `reserve` ends. A value of a waiting `send` is never handed back through
    /// here: the waiting caller still holds its own copy and hands that back itself.
    @usableFromInline
    enum SendOutcome: Sendable {
        /// The waiter's value was put into the channel.
        case sent
        /// A `reserve` waiter now holds one of the ring's permits.
        case reserved
        /// A `reserve` waiter now holds a slot beyond the ring (counted in ``StateMachine/spillReserved``).
        case reservedInSpill
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

    /// Everything a slow-path event wakes: resumed after unlocking, never under the lock. Both lists keep their
    /// first element inline, so the usual single wake-up allocates nothing.
    @usableFromInline
    struct Wakeups {
        @inlinable
        init() {}
        @usableFromInline var senders = WaiterList<SenderResumption>()
        @usableFromInline var receivers = WaiterList<ReceiverResumption>()
        @inlinable
        var isEmpty: Bool { self.senders.isEmpty && self.receivers.isEmpty }
        @inlinable
        func resumeAll() {
            for sender in self.senders { sender.resume() }
            for receiver in self.receivers { receiver.resume() }
        }
    }

    /// The slow lane of one channel: waiters, the end of the channel, and values beyond the ring. ``MPSC/Storage``
    /// owns it inside a `Mutex`, calls one event method per thing that happened, and performs the returned action
    /// after unlocking. Values that find a free ring slot and nobody waiting never come here (see ``MPSC/Lane``).
    ///
    /// It holds no lock, task or clock, but it does share the ``MPSC/Lane`` with the fast paths: under the lock it
    /// takes and gives permits and writes to the ring with the lane's own atomic operations, so a fast path running
    /// at the same time sees a consistent channel. Driven without concurrency (as the tests do), every event is
    /// deterministic. See `docs/decisions/0002-mpsc-fast-lane.md`.
    ///
    /// Invariants, checked by the tests that drive this type directly:
    /// - the ring's permits in use plus `spill.count + spillReserved` never exceed `capacity` (bounded channels);
    ///   `spill` is used only when the ring is full or already spilled, and its values are newer than the ring's.
    /// - `sendWaiters` is non-empty exactly while the lane's waiters flag is set (so no fast path overtakes them),
    ///   and only while there is no room.
    /// - `receiveWaiters` is non-empty only while the ring holds no written value, and exactly while the lane's
    ///   receiver-waiting bit is set.
    /// - the spilled flag is set exactly while `spill` is non-empty.
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

        /// A task suspended in `recv` on an empty channel.
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

        /// The ring and the permit word, shared with ``MPSC/Storage``'s fast paths.
        @usableFromInline let lane: Lane
        /// Slots in total, or `nil` for an unbounded channel.
        @usableFromInline let capacity: Int?
        /// Values that did not fit in the ring, oldest first, all newer than every value in the ring. Only an
        /// unbounded channel, or a bounded one with more slots than the ring, ever uses it.
        @usableFromInline var spill: RingBuffer<Element>
        /// Slots beyond the ring held by live ``MPSC/Permit``s (a permit inside the ring holds a ring permit instead).
        @usableFromInline var spillReserved = 0
        /// Ring permits held by live ``MPSC/Permit``s in a channel that can spill (there permits are taken and spent
        /// only under the lock). With it the machine tells a ring emptied but held by permits (the spill's head is
        /// then the oldest value, and may be taken directly) from sends on their way into the ring.
        @usableFromInline var ringReserved = 0
        /// Senders and reservers waiting for a slot, FIFO: a freed slot always goes to the oldest.
        @usableFromInline var sendWaiters = RingBuffer<SendWaiter>()
        /// Receivers waiting for a value; more than one only if several tasks share a ``MPSC/Receiver``.
        @usableFromInline var receiveWaiters = RingBuffer<ReceiveWaiter>()
        /// False once the last ``MPSC/Sender`` is gone. Permits keep their sender alive, so this also means no
        /// permit is outstanding and no send is under way.
        @usableFromInline var sendersAlive = true
        /// True once the receiver called `close()` or went away: new sends fail, buffered values stay.
        @usableFromInline var closedForSending = false
        /// True once the receiver object is gone (not merely closed).
        @usableFromInline var receiverGone = false
        /// Ids for suspensions, so cancellation can find its waiter.
        @usableFromInline var nextWaiterID: UInt64 = 0

        /// - Parameter ringLimit: the most slots the ring gets (tests make it small to exercise the spill).
        @inlinable
        init(capacity: Int?, ringLimit: Int = Lane.ringLimit) {
            self.capacity = capacity
            self.lane = Lane(ringPermits: min(capacity ?? ringLimit, ringLimit))
            self.spill = RingBuffer(minimumCapacity: 1)
        }

        /// Values buffered right now: in the ring (including sends between claiming a slot and writing it) and in
        /// the spill.
        @inlinable
        var count: Int { self.lane.count + self.spill.count }
        @inlinable
        var isClosedForSending: Bool { self.closedForSending }

        /// The receiver sees the end only when nothing is buffered, reserved or on its way in, and nothing more can
        /// be sent.
        @inlinable
        var isFinished: Bool {
            (self.closedForSending || !self.sendersAlive) && self.spill.isEmpty && self.spillReserved == 0
                && self.lane.isIdle
        }

        @inlinable
        mutating func makeWaiterID() -> UInt64 {
            self.nextWaiterID &+= 1
            return self.nextWaiterID
        }

        // MARK: - Room

        /// Moves spilled values into the ring while it has free slots, oldest first; clears the spilled flag once
        /// the spill is empty. Safe at any time under the lock: while the flag is set no fast path takes a permit,
        /// and a send that took one before the flag was set has no older value of its own in the spill.
        @inlinable
        mutating func refill() {
            guard !self.spill.isEmpty else { return }
            while !self.spill.isEmpty, self.lane.acquireLocked(pastSpill: true), let value = self.spill.popFirst() {
                self.lane.write(value)
            }
            if self.spill.isEmpty { self.lane.clearFlags(Lane.spilledBit) }
        }

        /// True if the channel can hold more than its ring: unbounded, or bounded beyond ``MPSC/Lane/ringLimit``.
        /// Only such a channel uses the spill, and in it permits are taken and spent under the lock.
        @inlinable
        var canSpill: Bool { self.capacity.map { $0 > self.lane.ringPermits } ?? true }

        /// True if the spill may take one more value without exceeding the capacity: the ring's permits in use
        /// (taken slots collected first), the spill and the reservations beyond the ring stay within it.
        @inlinable
        var spillHasRoom: Bool {
            guard self.canSpill else { return false }
            guard let capacity = self.capacity else { return true }
            _ = self.lane.releaseTaken()
            let ringInUse = self.lane.ringPermits - Lane.freeSlots(self.lane.word)
            return ringInUse + self.spill.count + self.spillReserved < capacity
        }

        /// True if the spill's head is the oldest value in the channel although the ring could not take it: the
        /// ring is empty and every ring permit in use is held by a permit (none by a send on its way in).
        @inlinable
        var mayTakeFromSpill: Bool {
            guard !self.spill.isEmpty else { return false }
            _ = self.lane.releaseTaken()
            return self.lane.ringPermits - Lane.freeSlots(self.lane.word) == self.ringReserved
        }

        /// True if one more value or reservation fits now (ignoring waiting senders). Under the lock, with the
        /// waiters flag set, room only grows until someone here takes it.
        @inlinable
        mutating func hasRoom() -> Bool {
            _ = self.lane.releaseTaken()
            self.refill()
            let word = self.lane.word
            return (Lane.freeSlots(word) > 0 && word & Lane.spilledBit == 0) || self.spillHasRoom
        }

        /// Puts `value` into the ring if it has a free slot and nothing is spilled, else into the spill if the
        /// channel has room. Returns false, keeping nothing, when it is full.
        ///
        /// Before counting the spill's room, the spilled flag goes up: from then on no fast path takes a ring permit.
        /// Otherwise a slot a consumer freed in between would be counted as room for the spill and then taken by a
        /// fast send as well, one value beyond the capacity (found by the spill stress test under load).
        @inlinable
        mutating func enqueue(_ value: Element) -> Bool {
            self.refill()
            if self.lane.acquireLocked() {
                self.lane.write(value)
                return true
            }
            guard self.canSpill else { return false }
            if self.spill.isEmpty {
                self.lane.setFlags(Lane.spilledBit)
                // A slot freed before the flag went up: the ring takes the value (nothing is spilled, so the order
                // holds).
                if self.lane.acquireLocked(pastSpill: true) {
                    self.lane.write(value)
                    self.lane.clearFlags(Lane.spilledBit)
                    return true
                }
            }
            guard self.spillHasRoom else {
                if self.spill.isEmpty { self.lane.clearFlags(Lane.spilledBit) }
                return false
            }
            self.spill.append(value)
            return true
        }

        /// Takes a slot for a permit: a ring permit (`false`), or a slot beyond the ring counted in `spillReserved`
        /// (`true`), or `nil` when full. In a bounded channel that can spill, reservations beyond the ring take at most
        /// the spill's share (`capacity - ringPermits`, with the spilled values), so that a send finding a free ring
        /// permit never exceeds the capacity; past that a permit holds a ring permit, counted in `ringReserved`.
        @inlinable
        mutating func reserveSlot() -> Bool? {
            guard self.canSpill else { return self.lane.acquireLocked() ? false : nil }
            // Slots freed while values wait in the spill are theirs: move them first, then decide. A ring permit is
            // taken only while nothing is spilled (the spill may hold more than its share, and taking a slot its
            // values wait for would exceed the capacity; found by the spill stress test). After the refill, a
            // non-empty spill means a full ring, so the share alone tells whether there is room.
            self.refill()
            if let capacity = self.capacity, self.spill.count + self.spillReserved >= capacity - self.lane.ringPermits {
                guard self.lane.acquireLocked() else { return nil }
                self.ringReserved += 1
                return false
            }
            self.spillReserved += 1
            return true
        }

        /// Reserves a slot for a waiting reserver that ``hasRoom()`` admitted.
        @inlinable
        mutating func reservedOutcome() -> SendOutcome {
            guard let inSpill = self.reserveSlot() else { preconditionFailure("MPSC room vanished under the lock") }
            return inSpill ? .reservedInSpill : .reserved
        }

        // MARK: - Sending

        @usableFromInline
        enum SendAction {
            /// The value is in the channel.
            case stored
            /// The value is in the channel and receivers were waiting: resume them (they take values themselves).
            case resumeReceiver(Wakeups)
            /// No free slot (or older senders are waiting) and the caller may not wait.
            case full
            /// No free slot: suspend as waiter `id` through ``sendSuspended(id:value:continuation:isCancelled:)``.
            case suspend(id: UInt64)
            /// The receiver closed or went away.
            case closed
        }

        /// A sender whose fast path was refused offers `value`; `mayWait` says whether it can suspend.
        @inlinable
        mutating func send(_ value: Element, mayWait: Bool) -> SendAction {
            if self.closedForSending { return .closed }
            // A new sender never overtakes waiting ones: FIFO means it queues behind them.
            guard self.sendWaiters.isEmpty && self.enqueue(value) else {
                return mayWait ? .suspend(id: self.makeWaiterID()) : .full
            }
            let wakeups = self.wakeReceivers()
            return wakeups.isEmpty ? .stored : .resumeReceiver(wakeups)
        }

        @usableFromInline
        enum WaiterAction<Resumption> {
            /// The waiter is stored; someone else resumes it later.
            case none
            /// Resume it now (after unlocking): the state changed between the fast path and the suspension.
            case resume(Resumption)
        }

        /// A sender (`value`) or reserver (`nil`) that got `.suspend(id)` now holds a continuation. Re-checks
        /// everything, because the lock was released in between.
        @inlinable
        mutating func sendSuspended(
            id: UInt64,
            value: Element?,
            continuation: SendContinuation,
            isCancelled: Bool
        ) -> (WaiterAction<SenderResumption>, Wakeups) {
            func resume(_ outcome: SendOutcome) -> WaiterAction<SenderResumption> {
                .resume(SenderResumption(continuation: continuation, outcome: outcome))
            }
            if isCancelled { return (resume(.cancelled), Wakeups()) }
            if self.closedForSending { return (resume(.closed), Wakeups()) }
            if self.sendWaiters.isEmpty {
                // Raise the waiters flag first: from now on no fast path takes a permit, and whoever frees a slot
                // comes to the lock. Then look for room once more: a slot freed before the flag went up is counted
                // in the word that `hasRoom` reads after it.
                self.lane.setFlags(Lane.waitersBit)
                if self.hasRoom() {
                    let outcome: SendOutcome
                    if let value {
                        let stored = self.enqueue(value)
                        assert(stored, "MPSC room vanished under the lock")
                        outcome = .sent
                    } else {
                        outcome = self.reservedOutcome()
                    }
                    self.lane.clearFlags(Lane.waitersBit)
                    return (resume(outcome), self.wakeReceivers())
                }
            }
            self.sendWaiters.append(SendWaiter(id: id, value: value, continuation: continuation))
            return (.none, Wakeups())
        }

        /// The task waiting as sender `id` was cancelled. Returns it, to resume with `.cancelled`, if it was still
        /// waiting; `nil` if it was already resumed (its value was then enqueued, and stays enqueued).
        @inlinable
        mutating func sendCancelled(id: UInt64) -> SenderResumption? {
            guard let waiter = self.sendWaiters.removeFirst(where: { $0.id == id }) else { return nil }
            if self.sendWaiters.isEmpty { self.lane.clearFlags(Lane.waitersBit) }
            return SenderResumption(continuation: waiter.continuation, outcome: .cancelled)
        }

        /// A caller asks for a slot without a value (``MPSC/Sender/reserve()``, ``MPSC/Sender/tryReserve()``).
        @usableFromInline
        enum ReserveAction {
            /// A slot is held: a ring permit, or (`inSpill`) a slot beyond the ring.
            case reserved(inSpill: Bool)
            case full
            case suspend(id: UInt64)
            case closed
        }

        @inlinable
        mutating func reserve(mayWait: Bool = true) -> ReserveAction {
            if self.closedForSending { return .closed }
            if self.sendWaiters.isEmpty, let inSpill = self.reserveSlot() { return .reserved(inSpill: inSpill) }
            return mayWait ? .suspend(id: self.makeWaiterID()) : .full
        }

        @usableFromInline
        enum PermitSendAction {
            /// The value is in. Resume `wakeups` after unlocking.
            case delivered(Wakeups)
            /// The receiver is gone for good; hand the value back.
            case closed
        }

        /// A permit spends its slot on `value`: the slow path, taken when the channel can spill (permits are counted
        /// here) or the receiver is gone. Fails only if the receiver is gone for good.
        @inlinable
        mutating func permitSend(_ value: Element, inSpill: Bool) -> PermitSendAction {
            if inSpill {
                precondition(self.spillReserved > 0, "MPSC permit sent with no reserved slot beyond the ring")
                self.spillReserved -= 1
            } else if self.canSpill {
                precondition(self.ringReserved > 0, "MPSC permit sent with no reserved ring slot")
                self.ringReserved -= 1
            }
            // After `close()` a permit may still send (the receiver drains it); after the receiver is gone nobody
            // could ever receive it, so the value is handed back.
            if self.receiverGone {
                if !inSpill { _ = self.lane.release(1) }
                return .closed
            }
            if inSpill {
                // The reservation was given up just now, so there is room (in the ring if it has a free slot and
                // nothing is spilled, else in the spill).
                let stored = self.enqueue(value)
                precondition(stored, "MPSC permit found no room for its value")
            } else if self.lane.word & Lane.spilledBit == 0 {
                self.lane.write(value)  // into the ring, on the permit's own ring slot
            } else {
                // Values are spilled: this one goes behind them, and its ring slot moves the oldest into the ring.
                self.spill.append(value)
                _ = self.lane.release(1)
            }
            var wakeups = Wakeups()
            self.settle(&wakeups)
            return .delivered(wakeups)
        }

        /// A permit was dropped without sending: its slot frees, which may admit a waiting sender or end a
        /// receiver's wait on a closed channel. (A ring permit's fast path gives its slot back without the lock and
        /// comes here through ``permitsReleased()`` only when a flag says so.)
        @inlinable
        mutating func permitDropped(inSpill: Bool) -> Wakeups {
            if inSpill {
                precondition(self.spillReserved > 0, "MPSC permit dropped with no reserved slot beyond the ring")
                self.spillReserved -= 1
            } else {
                if self.canSpill {
                    precondition(self.ringReserved > 0, "MPSC permit dropped with no reserved ring slot")
                    self.ringReserved -= 1
                }
                _ = self.lane.release(1)
            }
            return self.permitsReleased()
        }

        /// Ring permits were given back while a flag was set (senders waiting, values spilled, or the channel
        /// ending): admit, refill and end what that allows.
        @inlinable
        mutating func permitsReleased() -> Wakeups {
            var wakeups = Wakeups()
            self.settle(&wakeups)
            return wakeups
        }

        /// Slots are free: hand them to the oldest waiting senders and reservers, for as long as there is room.
        @inlinable
        mutating func admitWaitingSenders(into wakeups: inout Wakeups) {
            while !self.closedForSending, !self.sendWaiters.isEmpty, self.hasRoom(),
                let waiter = self.sendWaiters.popFirst()
            {
                let outcome: SendOutcome
                if let value = waiter.value {
                    let stored = self.enqueue(value)
                    assert(stored, "MPSC room vanished under the lock")
                    outcome = .sent
                } else {
                    outcome = self.reservedOutcome()
                }
                wakeups.senders.append(SenderResumption(continuation: waiter.continuation, outcome: outcome))
            }
            if self.sendWaiters.isEmpty && self.lane.word & Lane.waitersBit != 0 {
                self.lane.clearFlags(Lane.waitersBit)
            }
        }
    }
}
