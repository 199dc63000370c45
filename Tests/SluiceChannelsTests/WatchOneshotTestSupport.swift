import SluiceChannels
import Synchronization
import Testing

/// Helpers shared by the Watch and Oneshot tests. Namespaced so they cannot collide with other suites' helpers.
enum WatchOneshotTestSupport {
    /// Starts `count` tasks that each suspend on an `UnsafeContinuation`, and returns those continuations once
    /// every task has parked, with the tasks (each ends with what its continuation is resumed with). This lets a
    /// state-machine test hold several waiters at once and still drive the machine from one place.
    static func parkTasks<Outcome: Sendable>(
        _ count: Int,
        of _: Outcome.Type = Outcome.self
    ) async -> (continuations: [UnsafeContinuation<Outcome, Never>], tasks: [Task<Outcome, Never>]) {
        let parked = Parking<Outcome>()
        let tasks = (0..<count).map { index in
            Task { await withUnsafeContinuation { continuation in parked.table.withLock { $0[index] = continuation } } }
        }
        await TestSupport.waitUntil("\(count) tasks park") { parked.table.withLock { $0.count } == count }
        let continuations = parked.table.withLock { table in (0..<count).compactMap { table[$0] } }
        return (continuations, tasks)
    }

    /// Where ``parkTasks(_:of:)`` collects continuations, by task index.
    final class Parking<Outcome: Sendable>: Sendable {
        let table = Locked<[Int: UnsafeContinuation<Outcome, Never>]>([:])
    }

    /// Yields `count` times: a "slow" task in the stress tests.
    static func yield(times count: Int) async {
        for _ in 0..<count { await Task.yield() }
    }

    /// Drops the reference held in `reference` now: the object's `deinit` runs here if it was the last one.
    static func drop<Object: AnyObject>(_ reference: inout Object?) {
        reference = nil
    }

    /// Cancels the current task, so that the next wait finds it already cancelled (cancel before suspend).
    static func cancelCurrentTask() {
        withUnsafeCurrentTask { $0?.cancel() }
    }
}
