import Glibc
import SluiceChannels
import Synchronization

/// One socket's readiness as seen by its event loop, and the tasks waiting for it.
///
/// Epoll is edge-triggered: the loop hears "readable" once when data arrives, not again until more arrives. So
/// readiness is remembered here until an I/O call proves it stale (returns `EAGAIN`), and the proof must be about
/// *this* readiness: a task snapshots the readiness tick, tries the syscall, and on `EAGAIN` clears readiness only
/// if the tick is unchanged. If an event came in between the failed syscall and the clear, the tick moved on and
/// the clear is skipped; clearing it anyway would lose the edge and the task would sleep forever (Tokio's
/// `ScheduledIo::clear_readiness` keeps the same rule). `RegistrationTests` drives exactly that race.
///
/// State lives behind one lock because readiness is set on the loop thread while waits may come from any task.
public final class Registration: Sendable {
    /// Which readiness a wait is for.
    public enum Interest: Sendable {
        case read
        case write
    }

    struct Waiter {
        let id: UInt64
        let continuation: UnsafeContinuation<WaitOutcome, Never>
    }

    enum WaitOutcome: Sendable {
        case ready
        case closed
        case cancelled
    }

    struct Direction {
        /// Set by an event, cleared only by ``clearReadiness(_:ifTick:)`` with a matching tick.
        var ready = false
        /// The loop tick of the event that last set `ready`; compared by `clearReadiness`.
        var tick: UInt64 = 0
        /// The task waiting for this direction, if any (one reader and one writer at a time per socket).
        var waiter: Waiter? = nil
    }

    struct State {
        var read = Direction()
        var write = Direction()
        /// The socket was closed (or deregistered): every wait ends with `.closed`.
        var closed = false
        var nextWaiterID: UInt64 = 0

        subscript(interest: Interest) -> Direction {
            get { interest == .read ? self.read : self.write }
            set {
                if interest == .read { self.read = newValue } else { self.write = newValue }
            }
        }
    }

    private let state = Locked(State())

    init() {}

    /// The current readiness tick for `interest`: snapshot it *before* the syscall whose `EAGAIN` will clear it.
    public func tick(_ interest: Interest) -> UInt64 {
        self.state.withLock { $0[interest].tick }
    }

    /// The syscall after `tick` said "would block": forget the readiness, unless an event refreshed it since.
    public func clearReadiness(_ interest: Interest, ifTick tick: UInt64) {
        self.state.withLock { state in
            if state[interest].tick == tick { state[interest].ready = false }
        }
    }

    /// The loop saw events for this socket in loop tick `tick`. Called on the loop thread.
    func eventsArrived(readable: Bool, writable: Bool, tick: UInt64) {
        let (reader, writer) = self.state.withLock { state -> (Waiter?, Waiter?) in
            var reader: Waiter? = nil
            var writer: Waiter? = nil
            if readable {
                state.read.ready = true
                state.read.tick = tick
                reader = state.read.waiter
                state.read.waiter = nil
            }
            if writable {
                state.write.ready = true
                state.write.tick = tick
                writer = state.write.waiter
                state.write.waiter = nil
            }
            return (reader, writer)
        }
        reader?.continuation.resume(returning: .ready)
        writer?.continuation.resume(returning: .ready)
    }

    /// The socket is gone: end every wait, now and later, with a "closed" error.
    func close() {
        let waiters = self.state.withLock { state -> [Waiter] in
            state.closed = true
            let waiters = [state.read.waiter, state.write.waiter].compactMap { $0 }
            state.read.waiter = nil
            state.write.waiter = nil
            return waiters
        }
        for waiter in waiters { waiter.continuation.resume(returning: .closed) }
    }

    /// Runs a non-blocking syscall until it completes: on would-block, forgets the readiness it was tried under
    /// (unless an event refreshed it meanwhile, see the type's discussion) and waits for the next.
    ///
    /// This is the one place SluiceIO turns "would block" into a suspension.
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

    /// Waits until `interest` is ready (returns at once if it already is).
    ///
    /// ## Errors
    /// `IOError(errno: EBADF, operation: "wait")` if the socket is closed before or while waiting;
    /// `CancellationError` if the task is cancelled while waiting. Cancellation leaves the socket usable.
    public func waitUntilReady(_ interest: Interest) async throws {
        enum Decision {
            case ready
            case closed
            case wait(UInt64)
        }
        let decision = self.state.withLock { state -> Decision in
            if state.closed { return .closed }
            if state[interest].ready { return .ready }
            state.nextWaiterID &+= 1
            return .wait(state.nextWaiterID)
        }
        let id: UInt64
        switch decision {
        case .ready: return
        case .closed: throw IOError(errno: EBADF, operation: "wait for \(interest)")
        case .wait(let waiterID): id = waiterID
        }
        let outcome: WaitOutcome = await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                let immediate = self.state.withLock { state -> WaitOutcome? in
                    if Task.isCancelled { return .cancelled }
                    if state.closed { return .closed }
                    if state[interest].ready { return .ready }
                    precondition(state[interest].waiter == nil, "two tasks wait for \(interest) on one socket")
                    state[interest].waiter = Waiter(id: id, continuation: continuation)
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = self.state.withLock { state -> Waiter? in
                guard let waiter = state[interest].waiter, waiter.id == id else { return nil }
                state[interest].waiter = nil
                return waiter
            }
            waiter?.continuation.resume(returning: .cancelled)
        }
        switch outcome {
        case .ready: return
        case .closed: throw IOError(errno: EBADF, operation: "wait for \(interest)")
        case .cancelled: throw CancellationError()
        }
    }
}
