// A sender's wait until the receiving side is gone: the one implementation of `Watch.Sender.closed()` and
// `Oneshot.Sender.closed()`.
//
// Both channels let the sender wait for its receivers to go, so that a producer can stop working for a consumer
// that left. The state machines differ only in when the receiving side is gone (no receiver left; the receiver
// closed or went away). `ClosedWaitEvents` holds the wait's state-machine events and `Locked.waitUntilClosed()`
// drives them through the cancellation contract of `suspend(register:onCancel:)`.

/// How a sender's `closed()` wait ends.
@usableFromInline
enum ClosedOutcome: Sendable {
    /// The receiving side is gone: every receiver was dropped, or the receiver closed.
    case closed
    /// The waiting task was cancelled; the sender is unaffected.
    case cancelled
}

/// What a state machine answers a sender that asks to wait until the receiving side is gone.
@usableFromInline
enum ClosedAction: Sendable {
    /// The receiving side is already gone.
    case closed
    /// It is not: suspend as waiter `id` through `closedSuspended(id:continuation:isCancelled:)`.
    case suspend(id: UInt64)
}

@usableFromInline
typealias ClosedContinuation = UnsafeContinuation<ClosedOutcome, Never>
/// A task suspended in a sender's `closed()`.
@usableFromInline
typealias ClosedWaiter = Waiter<ClosedOutcome>
/// A `closed()` waiter to resume after unlocking, with what it gets.
@usableFromInline
typealias ClosedResumption = Resumption<ClosedContinuation, ClosedOutcome>

/// A state machine whose sender can wait until the receiving side is gone: it says when that is, and stores the
/// waiters; the three events of the wait (ask, register, cancel) are implemented here, once for both channels.
///
/// The machine resumes its stored waiters with `.closed` itself, in the event that makes the receiving side go
/// (a receiver dropped, the receiver closed): that event is its own, so it is not part of this protocol.
///
/// `SendableMetatype`: the cancellation handler of ``Locked/waitUntilClosed()`` runs on the cancelling thread and
/// calls `closedCancelled(id:)` through the machine's type.
@usableFromInline
protocol ClosedWaitEvents: ~Copyable, SendableMetatype {
    /// True once the receiving side is gone, for good: from then on no `closed()` waiter is stored.
    var isReceivingSideGone: Bool { get }
    /// Tasks waiting in the sender's `closed()`, in arrival order; empty once the receiving side is gone.
    var closedWaiters: WaiterList<ClosedWaiter> { get set }
    /// A fresh id for a suspension, unique within the machine, so that cancellation finds its own waiter.
    mutating func makeWaiterID() -> UInt64
}

extension ClosedWaitEvents where Self: ~Copyable {
    /// The sender asks to wait: `.closed` if the receiving side is already gone, else a fresh waiter id.
    @inlinable
    mutating func closed() -> ClosedAction {
        self.isReceivingSideGone ? .closed : .suspend(id: self.makeWaiterID())
    }

    /// A `closed()` that got `.suspend(id)` now holds a continuation. Re-checks, because the lock was released in
    /// between: returns the waiter to resume at once (cancelled, or the receiving side went meanwhile), or `nil`
    /// when it is stored.
    @inlinable
    mutating func closedSuspended(
        id: UInt64,
        continuation: ClosedContinuation,
        isCancelled: Bool
    ) -> ClosedResumption? {
        if isCancelled { return ClosedResumption(continuation: continuation, outcome: .cancelled) }
        if self.isReceivingSideGone { return ClosedResumption(continuation: continuation, outcome: .closed) }
        self.closedWaiters.append(ClosedWaiter(id: id, continuation: continuation))
        return nil
    }

    /// The task waiting as `id` was cancelled: returns it to resume with `.cancelled` if it was still stored; `nil`
    /// if it was already resumed (that outcome stands).
    @inlinable
    mutating func closedCancelled(id: UInt64) -> ClosedResumption? {
        guard let waiter = self.closedWaiters.removeFirst(where: { $0.id == id }) else { return nil }
        return ClosedResumption(continuation: waiter.continuation, outcome: .cancelled)
    }

    /// The receiving side went: takes every stored `closed()` waiter, to resume with `.closed` after unlocking.
    @inlinable
    mutating func takeClosedWaiters() -> Wakeup<ClosedOutcome>? {
        guard !self.closedWaiters.isEmpty else { return nil }
        let waiters = self.closedWaiters
        self.closedWaiters = WaiterList()
        return Wakeup(waiters: waiters, outcome: .closed)
    }
}

extension Locked where State: ClosedWaitEvents & ~Copyable {
    /// Waits until the receiving side is gone. Returns at once, without suspending, if it already is.
    ///
    /// ## Errors
    /// `CancellationError` if the task is cancelled first; the channel is unaffected.
    @inlinable
    func waitUntilClosed() async throws(CancellationError) {
        let id: UInt64
        switch self.withLock({ $0.closed() }) {
        case .closed: return
        case .suspend(let waiterID): id = waiterID
        }
        let outcome: ClosedOutcome = await suspend { continuation in
            self.withLock {
                $0.closedSuspended(id: id, continuation: continuation, isCancelled: Task.isCancelled)
            }?.resume()
        } onCancel: {
            self.withLock { $0.closedCancelled(id: id) }?.resume()
        }
        switch outcome {
        case .closed: return
        case .cancelled: throw CancellationError()
        }
    }
}
