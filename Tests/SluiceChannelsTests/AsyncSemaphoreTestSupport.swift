import Synchronization
import Testing

@testable import SluiceChannels

/// Helpers shared by the AsyncSemaphore suites. Namespaced so they cannot collide with other suites' helpers in
/// the same test target.
enum AsyncSemaphoreTestSupport {
    /// Polls `condition`, yielding between tries, until it holds; records an issue and returns false after
    /// 100_000 yields. This is how a test learns that a task is suspended, without sleeping.
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

    /// Like ``waitUntil(_:sourceLocation:_:)``, but when the condition never holds it also unblocks every task
    /// queued on `semaphore` (it closes it and adds a million units, so that even a broken close or a broken
    /// cancellation lets them go). A broken semaphore then fails the test instead of hanging the run.
    @discardableResult
    static func waitUntil(
        _ what: String,
        orUnblock semaphore: AsyncSemaphore,
        sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: () -> Bool
    ) async -> Bool {
        let held = await waitUntil(what, sourceLocation: sourceLocation, condition)
        if !held {
            semaphore.close()
            semaphore.release(1_000_000)
        }
        return held
    }

    /// Waits until `semaphore` has exactly `count` tasks queued.
    @discardableResult
    static func waitForWaiters(
        _ semaphore: AsyncSemaphore,
        _ count: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async -> Bool {
        await waitUntil("\(count) waiters are queued", sourceLocation: sourceLocation) {
            semaphore.waiterCount == count
        }
    }

    /// Records events from many tasks, in the order they happened.
    final class Recorder: Sendable {
        private let events = Mutex<[String]>([])

        func record(_ event: String) { self.events.withLock { $0.append(event) } }
        var all: [String] { self.events.withLock { $0 } }
        var count: Int { self.events.withLock { $0.count } }
    }

    /// SplitMix64: a tiny deterministic PRNG, so that a failing seed replays the same plan.
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
}
