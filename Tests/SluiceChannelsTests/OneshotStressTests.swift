import Synchronization
import Testing

@testable import SluiceChannels

/// Seeded randomized runs of many oneshot channels at once. Each pair gets a random plan for both sides (send or
/// drop; await, await-then-cancel, close, poll or drop), run by concurrent tasks with random pauses, so every
/// order of the events happens somewhere. The checks are a sequential model of one channel: each value is
/// received or handed back, never both and never neither, and every value is destroyed exactly once.
@Suite("Oneshot stress")
struct OneshotStressTests {
    typealias Support = WatchOneshotTestSupport

    /// A value with an identity and a live-instance count, so that the test sees copies of the same value and
    /// sees when the last copy is destroyed.
    final class Token: Sendable {
        let id: Int
        let census: Census
        init(_ id: Int, census: Census) {
            self.id = id
            self.census = census
            census.live.add(1, ordering: .relaxed)
        }
        deinit { self.census.live.subtract(1, ordering: .relaxed) }
    }

    /// Live tokens of one run (runs with different seeds go in parallel, so each counts its own).
    final class Census: Sendable {
        let live = Atomic<Int>(0)
    }

    enum SenderPlan {
        case send
        case drop
    }

    enum ReceiverPlan {
        /// `value()` until it ends.
        case await
        /// `value()` in a task the test cancels after a random pause.
        case awaitCancelled
        /// `close()`, then `tryValue()`.
        case close
        /// `tryValue()` with pauses until it stops being empty.
        case poll
        /// The receiver's last reference goes away.
        case drop
    }

    /// How the send went.
    enum SendResult: Equatable {
        case delivered
        case handedBack(id: Int)
        case dropped
    }

    /// What the receiver's own action observed.
    enum Observed: Equatable {
        case value(id: Int)
        case senderDropped
        case cancelled
        case nothing
    }

    /// The one place that holds a receiver, so that a task can drop it at a chosen moment.
    final class ReceiverSlot: Sendable {
        private let slot: Locked<Oneshot<Token>.Receiver?>
        init(_ receiver: Oneshot<Token>.Receiver) { self.slot = Locked(receiver) }
        var receiver: Oneshot<Token>.Receiver? { self.slot.withLock { $0 } }
        func drop() { _ = self.slot.withLock { $0.take() } }
    }

    static let pairs = 1_000

    @Test(
        "every value is received exactly once or handed back, under random orders of send, drop, cancel, close",
        arguments: [UInt64(7), 11, 0x5EED]
    )
    func randomPairs(seed: UInt64) async {
        var random = TestSupport.SplitMix64(seed: seed)
        let census = Census()

        var sendTasks: [Task<SendResult, Never>] = []
        var receiveTasks: [Task<Observed, Never>] = []
        var slots: [ReceiverSlot] = []
        var receiverPlans: [ReceiverPlan] = []
        var cancellers: [Task<Void, Never>] = []

        // Given many channels, each with random plans for both sides, all running at once
        for index in 0..<Self.pairs {
            let (holder, receiver) = OneshotTests.split(Oneshot<Token>.channel())
            let slot = ReceiverSlot(receiver)
            let senderPlan: SenderPlan = Int.random(in: 0..<4, using: &random) == 0 ? .drop : .send
            let receiverPlan = [ReceiverPlan.await, .awaitCancelled, .close, .poll, .drop].randomElement(
                using: &random
            )!
            // A sender facing a cancelled wait is slower, so that the cancellation often lands while it waits.
            let senderPause = Int.random(in: 0...(receiverPlan == .awaitCancelled ? 16 : 4), using: &random)
            let receiverPause = Int.random(in: 0...4, using: &random)
            let watchesClosed = Bool.random(using: &random)

            sendTasks.append(
                Task {
                    guard let sender = holder.take() else { return .dropped }
                    await Support.yield(times: senderPause)
                    // A sender whose receiver will certainly close may first wait for that.
                    if watchesClosed && (receiverPlan == .close || receiverPlan == .drop) {
                        do { try await sender.closed() } catch { Issue.record("closed() failed: \(error)") }
                        #expect(sender.isClosed == true)
                    }
                    switch senderPlan {
                    case .drop:
                        return .dropped  // `sender` goes out of scope unsent
                    case .send:
                        do throws(SendError<Token>) {
                            try sender.send(Token(index, census: census))
                            return .delivered
                        } catch {
                            return .handedBack(id: error.value.id)
                        }
                    }
                }
            )
            let receiveTask = Task { () -> Observed in
                await Support.yield(times: receiverPause)
                return await Self.act(receiverPlan, on: slot)
            }
            receiveTasks.append(receiveTask)
            if receiverPlan == .awaitCancelled {
                // Cancelled at a random moment: before the wait starts, while it waits, or after it ended.
                let pause = Int.random(in: 0...12, using: &random)
                cancellers.append(
                    Task {
                        await Support.yield(times: pause)
                        receiveTask.cancel()
                    }
                )
            }
            slots.append(slot)
            receiverPlans.append(receiverPlan)
        }
        // When everything has run its course
        for task in cancellers { await task.value }
        var sent: [SendResult] = []
        var observed: [Observed] = []
        for task in sendTasks { sent.append(await task.value) }
        for task in receiveTasks { observed.append(await task.value) }

        // Then each pair agrees with the model
        var delivered = 0
        var handedBack = 0
        for index in 0..<Self.pairs {
            let plan = receiverPlans[index]
            // What a receiver still there sees now that both sides are done: never "empty".
            var settled: Observed = .nothing
            if let receiver = slots[index].receiver {
                do {
                    settled = .value(id: try receiver.tryValue().id)
                } catch {
                    #expect(error == .senderDropped, "pair \(index): both sides are done, yet \(error)")
                    settled = .senderDropped
                }
            }
            switch sent[index] {
            case .delivered:
                delivered += 1
                #expect(plan != .drop || settled == .nothing)
                if plan != .drop { #expect(settled == .value(id: index), "pair \(index): delivered but \(settled)") }
            case .handedBack(let id):
                handedBack += 1
                #expect(id == index, "the value handed back is the one sent")
                #expect(plan == .close || plan == .drop, "pair \(index): handed back, yet the receiver stayed open")
                if plan == .close { #expect(settled == .senderDropped) }
            case .dropped:
                if plan != .drop { #expect(settled == .senderDropped, "pair \(index): sender dropped but \(settled)") }
            }
            // The receiver's own observation agrees with the settled state (cancelled waits saw nothing).
            switch (plan, observed[index]) {
            case (.await, let seen), (.poll, let seen):
                #expect(seen == settled, "pair \(index): \(plan) saw \(seen), settled \(settled)")
            case (.awaitCancelled, let seen):
                #expect(seen == .cancelled || seen == settled, "pair \(index): saw \(seen), settled \(settled)")
            case (.close, let seen):
                #expect(seen == settled, "pair \(index): close saw \(seen), settled \(settled)")
            case (.drop, let seen):
                #expect(seen == .nothing)
            }
        }
        #expect(delivered + handedBack == sent.filter { $0 != .dropped }.count)
        // And the run covered the interesting cases (a plan that never got there would prove nothing)
        #expect(delivered > 0)
        #expect(handedBack > 0)
        #expect(observed.count(where: { $0 == .cancelled }) > 0)
        #expect(observed.count(where: { $0 == .senderDropped }) > 0)

        // And once the receivers go, every value has been destroyed exactly once: nothing leaks
        for slot in slots { slot.drop() }
        observed.removeAll()
        #expect(census.live.load(ordering: .relaxed) == 0)
    }

    /// Performs a receiver plan and reports what it saw.
    static func act(_ plan: ReceiverPlan, on slot: ReceiverSlot) async -> Observed {
        switch plan {
        case .drop:
            slot.drop()
            return .nothing
        case .close:
            guard let receiver = slot.receiver else { return .nothing }
            receiver.close()
            do {
                return .value(id: try receiver.tryValue().id)
            } catch {
                // After close() nothing more can arrive, so the answer is settled already.
                #expect(error == .senderDropped)
                return .senderDropped
            }
        case .poll:
            guard let receiver = slot.receiver else { return .nothing }
            while true {
                do {
                    return .value(id: try receiver.tryValue().id)
                } catch .empty {
                    await Task.yield()
                } catch {
                    return .senderDropped
                }
            }
        case .await, .awaitCancelled:
            guard let receiver = slot.receiver else { return .nothing }
            do {
                return .value(id: try await receiver.value().id)
            } catch Oneshot<Token>.RecvError.senderDropped {
                return .senderDropped
            } catch {
                return .cancelled
            }
        }
    }
}
