extension MPSC.StateMachine {
    // MARK: - Receiving

    @usableFromInline
    enum ReceiveAction {
        /// Here is a value. Resume `wakeups` (senders admitted into the slot it freed) after unlocking.
        case value(Element, MPSC.Wakeups)
        /// The channel is finished: nothing buffered, nothing can arrive.
        case finished
        /// Nothing yet: suspend as waiter `id` through ``receiveSuspended(id:continuation:isCancelled:)``.
        case suspend(id: UInt64)
        /// Nothing yet and the caller may not wait.
        case empty
    }

    /// A receive whose lock-free attempt found the ring empty: moves the spill into the ring if it can, then takes
    /// the head, or says whether the channel is finished.
    @inlinable
    mutating func receive(mayWait: Bool) -> ReceiveAction {
        self.refill()
        if let value = self.lane.pop() ?? self.takeFromSpill() {
            _ = self.lane.releaseTaken()
            var wakeups = MPSC.Wakeups()
            self.settle(&wakeups)
            return .value(value, wakeups)
        }
        if self.isFinished { return .finished }
        return mayWait ? .suspend(id: self.makeWaiterID()) : .empty
    }

    @usableFromInline
    enum ReceiveBatchAction {
        /// Values were appended; resume these senders after unlocking.
        case values(MPSC.Wakeups)
        case finished
        case suspend(id: UInt64)
    }

    /// Takes up to `limit` values at once (moving the spill into the ring as the ring empties), and admits as many
    /// waiting senders as slots were freed.
    @inlinable
    mutating func receive(upTo limit: Int, into values: inout [Element]) -> ReceiveBatchAction {
        var taken = 0
        while taken < limit {
            self.refill()
            var more = self.lane.pop(upTo: limit - taken, into: &values)
            if more == 0, let value = self.takeFromSpill() {
                values.append(value)
                more = 1
            }
            guard more > 0 else { break }
            taken += more
            _ = self.lane.releaseTaken()
        }
        if taken > 0 {
            var wakeups = MPSC.Wakeups()
            self.settle(&wakeups)
            return .values(wakeups)
        }
        if self.isFinished { return .finished }
        return .suspend(id: self.makeWaiterID())
    }

    /// The spill's head, if it is the oldest value although the ring cannot take it (see ``mayTakeFromSpill``).
    @inlinable
    mutating func takeFromSpill() -> Element? {
        guard self.mayTakeFromSpill, let value = self.spill.popFirst() else { return nil }
        if self.spill.isEmpty { self.lane.clearFlags(MPSC.Lane.spilledBit) }
        return value
    }

    /// A receiver that got `.suspend(id)` now holds a continuation. It raises the receiver-waiting flag and then
    /// looks at the ring once more (the receiver's half of the Dekker pair, see ``MPSC/Lane/attention``): a
    /// value written before the flag went up is seen here, and a producer writing after it sees the flag.
    @inlinable
    mutating func receiveSuspended(
        id: UInt64,
        continuation: MPSC.ReceiveContinuation,
        isCancelled: Bool
    ) -> WaiterAction<MPSC.ReceiverResumption> {
        func resume(_ outcome: MPSC.ReceiveOutcome) -> WaiterAction<MPSC.ReceiverResumption> {
            .resume(MPSC.ReceiverResumption(continuation: continuation, outcome: outcome))
        }
        if isCancelled { return resume(.cancelled) }
        self.lane.setFlags(MPSC.Lane.receiverWaitingBit)
        self.refill()
        if self.lane.hasValue || self.mayTakeFromSpill {
            self.updateReceiverWaitingFlag()
            return resume(.ready)
        }
        if self.isFinished {
            self.updateReceiverWaitingFlag()
            return resume(.closed)
        }
        self.receiveWaiters.append(ReceiveWaiter(id: id, continuation: continuation))
        return .none
    }

    /// The task waiting as receiver `id` was cancelled: returns it to resume with `.cancelled` if it was still
    /// waiting. A receiver already resumed keeps its outcome (a woken receiver then takes its value).
    @inlinable
    mutating func receiveCancelled(id: UInt64) -> MPSC.ReceiverResumption? {
        guard let waiter = self.receiveWaiters.removeFirst(where: { $0.id == id }) else { return nil }
        self.updateReceiverWaitingFlag()
        return MPSC.ReceiverResumption(continuation: waiter.continuation, outcome: .cancelled)
    }

    /// A producer wrote to the ring and saw the receiver-waiting flag: wake every waiting receiver to look again.
    /// (All of them, not one: with several tasks sharing a receiver, one woken task cannot pass a wake-up on.)
    @inlinable
    mutating func wakeReceivers() -> MPSC.Wakeups {
        var wakeups = MPSC.Wakeups()
        guard !self.receiveWaiters.isEmpty else { return wakeups }
        self.receiveWaiters.drain { waiter in
            wakeups.receivers.append(MPSC.ReceiverResumption(continuation: waiter.continuation, outcome: .ready))
        }
        self.updateReceiverWaitingFlag()
        return wakeups
    }

    /// The flag mirrors `receiveWaiters`; producers read it without the lock.
    @inlinable
    mutating func updateReceiverWaitingFlag() {
        if self.receiveWaiters.isEmpty { self.lane.clearFlags(MPSC.Lane.receiverWaitingBit) }
    }

    /// Restores the invariants after an event that freed room or wrote values: moves the spill into the ring,
    /// admits waiting senders, wakes receivers if the ring has a value, ends them if the channel is finished.
    @inlinable
    mutating func settle(_ wakeups: inout MPSC.Wakeups) {
        self.refill()
        if !self.sendWaiters.isEmpty { self.admitWaitingSenders(into: &wakeups) }
        guard !self.receiveWaiters.isEmpty else { return }
        if self.lane.hasValue || self.mayTakeFromSpill {
            let woken = self.wakeReceivers()
            for receiver in woken.receivers { wakeups.receivers.append(receiver) }
        } else {
            self.finishReceiversIfDone(&wakeups)
        }
    }

    @inlinable
    mutating func finishReceiversIfDone(_ wakeups: inout MPSC.Wakeups) {
        guard self.isFinished, !self.receiveWaiters.isEmpty else { return }
        self.receiveWaiters.drain { waiter in
            wakeups.receivers.append(MPSC.ReceiverResumption(continuation: waiter.continuation, outcome: .closed))
        }
        self.updateReceiverWaitingFlag()
    }

    // MARK: - Lifecycle

    /// The last sender is gone. Waiting receivers end once the channel is drained.
    @inlinable
    mutating func sendersDropped() -> MPSC.Wakeups {
        self.sendersAlive = false
        self.lane.setFlags(MPSC.Lane.endingBit)
        var wakeups = MPSC.Wakeups()
        self.settle(&wakeups)
        return wakeups
    }

    /// The receiver closed: waiting senders and reservers fail; buffered values stay to be drained, and permits
    /// already held may still send.
    @inlinable
    mutating func receiverClosed() -> MPSC.Wakeups {
        self.closedForSending = true
        self.lane.setFlags(MPSC.Lane.endingBit)
        var wakeups = MPSC.Wakeups()
        self.sendWaiters.drain { waiter in
            wakeups.senders.append(MPSC.SenderResumption(continuation: waiter.continuation, outcome: .closed))
        }
        self.lane.clearFlags(MPSC.Lane.waitersBit)
        self.settle(&wakeups)
        return wakeups
    }

    /// The receiver is gone: close, then drop what is buffered, since nobody can ever receive it. The values are
    /// handed out so that they are destroyed after unlocking.
    ///
    /// A send that took its ring permit before this may still write afterwards; its value stays in the ring until
    /// the channel itself is freed (as if it had been sent just before the receiver went).
    @inlinable
    mutating func receiverDropped() -> (MPSC.Wakeups, [Element]) {
        let wakeups = self.receiverClosed()
        self.receiverGone = true
        self.lane.setFlags(MPSC.Lane.goneBit)
        var dropped: [Element] = []
        _ = self.lane.pop(upTo: .max, into: &dropped)
        _ = self.lane.releaseTaken()
        self.spill.popFirst(upTo: self.spill.count, into: &dropped)
        self.lane.clearFlags(MPSC.Lane.spilledBit)
        return (wakeups, dropped)
    }
}
