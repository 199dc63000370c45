import Synchronization
import Testing

/// Helpers shared by the Watch and Oneshot tests. Namespaced so they cannot collide with other suites' helpers.
enum WatchOneshotTestSupport {
    /// SplitMix64: a tiny deterministic PRNG, so that a stress test's choices repeat for a given seed.
    struct SplitMix64: RandomNumberGenerator {
        private var state: UInt64
        init(seed: UInt64) { self.state = seed }
        mutating func next() -> UInt64 {
            self.state &+= 0x9E37_79B9_7F4A_7C15
            var z = self.state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Yields until `condition` holds, at most 100,000 times; records an issue and returns false if it never
    /// does. Used to know that another task has suspended, without sleeping.
    @discardableResult
    static func waitUntil(
        _ what: String,
        sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: () -> Bool
    ) async -> Bool {
        for _ in 0..<100_000 {
            if condition() { return true }
            await Task.yield()
        }
        Issue.record("gave up waiting until \(what)", sourceLocation: sourceLocation)
        return false
    }

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
        await Self.waitUntil("\(count) tasks park") { parked.table.withLock { $0.count } == count }
        let continuations = parked.table.withLock { table in (0..<count).compactMap { table[$0] } }
        return (continuations, tasks)
    }

    /// Where ``parkTasks(_:of:)`` collects continuations, by task index.
    final class Parking<Outcome: Sendable>: Sendable {
        let table = Mutex<[Int: UnsafeContinuation<Outcome, Never>]>([:])
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
