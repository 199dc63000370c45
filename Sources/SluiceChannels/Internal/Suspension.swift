/// Suspends the current task on an `UnsafeContinuation` that a channel stores as a waiter, with cancellation.
///
/// Every channel waits the same way, and this is the one place that spells it out:
///
/// 1. The caller first tried the fast path under the channel lock; the state machine answered "suspend" and
///    handed out a waiter id in the same critical section.
/// 2. `register` runs synchronously with the continuation. It takes the channel lock and, **reading
///    `Task.isCancelled` inside that lock**, either stores the continuation under the id, or decides the outcome
///    at once (a value arrived meanwhile, or the task is already cancelled) and resumes after unlocking.
///    Reading the flag under the lock closes the "cancelled before it suspended" race: the flag is set before
///    `onCancel` runs, so a cancellation that wins the lock first is seen by `register`, and one that comes
///    later finds the stored waiter.
/// 3. `onCancel` runs on the cancelling thread. It removes the waiter by id under the lock and resumes it with
///    the channel's "cancelled" outcome if it was still stored; if it was already resumed, it does nothing.
///
/// The continuation is non-throwing: outcomes are channel-specific enums that the public method maps to errors,
/// so nothing is boxed inside the channel, and `UnsafeContinuation` allocates nothing per wait.
@inlinable
func suspend<Outcome>(
    register: (UnsafeContinuation<Outcome, Never>) -> Void,
    onCancel: @Sendable () -> Void
) async -> Outcome {
    await withTaskCancellationHandler {
        await withUnsafeContinuation { continuation in
            register(continuation)
        }
    } onCancel: {
        onCancel()
    }
}
