import Synchronization
import Testing

@testable import SluiceChannels

/// Helpers shared by the AsyncSemaphore suites. Namespaced so they cannot collide with other suites' helpers in
/// the same test target.
enum AsyncSemaphoreTestSupport {
    /// Like `TestSupport.waitUntil(_:sourceLocation:_:)`, but when the condition never holds it also unblocks every
    /// task queued on `semaphore` (it closes it and adds a million units, so that even a broken close or a broken
    /// cancellation lets them go). A broken semaphore then fails the test instead of hanging the run.
    @discardableResult
    static func waitUntil(
        _ what: String,
        orUnblock semaphore: AsyncSemaphore,
        sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: () -> Bool
    ) async -> Bool {
        let held = await TestSupport.waitUntil(what, sourceLocation: sourceLocation, condition)
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
        await TestSupport.waitUntil("\(count) waiters are queued", sourceLocation: sourceLocation) {
            semaphore.waiterCount == count
        }
    }

    /// Records events from many tasks, in the order they happened.
    final class Recorder: Sendable {
        private let events = Locked<[String]>([])

        func record(_ event: String) { self.events.withLock { $0.append(event) } }
        var all: [String] { self.events.withLock { $0 } }
        var count: Int { self.events.withLock { $0.count } }
    }
}
