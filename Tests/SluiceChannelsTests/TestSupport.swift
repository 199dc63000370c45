import Testing

/// Helpers the Broadcast, Watch, Oneshot and AsyncSemaphore tests share: a seeded PRNG and a bounded wait. Each
/// channel's own helpers stay in its `…TestSupport.swift`; the MPSC suites use their own harness
/// (`MPSCTestSupport.swift`, with `SplitMix64Generator`). Namespaced so that nothing here clashes with them.
enum TestSupport {
    /// SplitMix64: a tiny deterministic PRNG, so that every randomized test replays the same plan from its seed.
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

    /// Yields until `condition` holds, at most 100,000 times; records an issue and returns false if it never does.
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
