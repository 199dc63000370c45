/// One suspended task to resume after unlocking, with what it gets.
///
/// A state machine never resumes anyone: an event returns the resumptions it decided on, and the storage calls
/// ``resume()`` once the channel lock is released (see `suspend(register:onCancel:)`). Channels use it with an
/// `UnsafeContinuation<Outcome, Never>`; it is generic over the continuation only so that a state machine can be
/// driven in tests with plain tokens in place of suspended tasks (``AsyncSemaphore``'s is).
@usableFromInline
struct Resumption<Continuation, Outcome> {
    @usableFromInline let continuation: Continuation
    @usableFromInline let outcome: Outcome

    @inlinable
    init(continuation: Continuation, outcome: Outcome) {
        self.continuation = continuation
        self.outcome = outcome
    }
}

extension Resumption: Sendable where Continuation: Sendable, Outcome: Sendable {}

extension Resumption where Continuation == UnsafeContinuation<Outcome, Never>, Outcome: Sendable {
    /// Resumes the task. Call it only after the channel lock is released.
    @inlinable
    func resume() { self.continuation.resume(returning: self.outcome) }
}

extension Sequence {
    /// Resumes every task, in order. Call it only after the channel lock is released.
    @inlinable
    func resumeAll<Outcome: Sendable>() where Element == Resumption<UnsafeContinuation<Outcome, Never>, Outcome> {
        for resumption in self { resumption.resume() }
    }
}

/// Every waiter one event wakes, all with the same outcome: the value of a send, or the end of a wait.
///
/// The outcome is held once, not once per waiter: when it carries a value (a broadcast send wakes one waiter per
/// receiver), each resumed task retains that one value, so a payload is shared by reference count, never copied
/// per waiter.
@usableFromInline
struct Wakeup<Outcome: Sendable>: Sendable {
    @usableFromInline let waiters: WaiterList<Waiter<Outcome>>
    @usableFromInline let outcome: Outcome

    @inlinable
    init(waiters: WaiterList<Waiter<Outcome>>, outcome: Outcome) {
        self.waiters = waiters
        self.outcome = outcome
    }

    /// Resumes every waiter, oldest first. Call it only after the channel lock is released.
    @inlinable
    func resumeAll() {
        for waiter in self.waiters { waiter.continuation.resume(returning: self.outcome) }
    }

    /// The continuations this wake-up resumes, oldest first. Builds an array: for tests, never on a channel path.
    @inlinable
    var continuations: [UnsafeContinuation<Outcome, Never>] { self.waiters.map(\.continuation) }
}
