@testable import SluiceChannels

/// Helpers shared by the broadcast tests, namespaced so that they cannot clash with other channels' test helpers.
enum BroadcastTestSupport {
    /// A reference-type payload, to check identity (stored once, shared) and release (weak references).
    final class Payload: Sendable {
        let number: Int
        init(_ number: Int) { self.number = number }
    }

    /// A lock in a class, so that tasks can share it (a `Mutex` itself is noncopyable and cannot be captured). It
    /// uses the channel's ThreadSanitizer-visible mutex, so that the stress tests run clean under `--sanitize=thread`.
    final class Locked<Value: ~Copyable>: Sendable {
        let mutex: SluiceChannels.Locked<Value>

        init(_ value: consuming sending Value) { self.mutex = SluiceChannels.Locked(value) }

        func withLock<Result: ~Copyable, E: Error>(
            _ body: (inout sending Value) throws(E) -> sending Result
        ) throws(E) -> sending Result {
            try self.mutex.withLock(body)
        }
    }
}
