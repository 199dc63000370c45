extension Broadcast {
    /// The pure state of one broadcast channel: no locks, no tasks, no clocks. ``Broadcast/Storage`` owns it inside a
    /// `Mutex`, calls one event method per thing that happened, and acts on the answer after unlocking.
    ///
    /// Every value sent gets a *position*: 0, 1, 2, … (`tail` is the next one). The value at position `p` lives in
    /// `slots[p % slots.count]`. Each receiver is a cursor, `next`, the position it reads next; a receiver whose
    /// cursor fell below `tail - capacity` has lagged. A send needs no space and never waits: at full size it
    /// overwrites the oldest slot whatever its readers owe.
    ///
    /// The ring starts small (``initialSlots``) and doubles, up to `capacity`, only when a send would overwrite a
    /// value some receiver still owes: a pattern whose subscribers keep up never holds more than a few slots, so a
    /// large `capacity` costs memory only while somebody actually lags.
    ///
    /// Memory is kept honest per slot, like tokio's `rem`: a slot counts the receivers that still have to read its
    /// value, and the value is let go as soon as that count reaches zero — because the last of them read it, was
    /// dropped, or (implicitly) when the slot is overwritten under a lagging receiver.
    ///
    /// Invariants, checked by the tests that drive this type directly:
    /// - For every subscribed receiver, `next <= tail`.
    /// - For positions `p` in `max(0, tail - capacity) ..< tail` that some subscribed receiver owes (`next <= p`),
    ///   `slots[p % slots.count]` holds position `p`, its `remaining` equals the number of those receivers, and it
    ///   holds the value. A slot whose readers are all done holds no value and may be reused.
    /// - A waiter's receiver is caught up (`next == tail`); so a send hands its value to the first waiter of each
    ///   waiting receiver, and the end of the channel wakes every waiter.
    @usableFromInline
    struct StateMachine: ~Copyable {
        /// One place in the ring.
        @usableFromInline
        struct Slot: Sendable {
            @inlinable
            init(position: UInt64, remaining: Int, value: Element?) {
                self.position = position
                self.remaining = remaining
                self.value = value
            }

            /// The position whose value was last written here; `UInt64.max` before the first write.
            @usableFromInline var position: UInt64
            /// Receivers subscribed when `position` was sent that have neither read it nor unsubscribed since.
            @usableFromInline var remaining: Int
            /// The value at `position`, held only while `remaining > 0`.
            @usableFromInline var value: Element?
        }

        /// One entry of the receiver table, addressed by the small id a ``Broadcast/Receiver`` holds.
        @usableFromInline
        struct ReceiverEntry: Sendable {
            @inlinable
            init(next: UInt64, waiterCount: Int, isSubscribed: Bool) {
                self.next = next
                self.waiterCount = waiterCount
                self.isSubscribed = isSubscribed
            }

            /// The position this receiver reads next; equal to `tail` when it has read everything.
            @usableFromInline var next: UInt64
            /// Tasks currently suspended in a receive on this receiver (more than one only if tasks share it).
            @usableFromInline var waiterCount: Int
            /// False once the receiver is gone; the entry's id is then in `freeReceiverIDs` for reuse.
            @usableFromInline var isSubscribed: Bool
        }

        /// A task suspended in a receive, waiting for the next send (or the end).
        @usableFromInline
        struct ReceiveWaiter: Sendable {
            @inlinable
            init(id: UInt64, receiver: Int, continuation: ReceiveContinuation) {
                self.id = id
                self.receiver = receiver
                self.continuation = continuation
            }

            @usableFromInline let id: UInt64
            /// The receiver it waits on: the index of its entry in `receivers`.
            @usableFromInline let receiver: Int
            @usableFromInline let continuation: ReceiveContinuation
        }

        /// Values the ring holds: a receiver more than this far behind has lagged.
        @usableFromInline let capacity: Int
        /// The ring, written in place; see ``Slot``. Between ``initialSlots`` (or `capacity`, if smaller) and `capacity`
        /// entries: it grows when a send would overwrite a value still owed.
        @usableFromInline var slots: [Slot]
        /// The ring's size before anybody lags.
        @usableFromInline static var initialSlots: Int { 16 }
        /// The position the next send gets. Positions are never reused, so a count of 2^64 sends is the limit.
        @usableFromInline var tail: UInt64 = 0
        /// Receiver cursors, indexed by receiver id. Freed ids are reused, so the table stays as large as the most
        /// receivers that were ever alive at once.
        @usableFromInline var receivers: [ReceiverEntry] = []
        /// Ids of `receivers` entries whose receiver is gone, ready for the next subscriber.
        @usableFromInline var freeReceiverIDs: [Int] = []
        /// Subscribed receivers: the entries with `isSubscribed`. Exact at all times, because a receiver's `deinit`
        /// unsubscribes under the lock.
        @usableFromInline var receiverCount = 0
        /// Suspended receives in arrival order, across all receivers. Arrival order matters only among waiters of one
        /// receiver: the oldest of them gets the next value.
        @usableFromInline var waiters: [ReceiveWaiter] = []
        /// False once the ``Broadcast/Sender`` is gone: no value can arrive any more.
        @usableFromInline var senderAlive = true
        /// Ids for suspensions, so cancellation can find its waiter.
        @usableFromInline var nextWaiterID: UInt64 = 0

        @inlinable
        init(capacity: Int) {
            precondition(capacity >= 1, "Broadcast capacity must be at least 1, got \(capacity)")
            self.capacity = capacity
            self.slots = Array(
                repeating: Slot(position: .max, remaining: 0, value: nil),
                count: min(capacity, Self.initialSlots)
            )
        }

        /// Doubles the ring (at most to `capacity`), moving every slot that holds a position to its new index. The
        /// positions held are distinct and span less than the old size, so none collide.
        @inlinable
        mutating func grow() {
            let size = min(self.capacity, self.slots.count * 2)
            var grown = Array(repeating: Slot(position: .max, remaining: 0, value: nil), count: size)
            for index in self.slots.indices where self.slots[index].position != .max {
                let slot = self.slots[index]
                grown[Int(slot.position % UInt64(size))] = slot
            }
            self.slots = grown
        }

        /// The oldest position the ring still holds.
        @usableFromInline var oldest: UInt64 {
            self.tail > UInt64(self.capacity) ? self.tail - UInt64(self.capacity) : 0
        }

        @inlinable
        func slotIndex(of position: UInt64) -> Int {
            Int(position % UInt64(self.slots.count))
        }

        @inlinable
        mutating func makeWaiterID() -> UInt64 {
            self.nextWaiterID &+= 1
            return self.nextWaiterID
        }

        @inlinable
        func checkSubscribed(_ receiver: Int) {
            precondition(
                receiver >= 0 && receiver < self.receivers.count && self.receivers[receiver].isSubscribed,
                "Broadcast receiver id \(receiver) is not subscribed"
            )
        }

        // MARK: - Subscription

        /// A new receiver starts at `tail`: it sees only values sent from now on. Returns its id.
        @inlinable
        mutating func subscribe() -> Int {
            let entry = ReceiverEntry(next: self.tail, waiterCount: 0, isSubscribed: true)
            self.receiverCount += 1
            if let id = self.freeReceiverIDs.popLast() {
                self.receivers[id] = entry
                return id
            }
            self.receivers.append(entry)
            return self.receivers.count - 1
        }

        /// The receiver `receiver` is gone. It no longer owes the values it had not read: their slots' counts drop,
        /// and each value nobody else owes is returned, so that the caller destroys it after unlocking.
        @inlinable
        mutating func unsubscribe(receiver: Int) -> [Element] {
            self.checkSubscribed(receiver)
            // A task waiting in `recv` keeps its receiver alive, so a receiver going away has no waiters.
            precondition(
                self.receivers[receiver].waiterCount == 0,
                "Broadcast receiver \(receiver) unsubscribed while \(self.receivers[receiver].waiterCount) tasks wait"
            )
            var released: [Element] = []
            for position in max(self.receivers[receiver].next, self.oldest)..<self.tail {
                if let value = self.release(at: position) { released.append(value) }
            }
            self.receivers[receiver].isSubscribed = false
            self.freeReceiverIDs.append(receiver)
            self.receiverCount -= 1
            return released
        }

        // MARK: - Sending

        /// The sender publishes `value` at position `tail`.
        ///
        /// The first waiter of every waiting receiver gets the value directly (its cursor moves past it here); the
        /// slot keeps the value only for the receivers that still have to read it. Whatever the overwritten slot
        /// still held — a value some lagging receiver never read — is handed back to destroy after unlocking.
        @inlinable
        mutating func send(_ value: Element) -> SendAction {
            precondition(self.senderAlive, "Broadcast send after the sender was dropped")
            guard self.receiverCount > 0 else { return .noReceivers }
            let position = self.tail
            var remaining = self.receiverCount
            var wakeup: ReceiverWakeup? = nil
            if !self.waiters.isEmpty {
                // The one allocation of the slow path: the waiters leave the lock in this list, the first inline, the
                // others in an array (so waking a single receiver allocates nothing). A send that finds every
                // receiver busy (the steady state under load) wakes nobody and allocates nothing.
                var woken = WaiterList<Waiter<ReceiveOutcome>>()
                woken.reserveCapacity(self.waiters.count)
                // Wake the oldest waiter of each receiver; compact the others (tasks sharing a receiver) in place.
                var kept = 0
                for index in self.waiters.indices {
                    let waiter = self.waiters[index]
                    if self.receivers[waiter.receiver].next == position {
                        self.receivers[waiter.receiver].next = position + 1
                        self.receivers[waiter.receiver].waiterCount -= 1
                        remaining -= 1
                        woken.append(Waiter(id: waiter.id, continuation: waiter.continuation))
                    } else {
                        self.waiters[kept] = waiter
                        kept += 1
                    }
                }
                self.waiters.removeLast(self.waiters.count - kept)
                wakeup = ReceiverWakeup(waiters: woken, outcome: .value(value))
            }
            var index = self.slotIndex(of: position)
            // A value still owed would be overwritten: grow rather than make its reader lag early.
            while self.slots[index].remaining > 0 && self.slots.count < self.capacity {
                self.grow()
                index = self.slotIndex(of: position)
            }
            let displaced = self.slots[index].value.take()
            self.slots[index] = Slot(position: position, remaining: remaining, value: remaining > 0 ? value : nil)
            self.tail = position + 1
            return .sent(receiverCount: self.receiverCount, wakeup: wakeup, displaced: displaced)
        }

        /// The sender is gone. Every waiter is caught up, so every waiter ends now; the others drain, then end.
        @inlinable
        mutating func senderDropped() -> ReceiverWakeup? {
            precondition(self.senderAlive, "Broadcast sender dropped twice")
            self.senderAlive = false
            guard !self.waiters.isEmpty else { return nil }
            var woken = WaiterList<Waiter<ReceiveOutcome>>()
            woken.reserveCapacity(self.waiters.count)
            for waiter in self.waiters {
                assert(self.receivers[waiter.receiver].next == self.tail, "Broadcast waiter behind the tail")
                self.receivers[waiter.receiver].waiterCount -= 1
                woken.append(Waiter(id: waiter.id, continuation: waiter.continuation))
            }
            self.waiters.removeAll()
            return ReceiverWakeup(waiters: woken, outcome: .closed)
        }

        // MARK: - Receiving

        /// Receiver `receiver` asks for its next value; `mayWait` says whether it can suspend when there is none.
        @inlinable
        mutating func receive(receiver: Int, mayWait: Bool) -> ReceiveAction {
            self.checkSubscribed(receiver)
            if let lag = self.takeLag(receiver: receiver) { return .lagged(lag) }
            if let value = self.takeReady(receiver: receiver) { return .value(value) }
            if !self.senderAlive { return .closed }
            return mayWait ? .suspend(id: self.makeWaiterID()) : .empty
        }

        /// Takes up to `limit` values at once. A lag found at the start is reported instead of any value.
        @inlinable
        mutating func receive(receiver: Int, upTo limit: Int, into values: inout [Element]) -> ReceiveBatchAction {
            self.checkSubscribed(receiver)
            if let lag = self.takeLag(receiver: receiver) { return .lagged(lag) }
            let taken = self.receiveReady(receiver: receiver, upTo: limit, into: &values)
            if taken > 0 { return .values(taken) }
            if !self.senderAlive { return .closed }
            return .suspend(id: self.makeWaiterID())
        }

        /// Appends up to `limit` values that are ready now and returns how many. Never reports a lag: it stops at
        /// one instead, leaving the cursor behind so that the next receive reports it. This is how a batch that
        /// already holds a value continues without losing it to an error.
        @inlinable
        mutating func receiveReady(receiver: Int, upTo limit: Int, into values: inout [Element]) -> Int {
            self.checkSubscribed(receiver)
            // `takeReady` for each position in `next ..< end`, in one pass over the ring (the lock is held for it).
            let next = self.receivers[receiver].next
            guard limit > 0, next < self.tail, next >= self.oldest else { return 0 }
            let end = min(self.tail, next + UInt64(limit))
            self.receivers[receiver].next = end
            values.reserveCapacity(values.count + Int(end - next))
            let size = self.slots.count
            var index = self.slotIndex(of: next)
            self.slots.withUnsafeMutableBufferPointer { slots in
                var position = next
                while position < end {
                    defer { position += 1 }
                    precondition(
                        slots[index].position == position && slots[index].remaining > 0,
                        "Broadcast slot \(index) holds position \(slots[index].position) owed by \(slots[index].remaining), receiver expected \(position)"
                    )
                    slots[index].remaining -= 1
                    // The last reader moves the value out, so the slot lets go of it; others share it.
                    let value = slots[index].remaining == 0 ? slots[index].value.take() : slots[index].value
                    guard let value else {
                        preconditionFailure(
                            "Broadcast slot for position \(position) was released while a receiver owed it"
                        )
                    }
                    values.append(value)
                    index += 1
                    if index == size { index = 0 }
                }
            }
            return Int(end - next)
        }

        /// A receive that got `.suspend(id)` now holds a continuation. Re-checks everything, because the lock was
        /// released in between: returns the waiter to resume at once, or `nil` if it is now stored.
        @inlinable
        mutating func receiveSuspended(
            receiver: Int,
            id: UInt64,
            continuation: ReceiveContinuation,
            isCancelled: Bool
        ) -> ReceiverResumption? {
            if isCancelled { return ReceiverResumption(continuation: continuation, outcome: .cancelled) }
            switch self.receive(receiver: receiver, mayWait: false) {
            case .value(let value): return ReceiverResumption(continuation: continuation, outcome: .value(value))
            case .lagged(let lag): return ReceiverResumption(continuation: continuation, outcome: .lagged(lag))
            case .closed: return ReceiverResumption(continuation: continuation, outcome: .closed)
            case .suspend: preconditionFailure("Broadcast receive without waiting answered .suspend")
            case .empty:
                self.waiters.append(ReceiveWaiter(id: id, receiver: receiver, continuation: continuation))
                self.receivers[receiver].waiterCount += 1
                return nil
            }
        }

        /// The task waiting as `id` was cancelled: returns it, to resume with `.cancelled`, if it was still waiting.
        /// A waiter already handed a value keeps it, so cancellation never loses a value.
        @inlinable
        mutating func receiveCancelled(id: UInt64) -> ReceiverResumption? {
            guard let index = self.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            let waiter = self.waiters.remove(at: index)
            self.receivers[waiter.receiver].waiterCount -= 1
            return ReceiverResumption(continuation: waiter.continuation, outcome: .cancelled)
        }

        /// If the receiver fell behind what the ring holds, moves it to the oldest held value and returns how many
        /// values it missed. Its count in the skipped slots is already gone: they were overwritten.
        @inlinable
        mutating func takeLag(receiver: Int) -> UInt64? {
            let next = self.receivers[receiver].next
            let oldest = self.oldest
            guard next < oldest else { return nil }
            self.receivers[receiver].next = oldest
            return oldest - next
        }

        /// The value at the receiver's cursor if it is held (not yet sent, or lagged past: `nil`); moves the cursor.
        @inlinable
        mutating func takeReady(receiver: Int) -> Element? {
            let next = self.receivers[receiver].next
            guard next < self.tail, next >= self.oldest else { return nil }
            self.receivers[receiver].next = next + 1
            let index = self.slotIndex(of: next)
            precondition(
                self.slots[index].position == next,
                "Broadcast slot \(index) holds position \(self.slots[index].position), receiver expected \(next)"
            )
            // The last reader moves the value out, so the slot lets go of it; others share it.
            if let value = self.release(at: next) { return value }
            guard let value = self.slots[index].value else {
                preconditionFailure("Broadcast slot for position \(next) was released while a receiver owed it")
            }
            return value
        }

        /// One receiver no longer owes `position`. Returns the value if that receiver was the last one owing it.
        @inlinable
        mutating func release(at position: UInt64) -> Element? {
            let index = self.slotIndex(of: position)
            precondition(self.slots[index].remaining > 0, "Broadcast slot for position \(position) owed by nobody")
            self.slots[index].remaining -= 1
            guard self.slots[index].remaining == 0 else { return nil }
            guard let value = self.slots[index].value.take() else {
                preconditionFailure("Broadcast slot for position \(position) was released while a receiver owed it")
            }
            return value
        }

        // MARK: - Introspection (tests and the public `count`)

        /// Values sent since `receiver`'s cursor, including any it has lagged past.
        @inlinable
        func pendingCount(receiver: Int) -> Int {
            self.checkSubscribed(receiver)
            return Int(self.tail - self.receivers[receiver].next)
        }

        /// Values the slowest subscribed receiver has yet to take (counting any it has lagged past); 0 with none.
        @inlinable
        var backlog: Int {
            var oldest = self.tail
            for entry in self.receivers where entry.isSubscribed { oldest = min(oldest, entry.next) }
            return Int(self.tail - oldest)
        }

        /// The position `receiver` reads next.
        @inlinable
        func cursor(of receiver: Int) -> UInt64 {
            self.checkSubscribed(receiver)
            return self.receivers[receiver].next
        }

        /// Suspended receives, across all receivers.
        @inlinable
        var waiterCount: Int { self.waiters.count }

        /// Slots that hold a value right now.
        @inlinable
        var heldValueCount: Int { self.slots.reduce(0) { $0 + ($1.value == nil ? 0 : 1) } }

        /// How many receivers still owe `position`, or `nil` if the ring no longer holds it (or never did).
        @inlinable
        func remaining(at position: UInt64) -> Int? {
            guard position < self.tail, position >= self.oldest else { return nil }
            let slot = self.slots[self.slotIndex(of: position)]
            return slot.position == position ? slot.remaining : 0  // reused: nobody owed it any more
        }

        /// Checks every invariant listed on the type; returns a description of the first one broken, or `nil`.
        /// O(capacity × receivers): for tests only.
        @inlinable
        func invariantViolation() -> String? {
            let subscribed = self.receivers.indices.filter { self.receivers[$0].isSubscribed }
            if subscribed.count != self.receiverCount {
                return "receiverCount \(self.receiverCount) but \(subscribed.count) entries subscribed"
            }
            for id in subscribed where self.receivers[id].next > self.tail {
                return "receiver \(id) at \(self.receivers[id].next) is past the tail \(self.tail)"
            }
            if self.slots.count > self.capacity {
                return "ring of \(self.slots.count) slots past capacity \(self.capacity)"
            }
            for position in self.oldest..<self.tail {
                let slot = self.slots[self.slotIndex(of: position)]
                let owing = subscribed.count { self.receivers[$0].next <= position }
                if slot.position != position {
                    if owing == 0 { continue }  // reused after its readers were done
                    return "slot for \(position) holds position \(slot.position)"
                }
                if slot.remaining != owing { return "slot \(position) counts \(slot.remaining), \(owing) owe it" }
                if (slot.value != nil) != (owing > 0) { return "slot \(position) holds a value: \(slot.value != nil)" }
            }
            for id in self.receivers.indices {
                let waiting = self.waiters.count { $0.receiver == id }
                if waiting != self.receivers[id].waiterCount {
                    return "receiver \(id) counts \(self.receivers[id].waiterCount) waiters, \(waiting) stored"
                }
                if waiting > 0 && (self.receivers[id].next != self.tail || !self.receivers[id].isSubscribed) {
                    return "receiver \(id) has waiters but is not a caught-up subscriber"
                }
            }
            return nil
        }
    }
}
