import Synchronization

/// A counting semaphore for tasks: at most N units in use at once, handed out in strict arrival order.
///
/// The semaphore holds a number of units (permits). ``acquire(_:)`` takes one or more of them and returns a
/// ``Permit`` that gives them back when it is released or dropped. While not enough units are free, `acquire` waits.
/// It is the tool for "at most N at a time": open connections, requests in flight per connection, bytes buffered.
///
/// ## Fairness
///
/// Waiters are served strictly first come, first served. Only the oldest waiter can be admitted, and only when its
/// whole request fits; everyone behind it waits, **even a smaller request that would fit right now**. So a large
/// request is never starved by a stream of small ones: once it is at the head, units accumulate until it fits.
/// A new ``acquire(_:)`` or ``tryAcquire(_:)`` never overtakes a queued waiter either. The price is that a free unit
/// may sit unused while the head waits for more of them.
///
/// A request for more units than the semaphore will ever hold is allowed: it waits (and blocks everyone behind it)
/// until ``release(_:)`` adds enough units, the semaphore closes, or its task is cancelled.
///
/// ## Closing
///
/// ``close()`` fails every waiter with ``ClosedError``, and every later acquire too. Permits already held stay
/// valid and can still be released; ``availablePermits`` keeps counting the units they give back.
///
/// ## Cancellation
///
/// A task cancelled while it waits in `acquire` is removed from the queue and gets `CancellationError`; it holds
/// nothing. If it was the head waiter, the waiters behind it are re-examined, since they may fit now.
///
/// ## Handing a permit to another task
///
/// ``Permit`` is noncopyable, so an escaping closure (a `Task`, a task-group child) cannot capture it. Acquire in
/// the parent, ``Permit/forget()`` it there, and have the child give the units back by hand when it ends:
///
/// ```swift
/// let permit = try await limit.acquire()
/// permit.forget()                              // the units stay out of the semaphore…
/// group.addTask {
///     defer { limit.release(1) }               // …until the child is done, however it ends
///     await serve(connection)
/// }
/// ```
///
/// ## Examples
///
/// A connection limit: acquire **before** accepting, so a full server stops taking connections and the backlog
/// (and then TCP) pushes back on clients.
///
/// ```swift
/// let limit = AsyncSemaphore(permits: 1024)
/// try await withThrowingDiscardingTaskGroup { group in
///     while true {
///         let permit = try await limit.acquire()
///         let connection = try await listener.accept()
///         permit.forget()
///         group.addTask {
///             defer { limit.release(1) }
///             await Session(connection).run()
///         }
///     }
/// }
/// ```
///
/// Weighted work: a request takes as many units as it needs.
///
/// ```swift
/// let memory = AsyncSemaphore(permits: 64 << 20)   // 64 MiB of decode buffers
/// let permit = try await memory.acquire(frame.length)
/// let decoded = try decode(frame)                  // if this throws, the dropped permit gives the units back
/// permit.release()
/// ```
public final class AsyncSemaphore: Sendable {
    /// The state machine behind its lock. There is no separate storage object: nothing else shares this state
    /// (the semaphore is the one handle), so the lock lives here and a permit points straight at it.
    private let state: Locked<StateMachine<AcquireContinuation>>

    /// Creates a semaphore holding `permits` free units.
    ///
    /// - Parameter permits: units free at the start, at least 0. Zero is useful for a gate that opens with
    ///   ``release(_:)``.
    public init(permits: Int) {
        precondition(permits >= 0, "AsyncSemaphore needs a non-negative number of permits, got \(permits)")
        self.state = Locked(StateMachine(permits: permits))
    }

    /// Waits until `count` units are free and this caller is the oldest waiter, then takes them.
    ///
    /// When no one is queued and enough units are free, this returns at once without suspending (one lock, no
    /// allocation). Otherwise the caller queues behind every earlier waiter (see "Fairness" in ``AsyncSemaphore``).
    ///
    /// - Parameter count: units to take, at least 1. More than the semaphore holds in total is allowed: the call
    ///   waits until ``release(_:)`` adds enough of them (blocking every waiter behind it meanwhile).
    /// - Returns: a ``Permit`` holding `count` units.
    ///
    /// ## Errors
    /// - ``ClosedError`` if the semaphore is closed, or closes while this call waits.
    /// - `CancellationError` if the task is cancelled while waiting.
    ///
    /// ## Cancellation
    /// Cancel-safe: a cancelled `acquire` holds no units; it only loses its place in the queue. If its units were
    /// granted before the cancellation was noticed, it returns the permit normally (units are never both granted
    /// and reported lost). A task that is already cancelled still gets the units if they are free at once: like
    /// tokio, the fast path does not check for cancellation.
    ///
    /// ## Examples
    /// ```swift
    /// let permit = try await inFlight.acquire()
    /// let reply = try await send(request)          // at most N requests in flight
    /// permit.release()
    /// ```
    public func acquire(_ count: Int = 1) async throws -> Permit {
        precondition(count >= 1, "AsyncSemaphore.acquire needs at least 1 unit, got \(count)")
        let id: UInt64
        switch self.withState({ $0.acquire(count, mayWait: true) }) {
        case .acquired: return Permit(semaphore: self, count: count)
        case .closed: throw ClosedError()
        case .suspend(let waiterID): id = waiterID
        case .noPermits: preconditionFailure("AsyncSemaphore.acquire got .noPermits although it may wait")
        }
        let outcome: AcquireOutcome = await suspend { continuation in
            let action = self.withState {
                $0.acquireSuspended(id: id, count: count, continuation: continuation, isCancelled: Task.isCancelled)
            }
            if case .resume(let resumption) = action { resumption.resume() }
        } onCancel: {
            self.withState { $0.acquireCancelled(id: id) }.resumeAll()
        }
        switch outcome {
        case .acquired: return Permit(semaphore: self, count: count)
        case .closed: throw ClosedError()
        case .cancelled: throw CancellationError()
        }
    }

    /// Takes `count` units if they are free now and nobody is waiting, without suspending.
    ///
    /// - Parameter count: units to take, at least 1.
    /// - Returns: a ``Permit`` holding `count` units.
    ///
    /// ## Errors
    /// - ``TryAcquireError/noPermits`` when fewer than `count` units are free, **or when other tasks are already
    ///   waiting** in ``acquire(_:)``: a `tryAcquire` never overtakes them, even if its request would fit.
    /// - ``TryAcquireError/closed`` after ``close()``.
    ///
    /// ## Examples
    /// ```swift
    /// do {
    ///     let permit = try limit.tryAcquire()
    ///     permit.forget()
    ///     group.addTask { defer { limit.release(1) }; await serve(connection) }
    /// } catch {
    ///     await reject(connection, .serverBusy)      // full right now: shed load instead of queueing
    /// }
    /// ```
    public func tryAcquire(_ count: Int = 1) throws(TryAcquireError) -> Permit {
        precondition(count >= 1, "AsyncSemaphore.tryAcquire needs at least 1 unit, got \(count)")
        switch self.withState({ $0.acquire(count, mayWait: false) }) {
        case .acquired: return Permit(semaphore: self, count: count)
        case .noPermits: throw .noPermits
        case .closed: throw .closed
        case .suspend: preconditionFailure("AsyncSemaphore.tryAcquire got .suspend although it may not wait")
        }
    }

    /// Adds `count` units to the semaphore, waking waiters in arrival order as far as the units allow.
    ///
    /// This is how units given up with ``Permit/forget()`` come back, and how a semaphore grows (tokio's
    /// `add_permits`): nothing checks that the units were taken before, so releasing more than was acquired raises
    /// the limit for good. The oldest waiter is admitted as soon as its whole request fits, then the next, and so
    /// on; the first one that does not fit stops the wake-ups. After ``close()`` the units are still counted.
    ///
    /// - Parameter count: units to add, at least 0.
    public func release(_ count: Int) {
        precondition(count >= 0, "AsyncSemaphore.release needs a non-negative number of units, got \(count)")
        guard count > 0 else { return }
        self.withState { $0.release(count) }.resumeAll()
    }

    /// Closes the semaphore: every waiter fails with ``ClosedError`` and so does every later acquire.
    ///
    /// Permits already held remain valid; releasing or dropping them still returns their units, which
    /// ``availablePermits`` counts. Closing twice does nothing more.
    public func close() {
        self.withState { $0.close() }.resumeAll()
    }

    /// Units free right now: not held by a permit and not forgotten.
    ///
    /// Exact at the moment it is read. It can be non-zero while tasks wait: the oldest waiter needs more units
    /// than are free, and they stay free (and countable) until its whole request fits.
    public var availablePermits: Int { self.withState { $0.availablePermits } }

    /// True once ``close()`` was called.
    public var isClosed: Bool { self.withState { $0.isClosed } }

    /// Tasks queued in ``acquire(_:)`` right now. For tests, which poll it to know that a task is suspended.
    var waiterCount: Int { self.withState { $0.waiterCount } }

    /// Gives units back from a permit that was released or dropped.
    func permitReleased(_ count: Int) {
        guard count > 0 else { return }
        self.withState { $0.release(count) }.resumeAll()
    }

    // MARK: Locking

    /// Runs `body` on the state machine under the lock (``Locked`` makes the lock's hand-offs visible to
    /// ThreadSanitizer).
    @inline(__always)
    private func withState<Result>(
        _ body: (inout sending StateMachine<AcquireContinuation>) -> sending Result
    ) -> sending Result {
        self.state.withLock { body(&$0) }
    }
}

extension AsyncSemaphore {
    /// Why ``AsyncSemaphore/tryAcquire(_:)`` returned no permit.
    public enum TryAcquireError: Error, Equatable {
        /// Not enough units are free, or other tasks are already waiting for units.
        case noPermits
        /// The semaphore is closed.
        case closed
    }
}
