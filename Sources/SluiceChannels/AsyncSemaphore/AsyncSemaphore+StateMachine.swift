extension AsyncSemaphore {
    /// How a suspended `acquire` ends.
    enum AcquireOutcome: Equatable, Sendable {
        /// The waiter's units were taken out of the semaphore for it: it must build a ``AsyncSemaphore/Permit``.
        case acquired
        /// The semaphore was closed while the waiter was queued (or before it could queue).
        case closed
        /// The waiting task was cancelled; it holds nothing.
        case cancelled
    }

    typealias AcquireContinuation = UnsafeContinuation<AcquireOutcome, Never>

    /// The pure state of one semaphore: no locks, no tasks, no clocks. ``AsyncSemaphore`` owns it inside a `Mutex`,
    /// calls one event method per thing that happened, and resumes the returned waiters after unlocking.
    ///
    /// It is generic over the continuation only so that tests can drive it with plain tokens instead of suspended
    /// tasks; the semaphore uses ``AsyncSemaphore/AcquireContinuation`` and the type is specialized for it.
    ///
    /// Units are handed to a waiter all at once, when its whole request fits; until then they stay in `permits`
    /// (tokio instead assigns units to the head waiter piecemeal). The observable order is the same, and
    /// `availablePermits` stays a single number: units that no permit holds.
    ///
    /// Invariants, checked by the tests that drive this type directly:
    /// - `permits >= 0`.
    /// - The head waiter, if any, does not fit: `waiters.isEmpty || permits < waiters.first.count`. Every event
    ///   that adds units or removes the head admits waiters until this holds again.
    /// - `closed` implies `waiters.isEmpty`.
    struct StateMachine<Continuation>: ~Copyable {
        /// A task suspended in `acquire`, in arrival order.
        struct Waiter {
            let id: UInt64
            /// Units it asked for, at least 1; it is admitted only when all of them are free at once.
            let count: Int
            let continuation: Continuation
        }

        /// A waiter to resume after unlocking, with what it gets.
        typealias Resumption = SluiceChannels.Resumption<Continuation, AcquireOutcome>

        /// The waiters one event releases, in the order they were decided (FIFO for admissions). The first is
        /// stored inline so that the common case (one release wakes one waiter) allocates nothing; the array is
        /// touched only when a single event wakes several.
        typealias Wakeups = WaiterList<Resumption>

        /// Units free right now: not held by any ``AsyncSemaphore/Permit`` and not forgotten. Waiters never hold a
        /// share of these; they get their whole request when it fits.
        private var permits: Int
        /// Tasks waiting for units, oldest first. Only the head is ever admitted, so a large request at the head
        /// blocks smaller ones behind it (that is the fairness: it cannot be starved).
        private var waiters = RingBuffer<Waiter>()
        /// True once `close()` was called: acquires fail from then on, and `waiters` stays empty. Releases still
        /// add units, so that `permits` keeps counting what is free.
        private var closed = false
        /// Source of waiter ids, so a cancellation finds its own waiter and nobody else's.
        private var nextWaiterID: UInt64 = 0

        init(permits: Int) {
            precondition(permits >= 0, "AsyncSemaphore needs a non-negative number of permits, got \(permits)")
            self.permits = permits
        }

        var availablePermits: Int { self.permits }
        var isClosed: Bool { self.closed }
        var waiterCount: Int { self.waiters.count }
        /// Units the oldest waiter asked for, if anyone waits.
        var headWaiterCount: Int? { self.waiters.first?.count }

        private mutating func makeWaiterID() -> UInt64 {
            self.nextWaiterID &+= 1
            return self.nextWaiterID
        }

        /// True when a new request for `count` units may take them now: they are free and nobody queued earlier.
        private func admitsNewcomer(_ count: Int) -> Bool {
            self.waiters.isEmpty && self.permits >= count
        }

        // MARK: - Acquiring

        enum AcquireAction: Equatable {
            /// The units are taken: build the permit.
            case acquired
            /// Not enough free units, or earlier waiters queued: suspend as waiter `id` through
            /// ``acquireSuspended(id:count:continuation:isCancelled:)``.
            case suspend(id: UInt64)
            /// Not enough free units, or earlier waiters queued, and the caller may not wait.
            case noPermits
            case closed
        }

        /// A caller asks for `count` units; `mayWait` says whether it can suspend when they are not free.
        mutating func acquire(_ count: Int, mayWait: Bool) -> AcquireAction {
            precondition(count >= 1, "AsyncSemaphore acquire needs at least 1 unit, got \(count)")
            if self.closed { return .closed }
            // A newcomer never overtakes a queued waiter, even when its smaller request would fit.
            guard self.admitsNewcomer(count) else { return mayWait ? .suspend(id: self.makeWaiterID()) : .noPermits }
            self.permits -= count
            return .acquired
        }

        enum WaiterAction {
            /// The waiter is queued; a release, a cancellation or `close()` resumes it later.
            case none
            /// Resume it now (after unlocking): the state changed between the fast path and the suspension.
            case resume(Resumption)
        }

        /// A caller that got `.suspend(id)` now holds a continuation. Re-checks everything, because the lock was
        /// released in between: the waiter joins the queue only at this point, which is its place in FIFO order.
        mutating func acquireSuspended(
            id: UInt64,
            count: Int,
            continuation: Continuation,
            isCancelled: Bool
        ) -> WaiterAction {
            if isCancelled { return .resume(Resumption(continuation: continuation, outcome: .cancelled)) }
            if self.closed { return .resume(Resumption(continuation: continuation, outcome: .closed)) }
            if self.admitsNewcomer(count) {
                self.permits -= count
                return .resume(Resumption(continuation: continuation, outcome: .acquired))
            }
            // Either waiters are queued (then the head does not fit and nothing changes by queueing behind it), or
            // the queue is empty and this request does not fit: it becomes a head that does not fit.
            self.waiters.append(Waiter(id: id, count: count, continuation: continuation))
            return .none
        }

        /// The task waiting as `id` was cancelled. If it was still queued it is removed and resumed with
        /// `.cancelled`, and because it may have been the head that blocked the others, the waiters behind it are
        /// admitted as far as the free units allow. If it was already resumed (with its units, or closed), nothing
        /// happens: it keeps what it got.
        mutating func acquireCancelled(id: UInt64) -> Wakeups {
            var wakeups = Wakeups()
            guard let waiter = self.waiters.removeFirst(where: { $0.id == id }) else { return wakeups }
            wakeups.append(Resumption(continuation: waiter.continuation, outcome: .cancelled))
            self.admitWaiters(&wakeups)
            return wakeups
        }

        // MARK: - Releasing

        /// `count` units come back (a permit released or dropped) or are added (``AsyncSemaphore/release(_:)``).
        /// Waiters are admitted oldest first while the head's whole request fits.
        mutating func release(_ count: Int) -> Wakeups {
            precondition(count >= 0, "AsyncSemaphore release needs a non-negative number of units, got \(count)")
            let (sum, overflow) = self.permits.addingReportingOverflow(count)
            precondition(!overflow, "AsyncSemaphore permits overflow: \(self.permits) free plus \(count) released")
            self.permits = sum
            var wakeups = Wakeups()
            self.admitWaiters(&wakeups)
            return wakeups
        }

        /// Admits waiters from the head while each one's request fits; stops at the first that does not, so nobody
        /// behind it is served first.
        private mutating func admitWaiters(_ wakeups: inout Wakeups) {
            while let head = self.waiters.first, head.count <= self.permits {
                _ = self.waiters.popFirst()
                self.permits -= head.count
                wakeups.append(Resumption(continuation: head.continuation, outcome: .acquired))
            }
        }

        // MARK: - Lifecycle

        /// Closes the semaphore: every queued waiter fails, and so will every later acquire. Free units stay
        /// counted, and permits already held can still be released.
        mutating func close() -> Wakeups {
            self.closed = true
            var wakeups = Wakeups()
            self.waiters.drain { waiter in
                wakeups.append(Resumption(continuation: waiter.continuation, outcome: .closed))
            }
            return wakeups
        }
    }
}
