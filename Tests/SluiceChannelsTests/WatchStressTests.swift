import Testing

@testable import SluiceChannels

/// Seeded randomized runs of the watch channel: several tasks share the sender by reference and bump a counter,
/// receivers of random speeds watch it, some stop early or are cancelled. The counter makes the checks simple:
/// values only grow, every increment must survive (`sendModify` is atomic), and the last value is known.
@Suite("Watch stress")
struct WatchStressTests {
    typealias Support = WatchOneshotTestSupport

    /// What one receiver task does.
    enum Fate {
        /// Reads until the channel closes.
        case full
        /// Stops (and drops its receiver) after this many values.
        case stopAfter(Int)
        /// Reads until the test cancels its task.
        case cancelled
    }

    /// How one receiver reads.
    enum Style {
        /// `for await` over the receiver.
        case iterate
        /// `changed()` then `borrowAndUpdate()`, starting with the current value.
        case changedLoop
    }

    struct ReceiverPlan {
        let fate: Fate
        let style: Style
        /// Yields between two reads: 0 is fast, larger is slower.
        let slowness: Int
        /// Created with `subscribe()` (true) or as a clone of the first receiver (false).
        let subscribed: Bool
    }

    /// What a receiver task saw, and how it ended.
    struct Report {
        let fate: Fate
        let values: [Int]
        let endedByCancellation: Bool
    }

    static let senders = 3
    static let incrementsPerSender = 2_000

    @Test(
        "every receiver sees a non-decreasing sequence and the full ones end on the final value",
        arguments: [
            UInt64(1), 2, 3, 0xDEAD_BEEF,
        ]
    )
    func counterWatchedByRandomReceivers(seed: UInt64) async {
        var random = TestSupport.SplitMix64(seed: seed)
        let finalValue = Self.senders * Self.incrementsPerSender

        // Given a channel, its sender shared by reference with every sender task
        var sender: Watch<Int>.Sender? = nil
        var first: Watch<Int>.Receiver? = nil
        (sender, first) = Watch<Int>.channel(0)
        guard let shared = sender, let original = first else { return }
        let storage = shared.storage

        // And receivers with random plans
        let plans = (0..<12).map { _ in
            let roll = Int.random(in: 0..<10, using: &random)
            let fate: Fate =
                roll < 5 ? .full : roll < 8 ? .stopAfter(Int.random(in: 1...20, using: &random)) : .cancelled
            return ReceiverPlan(
                fate: fate,
                style: Bool.random(using: &random) ? .iterate : .changedLoop,
                slowness: Int.random(in: 0...6, using: &random),
                subscribed: Bool.random(using: &random)
            )
        }
        var receivers = plans.map { plan in plan.subscribed ? shared.subscribe() : original.clone() }
        Support.drop(&first)
        _ = consume original
        let receiverTasks = zip(plans, receivers).map { plan, receiver in
            Task { await Self.watch(receiver, plan: plan) }
        }
        receivers.removeAll()

        // When the sender tasks bump the counter with random pauses
        let pauses = (0..<Self.senders).map { _ in
            (0..<Self.incrementsPerSender).map { _ in Int.random(in: 0...2, using: &random) }
        }
        let senderTasks = pauses.map { pauses in
            Task { [shared] in
                for pause in pauses {
                    await Support.yield(times: pause)
                    shared.sendModify { $0 += 1 }
                }
            }
        }
        // And a receiver joins late
        await Support.yield(times: Int.random(in: 0...200, using: &random))
        let lateTask = Task { [late = shared.subscribe()] in
            await Self.watch(late, plan: ReceiverPlan(fate: .full, style: .changedLoop, slowness: 1, subscribed: true))
        }
        // And the cancelled receivers are cancelled at random points
        for (plan, task) in zip(plans, receiverTasks) {
            guard case .cancelled = plan.fate else { continue }
            await Support.yield(times: Int.random(in: 0...100, using: &random))
            task.cancel()
        }
        for task in senderTasks { await task.value }
        #expect(shared.borrow() == finalValue)  // no increment lost
        // And the last sender reference goes away (each task released its capture when it ended)
        Support.drop(&sender)
        _ = consume shared

        // Then
        var reports: [Report] = []
        for task in receiverTasks { reports.append(await task.value) }
        reports.append(await lateTask.value)
        for report in reports {
            #expect(report.values == report.values.sorted(), "values must never go back: \(report.values)")
            #expect(report.values.allSatisfy { (0...finalValue).contains($0) })
            switch report.fate {
            case .full:
                #expect(report.values.last == finalValue, "a full receiver ends on the last value")
                #expect(!report.endedByCancellation)
            case .stopAfter(let count):
                #expect(report.values.count <= count)
            case .cancelled:
                if !report.endedByCancellation { #expect(report.values.last == finalValue) }
            }
        }
        // And every receiver has unregistered
        #expect(storage.receiverCount == 0)
        #expect(storage.changeWaiterCount == 0)
    }

    /// Runs one receiver according to its plan and reports what it saw.
    static func watch(_ receiver: Watch<Int>.Receiver, plan: ReceiverPlan) async -> Report {
        var values: [Int] = []
        var limit = Int.max
        if case .stopAfter(let count) = plan.fate { limit = count }
        switch plan.style {
        case .iterate:
            for await value in receiver {
                values.append(value)
                if values.count >= limit { break }
                await Support.yield(times: plan.slowness)
            }
            return Report(fate: plan.fate, values: values, endedByCancellation: Task.isCancelled)
        case .changedLoop:
            values.append(receiver.borrowAndUpdate())
            while values.count < limit {
                await Support.yield(times: plan.slowness)
                do {
                    try await receiver.changed()
                } catch is CancellationError {
                    return Report(fate: plan.fate, values: values, endedByCancellation: true)
                } catch {
                    #expect(error as? Watch<Int>.RecvError == .closed)
                    break
                }
                values.append(receiver.borrowAndUpdate())
            }
            return Report(fate: plan.fate, values: values, endedByCancellation: false)
        }
    }
}
