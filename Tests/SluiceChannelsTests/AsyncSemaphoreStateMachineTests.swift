import Testing

@testable import SluiceChannels

/// Drives ``AsyncSemaphore/StateMachine`` directly: no tasks, no locks. Continuations are plain `Int` tokens, so
/// each test can see exactly whom an event resumes, and with what.
@Suite("AsyncSemaphore state machine")
struct AsyncSemaphoreStateMachineTests {
    typealias Machine = AsyncSemaphore.StateMachine<Int>
    typealias Outcome = AsyncSemaphore.AcquireOutcome

    /// The (token, outcome) pairs of a wake-up list, in order.
    private func pairs(_ wakeups: Machine.Wakeups) -> [Pair] {
        var result: [Pair] = []
        wakeups.forEach { result.append(Pair(token: $0.continuation, outcome: $0.outcome)) }
        return result
    }

    private struct Pair: Equatable, CustomStringConvertible {
        let token: Int
        let outcome: Outcome
        var description: String { "\(self.token):\(self.outcome)" }
    }

    /// Suspends `token` for `count` units through the two-step protocol the semaphore uses and expects it queued.
    private func enqueue(
        _ machine: inout Machine,
        token: Int,
        count: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard case .suspend(let id) = machine.acquire(count, mayWait: true) else {
            Issue.record("acquire(\(count)) did not suspend", sourceLocation: sourceLocation)
            return
        }
        guard case .none = machine.acquireSuspended(id: id, count: count, continuation: token, isCancelled: false)
        else {
            Issue.record("waiter \(token) was resumed instead of queued", sourceLocation: sourceLocation)
            return
        }
    }

    @Test("acquire takes free units at once and release returns them")
    func fastPath() {
        // Given three free units
        var machine = Machine(permits: 3)
        // When two are acquired without waiting, then returned
        #expect(machine.acquire(2, mayWait: true) == .acquired)
        #expect(machine.availablePermits == 1)
        let wakeups = machine.release(2)
        // Then nobody is woken and all three are free again
        #expect(wakeups.isEmpty)
        #expect(machine.availablePermits == 3)
    }

    @Test("a request that does not fit suspends, or fails when it may not wait")
    func suspendOrNoPermits() {
        // Given one free unit
        var machine = Machine(permits: 1)
        // Then a request for two suspends with a fresh id, or fails without waiting, and takes nothing
        guard case .suspend(let first) = machine.acquire(2, mayWait: true) else { Issue.record("no suspend"); return }
        guard case .suspend(let second) = machine.acquire(2, mayWait: true) else { Issue.record("no suspend"); return }
        #expect(first != second)
        #expect(machine.acquire(2, mayWait: false) == .noPermits)
        #expect(machine.availablePermits == 1)
    }

    @Test("release admits waiters oldest first while the head fits")
    func fifoAdmission() {
        // Given no free units and waiters for 1, 2 and 2 units
        var machine = Machine(permits: 0)
        enqueue(&machine, token: 1, count: 1)
        enqueue(&machine, token: 2, count: 2)
        enqueue(&machine, token: 3, count: 2)
        // When four units come back
        let wakeups = machine.release(4)
        // Then the first two are admitted, the third (needs 2, 1 left) stays the head
        #expect(pairs(wakeups) == [Pair(token: 1, outcome: .acquired), Pair(token: 2, outcome: .acquired)])
        #expect(machine.availablePermits == 1)
        #expect(machine.waiterCount == 1)
        #expect(machine.headWaiterCount == 2)
    }

    @Test("a small request behind a large head waits even when it would fit")
    func noOvertaking() {
        // Given a head waiting for 3 units and one free unit
        var machine = Machine(permits: 1)
        enqueue(&machine, token: 1, count: 3)
        // When a request for one unit arrives, waiting or not
        // Then it does not take the free unit
        #expect(machine.acquire(1, mayWait: false) == .noPermits)
        enqueue(&machine, token: 2, count: 1)
        #expect(pairs(machine.release(1)).isEmpty)
        #expect(machine.availablePermits == 2)
        // And once the head fits, both are admitted in order
        #expect(pairs(machine.release(1)) == [Pair(token: 1, outcome: .acquired)])
        #expect(pairs(machine.release(1)) == [Pair(token: 2, outcome: .acquired)])
        #expect(machine.availablePermits == 0)
    }

    @Test("units freed between the fast path and the suspension are taken at registration")
    func registrationRechecks() {
        // Given a request that had to suspend
        var machine = Machine(permits: 0)
        guard case .suspend(let id) = machine.acquire(2, mayWait: true) else { Issue.record("no suspend"); return }
        // When units come back before it registers its continuation
        #expect(machine.release(2).isEmpty)
        // Then registration takes them at once instead of queueing
        guard
            case .resume(let resumption) = machine.acquireSuspended(
                id: id,
                count: 2,
                continuation: 7,
                isCancelled: false
            )
        else { Issue.record("not resumed"); return }
        #expect(resumption.continuation == 7 && resumption.outcome == .acquired)
        #expect(machine.availablePermits == 0)
        #expect(machine.waiterCount == 0)
    }

    @Test("a task cancelled before it registers is resumed as cancelled and holds nothing")
    func cancelledBeforeRegistration() {
        // Given free units and a request that suspended before they came back
        var machine = Machine(permits: 0)
        guard case .suspend(let id) = machine.acquire(1, mayWait: true) else { Issue.record("no suspend"); return }
        _ = machine.release(1)
        // When the cancellation handler runs before registration, then registration sees the flag
        #expect(pairs(machine.acquireCancelled(id: id)).isEmpty)
        guard
            case .resume(let resumption) = machine.acquireSuspended(
                id: id,
                count: 1,
                continuation: 1,
                isCancelled: true
            )
        else { Issue.record("not resumed"); return }
        // Then it is cancelled, not queued, and the unit is still free
        #expect(resumption.outcome == .cancelled)
        #expect(machine.waiterCount == 0)
        #expect(machine.availablePermits == 1)
    }

    @Test("cancelling the head waiter admits the waiters behind it that now fit")
    func cancelHead() {
        // Given two free units, a head waiting for 5, then waiters for 1, 1 and 3
        var machine = Machine(permits: 2)
        guard case .suspend(let headID) = machine.acquire(5, mayWait: true) else { Issue.record("no suspend"); return }
        _ = machine.acquireSuspended(id: headID, count: 5, continuation: 1, isCancelled: false)
        enqueue(&machine, token: 2, count: 1)
        enqueue(&machine, token: 3, count: 1)
        enqueue(&machine, token: 4, count: 3)
        // When the head is cancelled
        let wakeups = machine.acquireCancelled(id: headID)
        // Then it is resumed as cancelled, then the two small ones are admitted; the 3 stays at the head
        #expect(
            pairs(wakeups) == [
                Pair(token: 1, outcome: .cancelled), Pair(token: 2, outcome: .acquired),
                Pair(token: 3, outcome: .acquired),
            ]
        )
        #expect(machine.availablePermits == 0)
        #expect(machine.headWaiterCount == 3)
        // And cancelling it again finds nothing
        #expect(machine.acquireCancelled(id: headID).isEmpty)
    }

    @Test("cancelling a waiter in the middle resumes only that waiter")
    func cancelMiddle() {
        // Given waiters 1 (needs 2), 2 (needs 1), 3 (needs 1), no free units
        var machine = Machine(permits: 0)
        enqueue(&machine, token: 1, count: 2)
        guard case .suspend(let middle) = machine.acquire(1, mayWait: true) else { Issue.record("no suspend"); return }
        _ = machine.acquireSuspended(id: middle, count: 1, continuation: 2, isCancelled: false)
        enqueue(&machine, token: 3, count: 1)
        // When the middle one is cancelled
        // Then only it is resumed, and the order of the others is kept
        #expect(pairs(machine.acquireCancelled(id: middle)) == [Pair(token: 2, outcome: .cancelled)])
        #expect(pairs(machine.release(3)) == [Pair(token: 1, outcome: .acquired), Pair(token: 3, outcome: .acquired)])
    }

    @Test("close fails every waiter and every later acquire, and still counts released units")
    func close() {
        // Given a held unit and two waiters
        var machine = Machine(permits: 1)
        #expect(machine.acquire(1, mayWait: true) == .acquired)
        enqueue(&machine, token: 1, count: 1)
        enqueue(&machine, token: 2, count: 4)
        // When the semaphore closes
        let wakeups = machine.close()
        // Then both fail in order, later acquires fail, a late registration fails, and the held unit comes back
        #expect(pairs(wakeups) == [Pair(token: 1, outcome: .closed), Pair(token: 2, outcome: .closed)])
        #expect(machine.isClosed == true)
        #expect(machine.acquire(1, mayWait: true) == .closed)
        #expect(machine.acquire(1, mayWait: false) == .closed)
        guard case .resume(let late) = machine.acquireSuspended(id: 99, count: 1, continuation: 3, isCancelled: false)
        else { Issue.record("late waiter queued on a closed semaphore"); return }
        #expect(late.outcome == .closed)
        #expect(machine.release(1).isEmpty)
        #expect(machine.availablePermits == 1)
        #expect(machine.close().isEmpty)
    }

    @Test("random events match a sequential model of a FIFO semaphore", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func randomAgainstModel(seed: UInt64) {
        var random = TestSupport.SplitMix64(seed: seed)
        let initial = Int.random(in: 0...6, using: &random)
        var machine = Machine(permits: initial)
        // The model: free units, the queue as (id, token, count), and whether it is closed.
        var free = initial
        var queue: [(id: UInt64, token: Int, count: Int)] = []
        var closed = false
        var held: [Int] = []  // counts of units handed out and not yet returned
        var nextToken = 0

        func admitInModel() -> [Pair] {
            var admitted: [Pair] = []
            while let head = queue.first, head.count <= free {
                queue.removeFirst()
                free -= head.count
                held.append(head.count)
                admitted.append(Pair(token: head.token, outcome: .acquired))
            }
            return admitted
        }

        for step in 0..<2_000 {
            let roll = Int.random(in: 0..<100, using: &random)
            if roll < 40 {
                // An acquire, waiting or not, possibly cancelled before it registers.
                let count = Int.random(in: 1...8, using: &random)
                let mayWait = Bool.random(using: &random)
                let action = machine.acquire(count, mayWait: mayWait)
                if closed {
                    #expect(action == .closed, "step \(step)")
                } else if queue.isEmpty && free >= count {
                    #expect(action == .acquired, "step \(step)")
                    free -= count
                    held.append(count)
                } else if !mayWait {
                    #expect(action == .noPermits, "step \(step)")
                } else {
                    guard case .suspend(let id) = action else {
                        Issue.record("step \(step): expected suspend, got \(action)")
                        return
                    }
                    nextToken += 1
                    let cancelled = Int.random(in: 0..<10, using: &random) == 0
                    let result = machine.acquireSuspended(
                        id: id,
                        count: count,
                        continuation: nextToken,
                        isCancelled: cancelled
                    )
                    let expected: Outcome? =
                        cancelled ? .cancelled : closed ? .closed : (queue.isEmpty && free >= count) ? .acquired : nil
                    switch result {
                    case .none:
                        #expect(expected == nil, "step \(step)")
                        queue.append((id, nextToken, count))
                    case .resume(let resumption):
                        #expect(resumption.outcome == expected, "step \(step)")
                        if resumption.outcome == .acquired {
                            free -= count
                            held.append(count)
                        }
                    }
                }
            } else if roll < 70 {
                // A held permit comes back, or units are added when nothing is held.
                let count =
                    held.isEmpty
                    ? Int.random(in: 0...3, using: &random)
                    : held.remove(at: Int.random(in: 0..<held.count, using: &random))
                let wakeups = machine.release(count)
                free += count
                #expect(pairs(wakeups) == admitInModel(), "step \(step)")
            } else if roll < 95 {
                // A cancellation, of a queued waiter or of one already gone.
                guard !queue.isEmpty, Bool.random(using: &random) else {
                    #expect(machine.acquireCancelled(id: UInt64.max).isEmpty, "step \(step)")
                    continue
                }
                let victim = queue.remove(at: Int.random(in: 0..<queue.count, using: &random))
                let wakeups = machine.acquireCancelled(id: victim.id)
                #expect(
                    pairs(wakeups) == [Pair(token: victim.token, outcome: .cancelled)] + admitInModel(),
                    "step \(step)"
                )
            } else if roll < 97 && step >= 1_500 {
                // Closing ends the interesting part, so it happens only late in the run.
                let wakeups = machine.close()
                #expect(pairs(wakeups) == queue.map { Pair(token: $0.token, outcome: .closed) }, "step \(step)")
                queue.removeAll()
                closed = true
            }
            // Invariants after every event.
            #expect(machine.availablePermits == free, "step \(step)")
            #expect(machine.waiterCount == queue.count, "step \(step)")
            if let head = machine.headWaiterCount { #expect(head > machine.availablePermits, "step \(step)") }
            #expect(!machine.isClosed || machine.waiterCount == 0, "step \(step)")
        }
    }
}
