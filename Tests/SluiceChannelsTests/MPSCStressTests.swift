import Testing

@testable import SluiceChannels

/// Seeded randomized runs of the MPSC channel: many producers, one consumer, random cancellations on both sides,
/// random permits, checked against the sequential model of a channel: the consumer sees an interleaving of each
/// producer's *successful* sends, each value exactly once, in that producer's order, and never more than
/// `capacity` values are buffered.
///
/// Every task runs in a ``ParkingHarness``. With one thread the schedule is a function of the seed, so a failure
/// replays; with two, real races (cancel against register, receive against send) get exercised. Because the
/// harness knows when every task is parked, a deadlock is detected and reported (then unwound by cancelling
/// everything) instead of hanging the run.
@Suite("MPSC stress", .timeLimit(.minutes(2)))
struct MPSCStressTests {
    static let capacities: [Int?] = [1, 2, 7, 64, nil]

    @Test(
        "producers with random cancellations deliver exactly the values whose send returned, in per-sender order",
        arguments: capacities
    )
    func sendsWithCancellations(capacity: Int?) async {
        var coverage = MPSCStressCoverage()
        for seed in [11, 12, 13, 14] as [UInt64] {
            for threads in [1, 2] {
                let run = MPSCStressRun(seed: seed, capacity: capacity, threads: threads, permits: false, closeAt: nil)
                coverage += await run.run()
            }
        }
        coverage.expectExercised(sendsWait: (capacity ?? .max) <= 7)
    }

    @Test(
        "random reserve and permit use, including dropped permits, keeps the same guarantees and never deadlocks",
        arguments: capacities
    )
    func permitsWithCancellations(capacity: Int?) async {
        var coverage = MPSCStressCoverage()
        for seed in [21, 22, 23, 24] as [UInt64] {
            for threads in [1, 2] {
                let run = MPSCStressRun(seed: seed, capacity: capacity, threads: threads, permits: true, closeAt: nil)
                coverage += await run.run()
            }
        }
        coverage.expectExercised(sendsWait: (capacity ?? .max) <= 7)
    }

    @Test(
        "closing the receiver midway fails later sends with their value and loses or duplicates nothing",
        arguments: capacities
    )
    func closeMidway(capacity: Int?) async {
        var coverage = MPSCStressCoverage()
        for seed in [31, 32, 33, 34] as [UInt64] {
            for threads in [1, 2] {
                let closeAt = Int(seed % 7) * 60 + 40
                let run = MPSCStressRun(
                    seed: seed,
                    capacity: capacity,
                    threads: threads,
                    permits: false,
                    closeAt: closeAt
                )
                coverage += await run.run()
            }
        }
        coverage.expectExercised(sendsWait: false)
    }
}
