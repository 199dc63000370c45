import Synchronization
import Testing

@testable import SluiceChannels

/// Seeded randomized runs with many tasks, standing in for a model checker. The plan of every run (counts, hold
/// times, endings, which tasks get cancelled, when) comes from the seed; the interleaving comes from the scheduler.
/// Invariants checked: units in use never exceed the total; every acquire either got its units, was cancelled, or
/// (only when the semaphore was closed) failed with ClosedError; at the end every unit is back and nobody waits.
@Suite("AsyncSemaphore stress")
struct AsyncSemaphoreStressTests {
    typealias Support = AsyncSemaphoreTestSupport

    static let seeds: [UInt64] = [1, 7, 42, 1234, 0xDEAD_BEEF, 0x5EED_0001]

    /// How a task gives its units back.
    enum Ending: CaseIterable {
        case release
        case drop
        case forgetAndReleaseByHand
    }

    /// One task's part of the plan.
    struct Plan {
        let count: Int
        let holdYields: Int
        let ending: Ending
        /// The spawn index after which the test cancels this task, if it does.
        let cancelAfterSpawn: Int?
    }

    enum Outcome: Equatable {
        case acquired
        case cancelled
        case closed
        case unexpected
    }

    /// Units held right now by tasks of the run, updated just after acquiring and just before giving back.
    final class Gauge: Sendable {
        let inUse = Atomic<Int>(0)
        let peak = Atomic<Int>(0)
        /// Tasks of the run that have ended, so the test can tell a hang from slow progress.
        let finished = Atomic<Int>(0)

        func enter(_ count: Int, total: Int) {
            let now = self.inUse.add(count, ordering: .sequentiallyConsistent).newValue
            if now > total { Issue.record("\(now) units in use, more than the \(total) the semaphore holds") }
            var peak = self.peak.load(ordering: .relaxed)
            while now > peak {
                let (exchanged, original) = self.peak.compareExchange(
                    expected: peak,
                    desired: now,
                    ordering: .relaxed
                )
                if exchanged { break }
                peak = original
            }
        }

        func leave(_ count: Int) {
            self.inUse.subtract(count, ordering: .sequentiallyConsistent)
        }
    }

    private static func makePlans(count: Int, total: Int, using random: inout TestSupport.SplitMix64) -> [Plan] {
        (0..<count).map { index in
            Plan(
                count: Int.random(in: 1...total, using: &random),
                holdYields: Int.random(in: 0...4, using: &random),
                ending: Ending.allCases.randomElement(using: &random)!,
                cancelAfterSpawn: Int.random(in: 0..<5, using: &random) == 0
                    ? index + Int.random(in: 0...6, using: &random) : nil
            )
        }
    }

    /// Acquires per `plan`, holds, gives the units back the planned way; reports how the acquire ended.
    private static func run(_ plan: Plan, on semaphore: AsyncSemaphore, total: Int, gauge: Gauge) async -> Outcome {
        let permit: AsyncSemaphore.Permit
        do {
            permit = try await semaphore.acquire(plan.count)
        } catch is CancellationError {
            return .cancelled
        } catch is ClosedError {
            return .closed
        } catch {
            Issue.record("acquire threw \(error)")
            return .unexpected
        }
        #expect(permit.count == plan.count)
        gauge.enter(plan.count, total: total)
        for _ in 0..<plan.holdYields { await Task.yield() }
        gauge.leave(plan.count)  // before the units go back, or the next holder could be counted first
        switch plan.ending {
        case .release:
            permit.release()
        case .drop:
            _ = consume permit
        case .forgetAndReleaseByHand:
            permit.forget()
            semaphore.release(plan.count)
        }
        return .acquired
    }

    /// Spawns one task per plan, cancelling as planned and closing after spawn `closeAfterSpawn` if given; returns
    /// each task's outcome, whether the test cancelled it, and whether it was spawned after the close.
    private static func runAll(
        _ plans: [Plan],
        on semaphore: AsyncSemaphore,
        total: Int,
        gauge: Gauge,
        closeAfterSpawn: Int?,
        using random: inout TestSupport.SplitMix64
    ) async -> [(outcome: Outcome, cancelled: Bool, spawnedAfterClose: Bool)] {
        var tasks: [Task<Outcome, Never>] = []
        var cancelled = Array(repeating: false, count: plans.count)
        var spawnedAfterClose = Array(repeating: false, count: plans.count)
        for (index, plan) in plans.enumerated() {
            spawnedAfterClose[index] = semaphore.isClosed
            tasks.append(
                Task {
                    defer { gauge.finished.add(1, ordering: .sequentiallyConsistent) }
                    return await run(plan, on: semaphore, total: total, gauge: gauge)
                }
            )
            for (victim, victimPlan) in plans.enumerated() where victimPlan.cancelAfterSpawn == index {
                if victim <= index {
                    tasks[victim].cancel()
                    cancelled[victim] = true
                }
            }
            if index == closeAfterSpawn { semaphore.close() }
            if Bool.random(using: &random) { await Task.yield() }
        }
        for (victim, plan) in plans.enumerated() where plan.cancelAfterSpawn != nil && !cancelled[victim] {
            tasks[victim].cancel()
            cancelled[victim] = true
        }
        await Support.waitUntil("all \(plans.count) tasks ended", orUnblock: semaphore) {
            gauge.finished.load(ordering: .sequentiallyConsistent) == plans.count
        }
        var results: [(outcome: Outcome, cancelled: Bool, spawnedAfterClose: Bool)] = []
        for (index, task) in tasks.enumerated() {
            results.append((await task.value, cancelled[index], spawnedAfterClose[index]))
        }
        return results
    }

    @Test(
        "random acquires, holds, releases, drops and cancellations never exceed the total and return every unit",
        arguments: seeds
    )
    func randomTasks(seed: UInt64) async {
        // Given a semaphore of a random size and 300 planned tasks, about one in five to be cancelled
        var random = TestSupport.SplitMix64(seed: seed)
        let total = Int.random(in: 1...8, using: &random)
        let semaphore = AsyncSemaphore(permits: total)
        let gauge = Gauge()
        let plans = Self.makePlans(count: 300, total: total, using: &random)
        // When they all run
        let results = await Self.runAll(
            plans,
            on: semaphore,
            total: total,
            gauge: gauge,
            closeAfterSpawn: nil,
            using: &random
        )
        // Then every task that was not cancelled got its units, and cancelled ones either got them or nothing
        for (index, result) in results.enumerated() {
            if result.cancelled {
                #expect(result.outcome == .acquired || result.outcome == .cancelled, "task \(index), seed \(seed)")
            } else {
                #expect(result.outcome == .acquired, "task \(index), seed \(seed)")
            }
        }
        // And every unit is back, nobody waits, and the run really contended
        #expect(semaphore.availablePermits == total)
        #expect(semaphore.waiterCount == 0)
        #expect(gauge.inUse.load(ordering: .sequentiallyConsistent) == 0)
        #expect(gauge.peak.load(ordering: .relaxed) >= 1)
        #expect(results.contains { $0.outcome == .acquired })
    }

    @Test(
        "closing in the middle of a random run fails only waiting and later acquires, and every held unit comes back",
        arguments: seeds
    )
    func randomTasksWithClose(seed: UInt64) async {
        // Given the same kind of run, closed after a random spawn
        var random = TestSupport.SplitMix64(seed: seed)
        let total = Int.random(in: 1...8, using: &random)
        let semaphore = AsyncSemaphore(permits: total)
        let gauge = Gauge()
        let plans = Self.makePlans(count: 300, total: total, using: &random)
        let closeAfterSpawn = Int.random(in: 50..<250, using: &random)
        // When they all run
        let results = await Self.runAll(
            plans,
            on: semaphore,
            total: total,
            gauge: gauge,
            closeAfterSpawn: closeAfterSpawn,
            using: &random
        )
        // Then each acquire got its units, was cancelled (only if the test cancelled it), or saw the close;
        // tasks spawned after the close all saw it
        for (index, result) in results.enumerated() {
            #expect(result.outcome != .unexpected, "task \(index), seed \(seed)")
            if !result.cancelled { #expect(result.outcome != .cancelled, "task \(index), seed \(seed)") }
            if result.spawnedAfterClose { #expect(result.outcome == .closed, "task \(index), seed \(seed)") }
        }
        // And every unit held at the close came back
        #expect(semaphore.isClosed)
        #expect(semaphore.availablePermits == total)
        #expect(semaphore.waiterCount == 0)
        #expect(gauge.inUse.load(ordering: .sequentiallyConsistent) == 0)
        #expect(results.contains { $0.outcome == .closed })
    }
}
