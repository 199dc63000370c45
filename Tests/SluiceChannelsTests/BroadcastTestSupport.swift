import Testing

@testable import SluiceChannels

/// Helpers shared by the broadcast tests, namespaced so that they cannot clash with other channels' test helpers.
enum BroadcastTestSupport {
    /// SplitMix64: a tiny deterministic PRNG, so every randomized test replays the same plan from its seed.
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

        /// True with probability `1 / n`.
        mutating func oneIn(_ n: Int) -> Bool { Int.random(in: 0..<n, using: &self) == 0 }
    }

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

    /// Yields until `condition` holds; records an issue and returns false if it never does.
    ///
    /// This is how a test knows that another task is suspended (poll an introspection count) without sleeping.
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
}
