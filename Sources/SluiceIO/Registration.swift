import Glibc
import SluiceChannels
import Synchronization

/// One socket's readiness as seen by its event loop, and the tasks waiting for it.
///
/// Epoll is edge-triggered: the loop hears "readable" once when data arrives, not again until more arrives. So
/// readiness is remembered here until an I/O call proves it stale (returns `EAGAIN`, or moves fewer bytes than
/// asked, see `TCPStream.read`), and the proof must be about *this* readiness: a task snapshots the readiness tick, tries the syscall, and on `EAGAIN` clears readiness only
/// if the tick is unchanged. If an event came in between the failed syscall and the clear, the tick moved on and
/// the clear is skipped; clearing it anyway would lose the edge and the task would sleep forever (Tokio's
/// `ScheduledIo::clear_readiness` keeps the same rule). `RegistrationTests` drives exactly that race.
///
/// Readiness, the ticks and "someone is waiting" live in one atomic word (after Tokio's), so the steady-state path
/// (snapshot, syscall, clear, look) takes no lock. The continuations live behind a lock, taken only to suspend and
/// by an event that finds a waiter's bit set: one lock round trip per would-block on each side, where the locked
/// design took five.
public final class Registration: Sendable {
    /// Which readiness a wait is for.
    public enum Interest: Sendable {
        case read
        case write

        /// This direction's bit in ``Registration/covered``.
        var coveredBit: UInt8 { self == .read ? 1 : 2 }
        /// This direction's "ready" bit in ``Registration/readiness``.
        var readyBit: UInt64 { self == .read ? Word.readReady : Word.writeReady }
        /// This direction's "a waiter is stored" bit in ``Registration/readiness``.
        var waitingBit: UInt64 { self == .read ? Word.readWaiting : Word.writeWaiting }
        /// This direction's sticky "will never block again" bit in ``Registration/readiness``.
        var finalBit: UInt64 { self == .read ? Word.readFinal : Word.writeFinal }
        /// Where this direction's tick sits in ``Registration/readiness``.
        var tickShift: UInt64 { self == .read ? Word.readTickShift : Word.writeTickShift }
    }

    /// The layout of ``readiness``: flags in the low byte, then per direction the loop tick of the last event that
    /// made it ready (28 bits each: a snapshot is compared with the current tick microseconds later, never 2^28
    /// polls later, so the wrap is harmless). Per-direction ticks keep a stream of read events from voiding a
    /// writer's clear (one shared tick, as in Tokio, would cost the writer an extra `EAGAIN` per read event).
    enum Word {
        static let readReady: UInt64 = 1 << 0
        static let writeReady: UInt64 = 1 << 1
        /// The registration was closed: every wait, now and later, ends with "closed". Never cleared.
        static let closed: UInt64 = 1 << 2
        /// A read (write) waiter is stored in ``Registration/waiters``; set and cleared only under that lock or by
        /// an event that then takes the lock (see ``Registration/eventsArrived(readable:writable:tick:)``).
        static let readWaiting: UInt64 = 1 << 3
        static let writeWaiting: UInt64 = 1 << 4
        /// The peer closed its side, or the socket failed (`EPOLLRDHUP`, `EPOLLHUP`, `EPOLLERR`): reads never wait
        /// again (they return the end or the error). Sticky: edge-triggered epoll reports a hang-up once, and a
        /// clear after a short read (see `TCPStream.read`) must not forget an end that arrived with the last data.
        static let readFinal: UInt64 = 1 << 5
        /// The socket failed or hung up (`EPOLLHUP`, `EPOLLERR`): writes never wait again (they fail). Sticky.
        static let writeFinal: UInt64 = 1 << 6
        static let flags: UInt64 = 0xFF
        static let readTickShift: UInt64 = 8
        static let writeTickShift: UInt64 = 36
        static let tickMask: UInt64 = (1 << 28) - 1

        /// The tick of `interest` in `word`.
        @inline(__always)
        static func tick(_ word: UInt64, _ interest: Interest) -> UInt64 {
            (word >> interest.tickShift) & Self.tickMask
        }
    }

    struct Waiter {
        let id: UInt64
        let resume: Resume

        /// How a waiter is told: a suspended task's continuation, or a closure of a reader that is not running
        /// (``whenReady(_:_:)``).
        enum Resume {
            case continuation(UnsafeContinuation<WaitOutcome, Never>)
            case action(@Sendable () -> Void)
        }

        /// Ends the wait; call it with no lock held.
        func callAsFunction(_ outcome: WaitOutcome) {
            switch self.resume {
            case .continuation(let continuation): continuation.resume(returning: outcome)
            case .action(let action): action()
            }
        }
    }

    enum WaitOutcome: Sendable {
        case ready
        case closed
        case cancelled
    }

    /// The suspended tasks, one per direction at most (one reader and one writer per socket).
    struct Waiters {
        var read: Waiter? = nil
        var write: Waiter? = nil

        subscript(interest: Interest) -> Waiter? {
            get { interest == .read ? self.read : self.write }
            set {
                if interest == .read { self.read = newValue } else { self.write = newValue }
            }
        }
    }

    /// Ready bits, closed, waiting bits and the tick of the last event (``Word``). Written by the loop thread
    /// (events), the tasks doing I/O (clears, waiting bits) and `close()`; every read-modify-write is a
    /// compare-exchange or fetch-op, so no update is lost. Acquire/release on each: a waiter that sees "ready"
    /// also sees what the loop did before setting it.
    private let readiness = Atomic<UInt64>(0)
    /// Stored continuations. Lock order: taken alone, never while holding another lock; continuations are resumed
    /// after it is released.
    private let waiters = Locked(Waiters())
    /// Source of waiter ids, so that a cancellation handler removes only its own waiter.
    private let nextWaiterID = Atomic<UInt64>(0)
    /// The directions (``Interest/coveredBit``) whose waits run inside ``withCancellationHandler(for:_:)``: one
    /// cancellation handler for the whole scope, so those waits install none of their own.
    private let covered = Atomic<UInt8>(0)

    init() {}

    /// The current readiness tick: snapshot it *before* the syscall whose `EAGAIN` will clear readiness.
    public func tick(_ interest: Interest) -> UInt64 {
        Word.tick(self.readiness.load(ordering: .acquiring), interest)
    }

    /// True when a syscall for `interest` is worth trying now: ready, hung up or failed, or closed (the syscall
    /// then reports it). A read checks this first, so that after a short read it waits instead of trying a read
    /// that can only return `EAGAIN`.
    @inline(__always)
    public func isReady(_ interest: Interest) -> Bool {
        self.readiness.load(ordering: .acquiring) & (interest.readyBit | interest.finalBit | Word.closed) != 0
    }

    /// The syscall after `tick` said "would block": forget the readiness, unless an event refreshed it since.
    public func clearReadiness(_ interest: Interest, ifTick tick: UInt64) {
        var word = self.readiness.load(ordering: .relaxed)
        while Word.tick(word, interest) == tick && word & interest.readyBit != 0 {
            let (exchanged, current) = self.readiness.compareExchange(
                expected: word,
                desired: word & ~interest.readyBit,
                ordering: .acquiringAndReleasing
            )
            if exchanged { return }
            word = current
        }
    }

    /// The loop saw events for this socket in loop tick `tick`; `readFinal`/`writeFinal` mark a hang-up or error
    /// (which imply `readable`/`writable`). Called on the loop thread.
    func eventsArrived(
        readable: Bool,
        writable: Bool,
        readFinal: Bool = false,
        writeFinal: Bool = false,
        tick: UInt64
    ) {
        let ready =
            (readable ? Word.readReady : 0) | (writable ? Word.writeReady : 0) | (readFinal ? Word.readFinal : 0)
            | (writeFinal ? Word.writeFinal : 0)
        // The waiters of the directions that became ready are ours to resume: clear their bits in the same
        // exchange that publishes readiness, so a waiter that stores itself later sees "ready" instead.
        let taken = (readable ? Word.readWaiting : 0) | (writable ? Word.writeWaiting : 0)
        let stamp = tick & Word.tickMask
        // The fields this event rewrites: the taken waiting bits, and the ticks of the directions it makes ready.
        let replaced =
            taken | (readable ? Word.tickMask << Word.readTickShift : 0)
            | (writable ? Word.tickMask << Word.writeTickShift : 0)
        let stamps =
            ready | (readable ? stamp << Word.readTickShift : 0) | (writable ? stamp << Word.writeTickShift : 0)
        var word = self.readiness.load(ordering: .relaxed)
        while true {
            let desired = (word & ~replaced) | stamps
            let (exchanged, current) = self.readiness.compareExchange(
                expected: word,
                desired: desired,
                ordering: .acquiringAndReleasing
            )
            if exchanged { break }
            word = current
        }
        guard word & taken != 0 else { return }  // nobody was waiting: no lock
        // A waiter set its bit under the lock, together with storing itself; taking the lock here waits for it to
        // finish doing so.
        let (reader, writer) = self.waiters.withLock { waiters -> (Waiter?, Waiter?) in
            let reader = readable ? waiters.read : nil
            let writer = writable ? waiters.write : nil
            if readable { waiters.read = nil }
            if writable { waiters.write = nil }
            return (reader, writer)
        }
        reader?(.ready)
        writer?(.ready)
    }

    /// The socket is gone: end every wait, now and later, with a "closed" error.
    func close() {
        _ = self.readiness.bitwiseOr(Word.closed, ordering: .acquiringAndReleasing)
        let (reader, writer) = self.waiters.withLock { waiters -> (Waiter?, Waiter?) in
            let taken = (waiters.read, waiters.write)
            waiters = Waiters()
            _ = self.readiness.bitwiseAnd(~(Word.readWaiting | Word.writeWaiting), ordering: .relaxed)
            return taken
        }
        reader?(.closed)
        writer?(.closed)
    }

    /// Runs a non-blocking syscall until it completes: on would-block, forgets the readiness it was tried under
    /// (unless an event refreshed it meanwhile, see the type's discussion) and waits for the next.
    ///
    /// ## Errors
    /// What `attempt` throws; `EBADF` once the socket is closed; `CancellationError` while waiting.
    public func perform<Value: Sendable>(
        _ interest: Interest,
        _ attempt: () throws(IOError) -> IOResult<Value>
    ) async throws -> Value {
        while true {
            let tick = self.tick(interest)
            if case .processed(let value) = try attempt() { return value }
            self.clearReadiness(interest, ifTick: tick)
            try await self.waitUntilReady(interest)
        }
    }

    /// Waits until `interest` is ready (returns at once, without a lock, if it already is).
    ///
    /// Runs on the caller's executor (`nonisolated(nonsending)`): the task resumes where it waited.
    ///
    /// ## Errors
    /// `IOError(errno: EBADF, operation: "wait")` if the socket is closed before or while waiting;
    /// `CancellationError` if the task is cancelled while waiting. Cancellation leaves the socket usable.
    ///
    /// `@inline(never)`: inlined into its callers (`TCPStream.writeAll`, `Signals.Source.next()` through
    /// `perform`), this body crashes Swift 6.3.1's LLVM coroutine splitting in release builds (a null pointer in
    /// `emitSetAndGetSwiftErrorValueAround`, the swifterror of their typed-throws syscalls meeting this await).
    @inline(never)
    nonisolated(nonsending) public func waitUntilReady(_ interest: Interest) async throws {
        let word = self.readiness.load(ordering: .acquiring)
        if word & Word.closed != 0 { throw IOError(errno: EBADF, operation: "wait for \(interest)") }
        if word & (interest.readyBit | interest.finalBit) != 0 { return }
        let outcome: WaitOutcome
        if self.covered.load(ordering: .relaxed) & interest.coveredBit != 0 {
            // The scope's handler ends this wait if the task is cancelled (see `withCancellationHandler(for:_:)`).
            // Installing and removing a handler per wait costs more than the rest of the wait: the runtime takes
            // the task's status lock for each, and its entry and exit hops look up the task's executor preference
            // under that lock again.
            outcome = await withUnsafeContinuation { self.suspend(interest, id: 0, $0) }
        } else {
            let id = self.nextWaiterID.wrappingAdd(1, ordering: .relaxed).newValue
            outcome = await withTaskCancellationHandler {
                await withUnsafeContinuation { self.suspend(interest, id: id, $0) }
            } onCancel: {
                self.cancelWaiter(interest, id: id)
            }
        }
        switch outcome {
        case .ready: return
        case .closed: throw IOError(errno: EBADF, operation: "wait for \(interest)")
        case .cancelled: throw CancellationError()
        }
    }

    /// Calls `action` once, when `interest` is ready (at once, on this thread, if it already is), when the socket
    /// closes, or when ``endWait(_:)`` ends the wait: a wait without a task. A connection's reader that finds
    /// nothing to read ends its task and leaves this behind; the action starts the next one. So an idle
    /// connection holds no task, and none of the memory a task keeps for its deepest moment.
    ///
    /// The same rules as a task's wait: one wait per direction at a time, and an edge that arrives meanwhile is
    /// not lost.
    public func whenReady(_ interest: Interest, _ action: @escaping @Sendable () -> Void) {
        self.store(interest, Waiter(id: 0, resume: .action(action)), cancellable: false)
    }

    /// ``whenReady(_:_:)`` for a caller that handles readiness itself: when the wait is already over (ready,
    /// hung up or closed), returns false and neither stores nor calls `action`, so that a caller that just found
    /// the socket empty goes on in a loop instead of being called back inside this call. True when stored.
    public func whenReadyLater(_ interest: Interest, _ action: @escaping @Sendable () -> Void) -> Bool {
        self.store(interest, Waiter(id: 0, resume: .action(action)), cancellable: false, endAtOnce: false)
    }

    /// Ends the stored wait for `interest`: a task's wait ends with `CancellationError` (the task itself is not
    /// cancelled); a ``whenReady(_:_:)`` action is called, unless `tasksOnly`. Nothing happens when none is stored.
    public func endWait(_ interest: Interest, tasksOnly: Bool = false) {
        self.cancelWaiter(interest, id: nil, tasksOnly: tasksOnly)
    }

    /// Stores `continuation` as the waiter for `interest`, or resumes it at once when the wait is already over
    /// (ready, closed, or the task cancelled).
    private func suspend(_ interest: Interest, id: UInt64, _ continuation: UnsafeContinuation<WaitOutcome, Never>) {
        self.store(interest, Waiter(id: id, resume: .continuation(continuation)), cancellable: true)
    }

    /// Stores `waiter` for `interest`, or ends its wait at once when it is already over (ready, closed, or, for
    /// a `cancellable` wait, the task cancelled).
    /// With `endAtOnce` false, a wait that is already over is not ended either: the call returns false. True when
    /// the waiter was stored.
    @discardableResult
    private func store(_ interest: Interest, _ waiter: Waiter, cancellable: Bool, endAtOnce: Bool = true) -> Bool {
        let immediate = self.waiters.withLock { waiters -> WaitOutcome? in
            // Under the lock, so a cancellation handler that ran before we stored ourselves is seen here.
            if cancellable && Task.isCancelled { return .cancelled }
            // Set our waiting bit only while neither ready nor closed, in one exchange: an event after it sees the
            // bit and comes for us (taking this lock first); one before it left "ready" set.
            var word = self.readiness.load(ordering: .acquiring)
            while true {
                if word & Word.closed != 0 { return .closed }
                if word & (interest.readyBit | interest.finalBit) != 0 { return .ready }
                let (exchanged, current) = self.readiness.compareExchange(
                    expected: word,
                    desired: word | interest.waitingBit,
                    ordering: .acquiringAndReleasing
                )
                if exchanged { break }
                word = current
            }
            precondition(waiters[interest] == nil, "two tasks wait for \(interest) on one socket")
            waiters[interest] = waiter
            return nil
        }
        guard let immediate else { return true }
        if endAtOnce { waiter(immediate) }
        return false
    }

    /// Ends the stored wait for `interest` with "cancelled": only the wait with `id`, or whichever wait when `id`
    /// is nil (a scope's handler, see ``withCancellationHandler(for:_:)``).
    private func cancelWaiter(_ interest: Interest, id: UInt64?, tasksOnly: Bool = false) {
        let waiter = self.waiters.withLock { waiters -> Waiter? in
            guard let waiter = waiters[interest], id == nil || waiter.id == id else { return nil }
            if tasksOnly, case .action = waiter.resume { return nil }
            waiters[interest] = nil
            _ = self.readiness.bitwiseAnd(~interest.waitingBit, ordering: .relaxed)
            return waiter
        }
        waiter?(.cancelled)
    }

    /// Runs `body` with one cancellation handler for every `interest` wait inside it, instead of one per wait.
    ///
    /// A cancellation of the calling task then ends the `interest` wait in progress (and every later one) with
    /// `CancellationError`, exactly as a wait's own handler would; what changes is the cost: a wait in the scope
    /// is a plain continuation. For a connection's read (or write) loop, which waits once per burst of traffic.
    ///
    /// Inside `body`, every `interest` wait on this registration must be the calling task's own (one reader and
    /// one writer per socket already): the handler ends whichever `interest` wait is stored. Scopes for the same
    /// `interest` do not nest.
    ///
    /// ## Errors
    /// What `body` throws.
    nonisolated(nonsending) public func withCancellationHandler<Result, Failure: Error>(
        for interest: Interest,
        _ body: () async throws(Failure) -> Result
    ) async throws(Failure) -> Result {
        let before = self.covered.bitwiseOr(interest.coveredBit, ordering: .relaxed).oldValue
        precondition(before & interest.coveredBit == 0, "nested cancellation scopes for \(interest) on one socket")
        defer { _ = self.covered.bitwiseAnd(~interest.coveredBit, ordering: .relaxed) }
        let result: Swift.Result<Result, Failure> = await withTaskCancellationHandler {
            do throws(Failure) {
                return .success(try await body())
            } catch {
                return .failure(error)
            }
        } onCancel: {
            self.cancelWaiter(interest, id: nil)
        }
        return try result.get()
    }
}
