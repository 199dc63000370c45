public import Synchronization

extension MPSC {
    /// The shared core of one channel: the lock-free ``Lane`` for values that find room, and the state machine
    /// behind a lock for everything else.
    ///
    /// A send first tries the lane: take a permit (one compare-and-swap), write the value into the ring, and look at
    /// the receiver-waiting flag. A receive first pops the ring and gives the permit back. Only when a permit word
    /// flag is set (senders waiting, values spilled, the channel ending) or the ring is empty does an operation take
    /// the lock, where the ``StateMachine`` decides; continuations are resumed, and dropped values destroyed, only
    /// after unlocking, so a resumed task never contends with the thread that woke it.
    @usableFromInline
    final class Storage: Sendable {
        @usableFromInline let state: Locked<StateMachine>
        /// The same lane the state machine holds, for the fast paths.
        @usableFromInline let lane: Lane
        /// Lets a receiver about to park poll the ring for the next value instead. See ``Spin`` for why and when.
        @usableFromInline let spin = Spin()
        /// Lets a batch receive that finds only a few values ready wait a moment for more. See ``Linger``.
        @usableFromInline let linger = Linger()

        @inlinable
        init(capacity: Int?, ringLimit: Int = Lane.ringLimit) {
            let machine = StateMachine(capacity: capacity, ringLimit: ringLimit)
            self.lane = machine.lane
            self.canReserveInRing = !machine.canSpill
            self.state = Locked(machine)
        }

        /// True if permits are taken, spent and dropped on the fast path, as ring permits: the channel cannot spill
        /// (see ``StateMachine/canSpill``).
        @usableFromInline let canReserveInRing: Bool

        @inlinable
        var capacity: Int? { self.state.withLock { $0.capacity } }
        @inlinable
        var count: Int { self.state.withLock { $0.count } }
        @inlinable
        var isClosedForSending: Bool { self.state.withLock { $0.isClosedForSending } }

        /// The lane's words and the waiter counts, for test diagnostics.
        var diagnosis: String {
            self.state.withLock { state in
                let lane = state.lane
                let word = lane.word
                return "free \(Lane.freeSlots(word))/\(lane.ringPermits) flags \(word & Lane.flagBits) attention "
                    + "\(lane.attentionWord) head \(lane.head.pointee.load(ordering: .relaxed)) tail "
                    + "\(lane.tail.pointee.load(ordering: .relaxed)) released "
                    + "\(lane.released.pointee.load(ordering: .relaxed)) hasValue \(lane.hasValue) spill "
                    + "\(state.spill.count) sendWaiters \(state.sendWaiters.count) receiveWaiters "
                    + "\(state.receiveWaiters.count)"
            }
        }

        // MARK: Fast-path helpers

        /// Writes a value into the ring on the permit the caller holds, without the lock; then wakes a parked
        /// receiver (see ``Lane/attention``). A spinning receiver sees the value by itself.
        @inlinable @inline(__always)
        func write(_ value: Element) {
            if self.lane.writeAndCheck(value) { self.wakeParkedReceivers() }
        }

        @inlinable @inline(never)
        func wakeParkedReceivers() {
            self.state.withLock { $0.wakeReceivers() }.resumeAll()
        }

        /// A consumer took a value from the ring without the lock: gives the slots taken so far back, if a batch is
        /// due or someone needs them now.
        @inlinable @inline(__always)
        func took() {
            if self.lane.mustReleaseTaken { self.releaseTaken() }
        }

        @inlinable @inline(never)
        func releaseTaken() {
            guard let (old, count) = self.lane.releaseTaken() else { return }
            self.released(count, before: old, byReceiver: true)
        }

        /// A ring permit was given back without the lock.
        @inlinable
        func releasedPermit() {
            self.released(1, before: self.lane.release(1), byReceiver: false)
        }

        /// `count` ring permits were given back without the lock (the permit word was `old` before); takes the lock
        /// only if a flag asks for it: senders wait (admit them), values are spilled (move them into the ring; a
        /// receiver does that itself when it finds the ring empty), or the channel is ending and these were the last
        /// permits out (end waiting receivers).
        @inlinable
        func released(_ count: Int, before old: Int, byReceiver: Bool) {
            guard old & Lane.flagBits != 0 else { return }
            let mustSettle =
                old & Lane.waitersBit != 0
                || (!byReceiver && old & Lane.spilledBit != 0)
                || (old & Lane.endingBit != 0 && Lane.freeSlots(old) + count == self.lane.ringPermits)
            guard mustSettle else { return }
            self.settled(self.state.withLock { $0.permitsReleased() })
        }

        /// Resumes what a slow-path event woke, after unlocking.
        @inlinable
        func settled(_ wakeups: Wakeups) {
            wakeups.resumeAll()
        }

        // MARK: Sending

        @inlinable
        func trySend(_ value: Element) -> Result<Void, TrySendError<Element>> {
            if self.lane.tryAcquire() {
                self.write(value)
                return .success(())
            }
            switch self.state.withLock({ $0.send(value, mayWait: false) }) {
            case .stored:
                return .success(())
            case .resumeReceiver(let receivers):
                self.settled(receivers)
                return .success(())
            case .full, .suspend: return .failure(.full(value))
            case .closed: return .failure(.closed(value))
            }
        }

        /// The fast path is small and always inlined into the caller, so that a send that finds room is no async
        /// call at all (an out-of-line async call costs a task switch with an executor-preference check: 22% of the
        /// cycles of `sluice-bench channels` 1→1 when this was one function).
        @inlinable @inline(__always)
        func send(_ value: Element) async throws {
            if self.lane.tryAcquire() {
                self.write(value)
                return
            }
            try await self.sendSlowly(value)
        }

        @inlinable @inline(never)
        func sendSlowly(_ value: Element) async throws {
            let id: UInt64
            switch self.state.withLock({ $0.send(value, mayWait: true) }) {
            case .stored:
                return
            case .resumeReceiver(let receivers):
                self.settled(receivers)
                return
            case .closed: throw SendError(value)
            case .full: preconditionFailure("MPSC.send got .full although it may wait")
            case .suspend(let waiterID): id = waiterID
            }
            switch await self.waitForSlot(id: id, value: value) {
            case .sent: return
            case .closed: throw SendError(value)
            case .cancelled: throw CancellationError()
            case .reserved, .reservedInSpill:
                preconditionFailure("MPSC.send waiter with a value was resumed as a reservation")
            }
        }

        /// Waits until a slot is free and the reservation is ours. Returns whether the slot is beyond the ring.
        @inlinable
        func reserve() async throws -> Bool {
            if self.canReserveInRing && self.lane.tryAcquire() { return false }
            let id: UInt64
            switch self.state.withLock({ $0.reserve() }) {
            case .reserved(let inSpill): return inSpill
            case .closed: throw ClosedError()
            case .full: preconditionFailure("MPSC.reserve got .full although it may wait")
            case .suspend(let waiterID): id = waiterID
            }
            switch await self.waitForSlot(id: id, value: nil) {
            case .reserved: return false
            case .reservedInSpill: return true
            case .closed: throw ClosedError()
            case .cancelled: throw CancellationError()
            case .sent: preconditionFailure("MPSC.reserve waiter was resumed as a send")
            }
        }

        @inlinable
        func tryReserve() -> Result<Bool, TrySendError<Void>> {
            if self.canReserveInRing && self.lane.tryAcquire() { return .success(false) }
            switch self.state.withLock({ $0.reserve(mayWait: false) }) {
            case .reserved(let inSpill): return .success(inSpill)
            case .full, .suspend: return .failure(.full(()))
            case .closed: return .failure(.closed(()))
            }
        }

        @inlinable
        func waitForSlot(id: UInt64, value: Element?) async -> SendOutcome {
            await suspend { continuation in
                let (action, wakeups) = self.state.withLock {
                    $0.sendSuspended(id: id, value: value, continuation: continuation, isCancelled: Task.isCancelled)
                }
                if !wakeups.isEmpty { self.settled(wakeups) }
                if case .resume(let sender) = action { sender.resume() }
            } onCancel: {
                self.state.withLock { $0.sendCancelled(id: id) }?.resume()
            }
        }

        @inlinable
        func permitSend(_ value: Element, inSpill: Bool) -> Result<Void, SendError<Element>> {
            // In a channel that cannot spill, a permit writes straight into its ring slot, unless the receiver is
            // gone (in one that can, permits are counted under the lock). A value written just as the receiver goes
            // stays in the ring until the channel is freed, as if sent just before.
            if !inSpill && self.canReserveInRing
                && self.lane.permits.pointee.load(ordering: .relaxed) & Lane.goneBit == 0
            {
                self.write(value)
                return .success(())
            }
            switch self.state.withLock({ $0.permitSend(value, inSpill: inSpill) }) {
            case .delivered(let wakeups):
                self.settled(wakeups)
                return .success(())
            case .closed: return .failure(SendError(value))
            }
        }

        @inlinable
        func permitDropped(inSpill: Bool) {
            if !inSpill && self.canReserveInRing {
                self.releasedPermit()
            } else {
                self.settled(self.state.withLock { $0.permitDropped(inSpill: inSpill) })
            }
        }

        // MARK: Receiving

        @inlinable
        func tryReceive() -> Result<Element, TryRecvError> {
            if let value = self.lane.pop() {
                self.took()
                return .success(value)
            }
            switch self.state.withLock({ $0.receive(mayWait: false) }) {
            case .value(let value, let wakeups):
                self.settled(wakeups)
                return .success(value)
            case .finished: return .failure(.disconnected)
            case .empty, .suspend: return .failure(.empty)
            }
        }

        /// Always inlined fast path, out-of-line slow path: see ``send(_:)``.
        @inlinable @inline(__always)
        func receive() async throws(CancellationError) -> Element? {
            if let value = self.lane.pop() {
                self.took()
                return value
            }
            return try await self.receiveSlowly()
        }

        @inlinable @inline(never)
        func receiveSlowly() async throws(CancellationError) -> Element? {
            var spun = false
            while true {
                if let value = self.lane.pop() {
                    self.took()
                    return value
                }
                let id: UInt64
                switch self.state.withLock({ $0.receive(mayWait: true) }) {
                case .value(let value, let wakeups):
                    self.settled(wakeups)
                    return value
                case .finished: return nil
                case .empty: preconditionFailure("MPSC.recv got .empty although it may wait")
                case .suspend(let waiterID): id = waiterID
                }
                guard try await self.spinOrPark(id: id, spun: &spun) else { return nil }
            }
        }

        /// A receive found nothing and got waiter `id`: spins once for the next value (the second miss parks), else
        /// parks until woken. Returns false if the channel ended; true means look again.
        @inlinable
        func spinOrPark(id: UInt64, spun: inout Bool) async throws(CancellationError) -> Bool {
            if !spun && self.spin.wait(on: self.lane) {
                spun = true
                return true
            }
            switch await self.waitForValue(id: id) {
            case .ready:
                spun = false
                return true
            case .closed: return false
            case .cancelled: throw CancellationError()
            }
        }

        /// Appends up to `limit` values, waiting only while there are none; returns false once the channel ended.
        /// Always inlined fast path, out-of-line slow path: see ``send(_:)``.
        @inlinable @inline(__always)
        func receive(upTo limit: Int, into values: inout [Element]) async throws(CancellationError) -> Bool {
            let lingered =
                limit >= Linger.batch && !self.lane.hasValue(at: Linger.batch - 1)
                ? self.linger.wait(on: self.lane) : nil
            let taken = self.lane.pop(upTo: limit, into: &values)
            if let lingered { self.linger.record(readyBefore: lingered, taken: taken) }
            if taken > 0 && (taken == limit || self.lane.attentionWord & Lane.spilledBit == 0) {
                self.took()
                return true
            }
            return try await self.receiveSlowly(upTo: limit, alreadyTaken: taken, into: &values)
        }

        @inlinable @inline(never)
        func receiveSlowly(
            upTo limit: Int,
            alreadyTaken: Int,
            into values: inout [Element]
        ) async throws(CancellationError) -> Bool {
            if alreadyTaken > 0 {
                self.took()
                // Spilled values are ready too: top the batch up from the spill under the lock.
                if case .values(let wakeups) = self.state.withLock({
                    $0.receive(upTo: limit - alreadyTaken, into: &values)
                }) {
                    self.settled(wakeups)
                }
                return true
            }
            var spun = false
            while true {
                let taken = self.lane.pop(upTo: limit, into: &values)
                if taken > 0 {
                    self.took()
                    // Spilled values are ready too: top the batch up from the spill under the lock.
                    if taken < limit && self.lane.attentionWord & Lane.spilledBit != 0,
                        case .values(let wakeups) = self.state.withLock({
                            $0.receive(upTo: limit - taken, into: &values)
                        })
                    {
                        self.settled(wakeups)
                    }
                    return true
                }
                let id: UInt64
                switch self.state.withLock({ $0.receive(upTo: limit, into: &values) }) {
                case .values(let wakeups):
                    self.settled(wakeups)
                    return true
                case .finished: return false
                case .suspend(let waiterID): id = waiterID
                }
                guard try await self.spinOrPark(id: id, spun: &spun) else { return false }
            }
        }

        @inlinable
        func waitForValue(id: UInt64) async -> ReceiveOutcome {
            await suspend { continuation in
                let action = self.state.withLock {
                    $0.receiveSuspended(id: id, continuation: continuation, isCancelled: Task.isCancelled)
                }
                if case .resume(let receiver) = action { receiver.resume() }
            } onCancel: {
                self.state.withLock { $0.receiveCancelled(id: id) }?.resume()
            }
        }

        // MARK: Lifecycle

        @inlinable
        func sendersDropped() {
            self.settled(self.state.withLock { $0.sendersDropped() })
        }

        @inlinable
        func close() {
            self.settled(self.state.withLock { $0.receiverClosed() })
        }

        @inlinable
        func receiverDropped() {
            let (wakeups, dropped) = self.state.withLock { $0.receiverDropped() }
            wakeups.resumeAll()
            _ = consume dropped  // buffered values are destroyed here, after unlocking
        }
    }
}
