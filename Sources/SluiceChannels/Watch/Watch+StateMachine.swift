extension Watch {
    /// How a suspended `changed()` ends.
    @usableFromInline
    enum ChangeOutcome: Sendable {
        /// A version this receiver had not seen arrived and is now marked seen; the value of that version.
        case changed(Value)
        /// The sender is gone and this receiver has seen the last value.
        case closed
        /// The waiting task was cancelled; the receiver's seen version is unchanged.
        case cancelled
    }

    /// How a suspended ``Sender/closed()`` ends.
    @usableFromInline
    typealias ClosedOutcome = SluiceChannels.ClosedOutcome

    @usableFromInline
    typealias ChangeContinuation = UnsafeContinuation<ChangeOutcome, Never>

    /// A `changed()` waiter to resume after unlocking, with what it gets.
    @usableFromInline
    typealias ChangeResumption = Resumption<ChangeContinuation, ChangeOutcome>

    /// The pure state of one watch channel: no locks, no tasks, no clocks. ``Watch/Storage`` owns it inside a
    /// `Mutex`, calls one event method per thing that happened, and performs the returned action after unlocking.
    ///
    /// Receivers are identified by a *slot*: an index into `seenVersions`, handed out by ``subscribe()`` and
    /// ``cloneReceiver(slot:)`` and given back by ``receiverDropped(slot:)``. Keeping the seen version here rather
    /// than in the ``Watch/Receiver`` object means that every read-and-mark (`borrowAndUpdate`, `changed`) is one
    /// critical section, and that the receiver object holds only constants.
    ///
    /// Invariants, checked by the tests that drive this type directly:
    /// - every live slot has `seenVersion <= version`;
    /// - `receiverCount` equals the number of live slots, and `freeSlots` lists exactly the others;
    /// - every waiter in `changeWaiters` sits on a live slot whose seen version equals `version`, and the sender
    ///   is alive (a send or the sender's drop empties the queue);
    /// - `closedWaiters` is non-empty only while `receiverCount > 0`.
    @usableFromInline
    struct StateMachine: ~Copyable {
        /// A task suspended in `changed()` on receiver `slot`.
        @usableFromInline
        struct ChangeWaiter: Sendable {
            @inlinable
            init(id: UInt64, slot: Int, continuation: ChangeContinuation) {
                self.id = id
                self.slot = slot
                self.continuation = continuation
            }

            @usableFromInline let id: UInt64
            @usableFromInline let slot: Int
            @usableFromInline let continuation: ChangeContinuation
        }

        /// The one value the channel holds, replaced or modified in place by sends. `nil` only between
        /// ``beginModify()`` and ``endModify(_:notify:)``, which run in one critical section: no other event ever
        /// finds it `nil`.
        @usableFromInline var current: Value?
        /// Bumped by every send that notifies. The initial value is version 0.
        @usableFromInline var version: UInt64 = 0
        /// False once the last reference to the ``Watch/Sender`` is gone; never becomes true again.
        @usableFromInline var isSenderAlive = true
        /// The per-receiver table: `seenVersions[slot]` is the newest version receiver `slot` has marked seen, or
        /// `nil` when the slot is free. Only grows; freed slots are reused through `freeSlots`.
        @usableFromInline var seenVersions: [UInt64?]
        /// Free indexes into `seenVersions`, reused last-freed-first so the table stays as small as the peak
        /// number of receivers.
        @usableFromInline var freeSlots: [Int] = []
        /// Live receivers: the number of non-`nil` entries in `seenVersions`.
        @usableFromInline var receiverCount: Int
        /// Tasks waiting in `changed()`, in arrival order. Each waits because its slot has seen `version`.
        @usableFromInline var changeWaiters = RingBuffer<ChangeWaiter>(minimumCapacity: 2)
        /// Sender-side tasks waiting in `closed()` for `receiverCount` to reach zero.
        @usableFromInline var closedWaiters = WaiterList<ClosedWaiter>()
        /// Ids for suspensions, so cancellation can find its waiter.
        @usableFromInline var nextWaiterID: UInt64 = 0

        /// Creates the state with `initial` as version 0 and one receiver, in slot 0, that has seen it.
        @inlinable
        init(initial: Value) {
            self.current = initial
            self.seenVersions = [0]
            self.receiverCount = 1
        }

        /// The value the channel holds.
        @usableFromInline var value: Value {
            guard let value = self.current else { preconditionFailure("Watch value read during a modification") }
            return value
        }

        /// Tasks waiting in `changed()` right now.
        @inlinable
        var changeWaiterCount: Int { self.changeWaiters.count }
        /// Tasks waiting in the sender's `closed()` right now.
        @inlinable
        var closedWaiterCount: Int { self.closedWaiters.count }

        /// The version receiver `slot` has seen, or `nil` if the slot is free.
        @inlinable
        func seenVersion(slot: Int) -> UInt64? {
            slot < self.seenVersions.count ? self.seenVersions[slot] : nil
        }

        @inlinable
        mutating func makeWaiterID() -> UInt64 {
            self.nextWaiterID &+= 1
            return self.nextWaiterID
        }

        // MARK: - Receivers come and go

        /// A new receiver that has seen the current version. Returns its slot.
        @inlinable
        mutating func subscribe() -> Int {
            self.register(seen: self.version)
        }

        /// A new receiver that has seen what receiver `slot` has seen. Returns its slot.
        @inlinable
        mutating func cloneReceiver(slot: Int) -> Int {
            guard let seen = self.seenVersion(slot: slot) else {
                preconditionFailure("Watch receiver slot \(slot) cloned while free")
            }
            return self.register(seen: seen)
        }

        @inlinable
        mutating func register(seen: UInt64) -> Int {
            self.receiverCount += 1
            if let slot = self.freeSlots.popLast() {
                self.seenVersions[slot] = seen
                return slot
            }
            self.seenVersions.append(seen)
            return self.seenVersions.count - 1
        }

        /// Receiver `slot` is gone. Its slot is freed for reuse. When it was the last receiver, the sender's
        /// `closed()` waiters are returned to resume.
        ///
        /// A receiver with a task waiting in `changed()` cannot be dropped (the task holds it), so no change
        /// waiter can refer to the freed slot.
        @inlinable
        mutating func receiverDropped(slot: Int) -> [ClosedResumption] {
            guard self.seenVersion(slot: slot) != nil else {
                preconditionFailure("Watch receiver slot \(slot) dropped while free")
            }
            self.seenVersions[slot] = nil
            self.freeSlots.append(slot)
            self.receiverCount -= 1
            guard self.receiverCount == 0, let wakeup = self.takeClosedWaiters() else { return [] }
            return wakeup.waiters.map { ClosedResumption(continuation: $0.continuation, outcome: .closed) }
        }

        // MARK: - Sending

        /// Replaces the value, makes a new version and returns the old value (to destroy after unlocking) and the
        /// `changed()` waiters to resume.
        @inlinable
        mutating func send(_ newValue: Value) -> (old: Value, wakeups: [ChangeResumption]) {
            precondition(self.isSenderAlive, "Watch value sent after the sender was dropped")
            let old = self.value
            self.current = newValue
            return (old, self.notify())
        }

        /// A modification starts: moves the value out, uniquely referenced, so that the caller's closure edits it
        /// in place (no copy-on-write of a collection value). The caller must call ``endModify(_:notify:)`` in the
        /// same critical section.
        ///
        /// The closure is not passed in here on purpose: a non-`Sendable` closure handed to the state machine
        /// would tie the machine's isolation region to the calling task, which the `Mutex` forbids. The value is
        /// `Sendable`, so editing it outside the machine is allowed.
        @inlinable
        mutating func beginModify() -> Value {
            precondition(self.isSenderAlive, "Watch value modified after the sender was dropped")
            guard let value = self.current else { preconditionFailure("Watch modification began during another") }
            self.current = nil
            return value
        }

        /// A modification ends: stores the edited value back; when `notify` is true, makes a new version and
        /// returns the waiters to resume. When it is false nobody is notified, even if the value changed.
        @inlinable
        mutating func endModify(_ value: Value, notify: Bool) -> [ChangeResumption] {
            precondition(self.current == nil, "Watch modification ended without beginning")
            self.current = value
            return notify ? self.notify() : []
        }

        /// Bumps the version and wakes every `changed()` waiter, marking the new version seen on its slot.
        @inlinable
        mutating func notify() -> [ChangeResumption] {
            self.version &+= 1
            guard !self.changeWaiters.isEmpty else { return [] }
            var wakeups: [ChangeResumption] = []
            wakeups.reserveCapacity(self.changeWaiters.count)
            let version = self.version
            let value = self.value
            // A loop rather than `drain`: the body writes `seenVersions`, another part of `self`.
            while let waiter = self.changeWaiters.popFirst() {
                self.seenVersions[waiter.slot] = version
                wakeups.append(ChangeResumption(continuation: waiter.continuation, outcome: .changed(value)))
            }
            return wakeups
        }

        /// The last sender reference is gone: every `changed()` waiter has seen the last version, so each ends.
        @inlinable
        mutating func senderDropped() -> [ChangeResumption] {
            precondition(self.isSenderAlive, "Watch sender dropped twice")
            precondition(self.closedWaiters.isEmpty, "Watch sender dropped while a task waits in its closed()")
            self.isSenderAlive = false
            var wakeups: [ChangeResumption] = []
            self.changeWaiters.drain { waiter in
                wakeups.append(ChangeResumption(continuation: waiter.continuation, outcome: .closed))
            }
            return wakeups
        }

        // MARK: - Receiving

        /// The current value, and receiver `slot` has now seen it.
        @inlinable
        mutating func borrowAndUpdate(slot: Int) -> Value {
            self.markSeen(slot: slot)
            return self.value
        }

        /// Whether receiver `slot` has a version it has not seen; `.closed` once the sender is gone, whatever it
        /// has seen (tokio's `has_changed`).
        @inlinable
        func hasChanged(slot: Int) -> Result<Bool, RecvError> {
            guard self.isSenderAlive else { return .failure(.closed) }
            guard let seen = self.seenVersion(slot: slot) else {
                preconditionFailure("Watch receiver slot \(slot) asked hasChanged while free")
            }
            return .success(seen != self.version)
        }

        @usableFromInline
        enum ChangedAction: Sendable {
            /// There was an unseen version; it is now marked seen. The value of that version.
            case changed(Value)
            /// The sender is gone and the last version is seen: nothing more can change.
            case closed
            /// Nothing new: suspend as waiter `id` through ``changedSuspended(id:slot:continuation:isCancelled:)``.
            case suspend(id: UInt64)
        }

        /// Receiver `slot` asks for a change. Returns at once when it has something unseen.
        @inlinable
        mutating func changed(slot: Int) -> ChangedAction {
            guard let seen = self.seenVersion(slot: slot) else {
                preconditionFailure("Watch receiver slot \(slot) called changed() while free")
            }
            if seen != self.version {
                self.seenVersions[slot] = self.version
                return .changed(self.value)
            }
            if !self.isSenderAlive { return .closed }
            return .suspend(id: self.makeWaiterID())
        }

        /// A `changed()` that got `.suspend(id)` now holds a continuation. Re-checks everything, because the
        /// lock was released in between. Returns the waiter to resume at once, or `nil` when it is stored.
        @inlinable
        mutating func changedSuspended(
            id: UInt64,
            slot: Int,
            continuation: ChangeContinuation,
            isCancelled: Bool
        ) -> ChangeResumption? {
            if isCancelled { return ChangeResumption(continuation: continuation, outcome: .cancelled) }
            switch self.changed(slot: slot) {
            case .changed(let value):
                return ChangeResumption(continuation: continuation, outcome: .changed(value))
            case .closed:
                return ChangeResumption(continuation: continuation, outcome: .closed)
            case .suspend:
                self.changeWaiters.append(ChangeWaiter(id: id, slot: slot, continuation: continuation))
                return nil
            }
        }

        /// The task waiting in `changed()` as `id` was cancelled. Returns it, to resume with `.cancelled`, if it
        /// was still waiting; `nil` if a send or the sender's drop already resumed it (that outcome stands).
        @inlinable
        mutating func changedCancelled(id: UInt64) -> ChangeResumption? {
            guard let waiter = self.changeWaiters.removeFirst(where: { $0.id == id }) else { return nil }
            return ChangeResumption(continuation: waiter.continuation, outcome: .cancelled)
        }

        @inlinable
        mutating func markSeen(slot: Int) {
            guard self.seenVersion(slot: slot) != nil else {
                preconditionFailure("Watch receiver slot \(slot) marked seen while free")
            }
            self.seenVersions[slot] = self.version
        }
    }
}

/// The sender's `closed()` (see ``ClosedWaitEvents``): the receiving side is gone when no receiver is left.
extension Watch.StateMachine: ClosedWaitEvents {
    @inlinable
    var isReceivingSideGone: Bool { self.receiverCount == 0 }
}

extension Watch.ChangeOutcome: Equatable where Value: Equatable {}
