import Testing

@testable import SluiceChannels

/// Seeded runs that hammer the boundary between the lock-free lane and the lock: small capacities (1–8), so that
/// senders keep finding the ring full and fall to the slow path, waiting receivers keep being woken by fast-path
/// writers, and taken slots are collected both by the consumer and by senders under the lock. Two threads, so
/// fast path and lock really race; random cancellations on both sides, random permits, and a close at a random
/// point in half of the runs. Checked against the sequential model of ``MPSCStressRun``: each producer's successful
/// sends arrive exactly once, in its order; nothing arrives that was not sent; never more than `capacity`
/// buffered; the end is seen.
@Suite("MPSC fast lane stress", .timeLimit(.minutes(2)))
struct MPSCFastLaneStressTests {
    @Test(
        "senders racing the lock-free lane against waiters, cancellations and close lose and duplicate nothing",
        arguments: Array(1...8)
    )
    func boundary(capacity: Int) async {
        var coverage = MPSCStressCoverage()
        for seed in [41, 42, 43, 44, 45, 46, 47, 48] as [UInt64] {
            var rng = SplitMix64Generator(seed: seed &* 31 &+ UInt64(capacity))
            let run = MPSCStressRun(
                seed: seed &* 100 &+ UInt64(capacity),
                capacity: capacity,
                threads: 2,
                permits: rng.chance(50),
                closeAt: rng.chance(50) ? 40 + rng.below(300) : nil,
                producers: 3 + rng.below(4)
            )
            coverage += await run.run()
        }
        coverage.expectExercised(sendsWait: true)
    }

    @Test(
        "with a ring smaller than the channel, values spill beyond it and still arrive once each, in order",
        arguments: [(3, 1), (5, 2), (8, 3), (nil, 1), (nil, 2)] as [(Int?, Int)]
    )
    func spill(capacity: Int?, ringLimit: Int) async {
        var coverage = MPSCStressCoverage()
        for seed in [51, 52, 53, 54, 55, 56] as [UInt64] {
            var rng = SplitMix64Generator(seed: seed &+ UInt64(ringLimit))
            let run = MPSCStressRun(
                seed: seed &* 10 &+ UInt64(ringLimit),
                capacity: capacity,
                threads: 2,
                permits: rng.chance(50),
                closeAt: rng.chance(50) ? 40 + rng.below(300) : nil,
                ringLimit: ringLimit,
                producers: 3 + rng.below(4)
            )
            coverage += await run.run()
        }
        coverage.expectExercised(sendsWait: false)
    }
}
