import Testing

@testable import SluiceChannels

/// ``AsyncSemaphore`` through its public API, one test per documented behaviour. Tasks are known to be waiting by
/// polling `waiterCount`, never by sleeping.
@Suite("AsyncSemaphore")
struct AsyncSemaphoreTests {
    typealias Support = AsyncSemaphoreTestSupport

    /// Starts a task that acquires `count` units, records `name` once it has them, and forgets the permit, so the
    /// units stay out until the test releases them by hand.
    private func acquirer(
        _ semaphore: AsyncSemaphore,
        _ count: Int,
        _ name: String,
        _ recorder: Support.Recorder
    ) -> Task<Void, any Error> {
        Task {
            let permit = try await semaphore.acquire(count)
            recorder.record(name)
            permit.forget()
        }
    }

    @Test("acquire with enough free units returns at once with a permit holding them")
    func fastPath() async throws {
        // Given three free units
        let semaphore = AsyncSemaphore(permits: 3)
        // When two are acquired
        let permit = try await semaphore.acquire(2)
        // Then the permit holds two, one is left, and nobody waited
        #expect(permit.count == 2)
        #expect(semaphore.availablePermits == 1)
        #expect(semaphore.waiterCount == 0)
        permit.release()
        #expect(semaphore.availablePermits == 3)
    }

    @Test("waiters are admitted in the order they started waiting")
    func fifoOrder() async throws {
        // Given no free units and five tasks queued one after the other
        let semaphore = AsyncSemaphore(permits: 0)
        let recorder = Support.Recorder()
        let names = ["a", "b", "c", "d", "e"]
        var tasks: [Task<Void, any Error>] = []
        for (index, name) in names.enumerated() {
            tasks.append(acquirer(semaphore, 1, name, recorder))
            await Support.waitForWaiters(semaphore, index + 1)
        }
        // When units come back one at a time
        for index in names.indices {
            semaphore.release(1)
            await Support.waitUntil("\(index + 1) tasks acquired", orUnblock: semaphore) { recorder.count == index + 1 }
        }
        // Then the tasks got them in arrival order
        #expect(recorder.all == names)
        for task in tasks { try await task.value }
        #expect(semaphore.availablePermits == 0)
    }

    @Test("release wakes waiters in FIFO order as far as the units allow")
    func releaseWakesAsFarAsUnitsAllow() async throws {
        // Given waiters for 1, 2 and 2 units
        let semaphore = AsyncSemaphore(permits: 0)
        let recorder = Support.Recorder()
        let tasks = [
            acquirer(semaphore, 1, "one", recorder),
            acquirer(semaphore, 2, "two", recorder),
        ]
        await Support.waitForWaiters(semaphore, 2)
        let last = acquirer(semaphore, 2, "last", recorder)
        await Support.waitForWaiters(semaphore, 3)
        // When four units are added at once
        semaphore.release(4)
        // Then the first two are admitted, and the third waits for a second unit
        await Support.waitUntil("two tasks acquired", orUnblock: semaphore) { recorder.count == 2 }
        for task in tasks { try await task.value }
        #expect(Set(recorder.all) == ["one", "two"])
        #expect(semaphore.waiterCount == 1)
        #expect(semaphore.availablePermits == 1)
        semaphore.release(1)
        await Support.waitUntil("the last task acquired", orUnblock: semaphore) { recorder.count == 3 }
        try await last.value
        #expect(recorder.all.last == "last")
        #expect(semaphore.availablePermits == 0)
    }

    @Test("a large request at the head is not starved by a stream of small ones")
    func largeRequestNotStarved() async throws {
        // Given all three units held, a task waiting for all three, and five small requests queued behind it
        let semaphore = AsyncSemaphore(permits: 3)
        let recorder = Support.Recorder()
        var held = try await semaphore.acquire(3)
        let big = acquirer(semaphore, 3, "big", recorder)
        await Support.waitForWaiters(semaphore, 1)
        var small: [Task<Void, any Error>] = []
        for index in 0..<5 {
            small.append(acquirer(semaphore, 1, "small \(index)", recorder))
            await Support.waitForWaiters(semaphore, 2 + index)
        }
        // When units come back one by one, each enough for a small request
        for freed in 1...2 {
            held.split(1)!.release()
            // Then they accumulate for the head; no small request overtakes it, not even a tryAcquire
            #expect(semaphore.availablePermits == freed)
            #expect(semaphore.waiterCount == 6)
            #expect(throws: AsyncSemaphore.TryAcquireError.noPermits) { _ = try semaphore.tryAcquire(1) }
        }
        #expect(recorder.count == 0)
        held.release()
        await Support.waitUntil("the big request acquired", orUnblock: semaphore) { recorder.count == 1 }
        try await big.value
        #expect(recorder.all == ["big"])
        #expect(semaphore.availablePermits == 0)
        // And the small ones follow in their own order once the big one gives its units back
        for index in 0..<5 {
            semaphore.release(1)
            await Support.waitUntil("small \(index) acquired", orUnblock: semaphore) { recorder.count == index + 2 }
        }
        #expect(recorder.all == ["big"] + (0..<5).map { "small \($0)" })
        for task in small { try await task.value }
    }

    @Test("tryAcquire fails with noPermits while waiters are queued, even when its request fits")
    func tryAcquireRespectsWaiters() async throws {
        // Given one free unit and a task waiting for two
        let semaphore = AsyncSemaphore(permits: 1)
        let recorder = Support.Recorder()
        let waiter = acquirer(semaphore, 2, "waiter", recorder)
        await Support.waitForWaiters(semaphore, 1)
        // When a non-waiting request for the one free unit comes
        // Then it fails and takes nothing
        #expect(throws: AsyncSemaphore.TryAcquireError.noPermits) { _ = try semaphore.tryAcquire(1) }
        #expect(semaphore.availablePermits == 1)
        // And once the queue is empty again, the same request succeeds
        semaphore.release(1)
        await Support.waitUntil("the waiter acquired", orUnblock: semaphore) { recorder.count == 1 }
        try await waiter.value
        semaphore.release(2)
        let permit = try semaphore.tryAcquire(1)
        #expect(permit.count == 1)
        #expect(semaphore.availablePermits == 1)
    }

    @Test("tryAcquire fails with noPermits when too few units are free, and with closed after close")
    func tryAcquireErrors() throws {
        // Given two free units
        let semaphore = AsyncSemaphore(permits: 2)
        // Then three cannot be taken, two can, and nothing can after close
        #expect(throws: AsyncSemaphore.TryAcquireError.noPermits) { _ = try semaphore.tryAcquire(3) }
        let permit = try semaphore.tryAcquire(2)
        #expect(semaphore.availablePermits == 0)
        #expect(throws: AsyncSemaphore.TryAcquireError.noPermits) { _ = try semaphore.tryAcquire() }
        permit.release()
        semaphore.close()
        #expect(throws: AsyncSemaphore.TryAcquireError.closed) { _ = try semaphore.tryAcquire() }
        #expect(semaphore.availablePermits == 2)
    }

    @Test("releasing a permit returns its units exactly once and wakes a waiter")
    func permitReleaseReturnsOnce() async throws {
        // Given a permit for two of three units and a task waiting for three
        let semaphore = AsyncSemaphore(permits: 3)
        let recorder = Support.Recorder()
        let permit = try await semaphore.acquire(2)
        let waiter = acquirer(semaphore, 3, "waiter", recorder)
        await Support.waitForWaiters(semaphore, 1)
        // When the permit is released
        permit.release()
        // Then the waiter gets all three; had the units come back twice, one would be left over
        await Support.waitUntil("the waiter acquired", orUnblock: semaphore) { recorder.count == 1 }
        try await waiter.value
        #expect(semaphore.availablePermits == 0)
        semaphore.release(3)
        #expect(semaphore.availablePermits == 3)
    }

    @Test("dropping a permit returns its units exactly once")
    func permitDropReturnsOnce() async throws {
        // Given three free units
        let semaphore = AsyncSemaphore(permits: 3)
        // When a permit for two goes out of scope without being released
        func holdBriefly() async throws {
            let permit = try await semaphore.acquire(2)
            #expect(permit.count == 2)
            #expect(semaphore.availablePermits == 1)
        }
        try await holdBriefly()
        // Then its units are back, once
        #expect(semaphore.availablePermits == 3)
        // And an explicit `consume` drops it the same way
        let permit = try semaphore.tryAcquire(3)
        #expect(semaphore.availablePermits == 0)
        _ = consume permit
        #expect(semaphore.availablePermits == 3)
    }

    @Test("forget keeps the units out until they are released by hand, e.g. from another task")
    func forgetKeepsUnitsOut() async throws {
        // Given three free units
        let semaphore = AsyncSemaphore(permits: 3)
        // When a permit for two is forgotten
        let permit = try await semaphore.acquire(2)
        permit.forget()
        // Then the two stay out of the semaphore
        #expect(semaphore.availablePermits == 1)
        // And the documented hand-off pattern gives them back when the task ends
        let gate = AsyncSemaphore(permits: 0)
        let worker = Task {
            defer { semaphore.release(2) }
            _ = try await gate.acquire()  // the "work": held until the test opens the gate
        }
        await Support.waitForWaiters(gate, 1)
        #expect(semaphore.availablePermits == 1)
        gate.release(1)
        await Support.waitUntil("the worker ended", orUnblock: gate) { semaphore.availablePermits == 3 }
        try await worker.value
        #expect(semaphore.availablePermits == 3)
    }

    @Test("split and merge move units between permits without changing what comes back")
    func splitAndMerge() async throws {
        // Given a permit for all five units
        let semaphore = AsyncSemaphore(permits: 5)
        var permit = try await semaphore.acquire(5)
        // When it is split, a too-large split is refused, and one part is released
        let refused = permit.split(6) == nil
        #expect(refused)
        #expect(permit.count == 5)
        let two = permit.split(2)!
        #expect(permit.count == 3 && two.count == 2)
        two.release()
        #expect(semaphore.availablePermits == 2)
        // And a newly acquired permit is merged back in
        let other = try semaphore.tryAcquire(2)
        permit.merge(other)
        #expect(permit.count == 5)
        #expect(semaphore.availablePermits == 0)
        // Then dropping the merged permit returns all five, once
        _ = consume permit
        #expect(semaphore.availablePermits == 5)
    }

    @Test("close fails every waiter and every later acquire, and held permits can still be released")
    func closeFailsWaiters() async throws {
        // Given one unit held and tasks waiting for one and for three units
        let semaphore = AsyncSemaphore(permits: 1)
        let recorder = Support.Recorder()
        let held = try await semaphore.acquire()
        let waiters = [acquirer(semaphore, 1, "one", recorder), acquirer(semaphore, 3, "three", recorder)]
        await Support.waitForWaiters(semaphore, 2)
        // When the semaphore closes
        semaphore.close()
        // Then both waiters fail with ClosedError, and so does a later acquire
        await Support.waitUntil("the waiters left", orUnblock: semaphore) { semaphore.waiterCount == 0 }
        for waiter in waiters { await #expect(throws: ClosedError.self) { try await waiter.value } }
        await #expect(throws: ClosedError.self) { _ = try await semaphore.acquire() }
        #expect(semaphore.isClosed)
        #expect(semaphore.waiterCount == 0)
        #expect(recorder.count == 0)
        // And the held unit still comes back, even though nobody can take it
        #expect(semaphore.availablePermits == 0)
        held.release()
        #expect(semaphore.availablePermits == 1)
    }

    @Test("availablePermits is exact through acquire, waiting, release, cancellation and close")
    func availablePermitsExact() async throws {
        // Given four units
        let semaphore = AsyncSemaphore(permits: 4)
        let recorder = Support.Recorder()
        #expect(semaphore.availablePermits == 4)
        var permit = try await semaphore.acquire(3)
        #expect(semaphore.availablePermits == 1)
        // When a waiter needs more than is free, free units stay counted while it waits
        let waiter = acquirer(semaphore, 2, "waiter", recorder)
        await Support.waitForWaiters(semaphore, 1)
        #expect(semaphore.availablePermits == 1)
        let canceled = Task { _ = try await semaphore.acquire(1) }
        await Support.waitForWaiters(semaphore, 2)
        canceled.cancel()
        await Support.waitUntil("the cancelled waiter left", orUnblock: semaphore) { semaphore.waiterCount == 1 }
        await #expect(throws: CancellationError.self) { try await canceled.value }
        #expect(semaphore.availablePermits == 1)
        // Then each step moves the count by exactly its units
        permit.split(1)!.release()
        await Support.waitUntil("the waiter acquired", orUnblock: semaphore) { recorder.count == 1 }
        try await waiter.value
        #expect(semaphore.availablePermits == 0)
        permit.release()
        #expect(semaphore.availablePermits == 2)
        semaphore.close()
        #expect(semaphore.availablePermits == 2)
        semaphore.release(2)  // the waiter's forgotten units
        #expect(semaphore.availablePermits == 4)
    }

    @Test("an acquire cancelled before it suspends throws CancellationError and holds nothing")
    func cancelledBeforeSuspending() async throws {
        // Given no free units
        let semaphore = AsyncSemaphore(permits: 0)
        // When a task cancels itself, then acquires
        let recorder = Support.Recorder()
        let task = Task {
            defer { recorder.record("ended") }
            withUnsafeCurrentTask { $0?.cancel() }
            _ = try await semaphore.acquire()
        }
        // Then it fails with CancellationError without ever queueing, and holds nothing
        await Support.waitUntil("the task ended", orUnblock: semaphore) { recorder.count == 1 }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(semaphore.waiterCount == 0)
        semaphore.release(1)
        #expect(semaphore.availablePermits == 1)
    }

    @Test("an already cancelled task still takes units that are free at once")
    func cancelledFastPath() async throws {
        // Given a free unit
        let semaphore = AsyncSemaphore(permits: 1)
        // When a cancelled task acquires it
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            let permit = try await semaphore.acquire()
            return permit.count
        }
        // Then it gets the unit, as documented (the fast path does not check cancellation), and gives it back
        #expect(try await task.value == 1)
        #expect(semaphore.availablePermits == 1)
    }

    @Test("an acquire cancelled while suspended throws CancellationError and holds nothing")
    func cancelledWhileSuspended() async throws {
        // Given one free unit and a task waiting for two
        let semaphore = AsyncSemaphore(permits: 1)
        let task = Task { _ = try await semaphore.acquire(2) }
        await Support.waitForWaiters(semaphore, 1)
        // When it is cancelled
        task.cancel()
        // Then it fails with CancellationError, leaves the queue, and the free unit is untouched
        await Support.waitUntil("the waiter left", orUnblock: semaphore) { semaphore.waiterCount == 0 }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(semaphore.waiterCount == 0)
        #expect(semaphore.availablePermits == 1)
        // And units added later are not given to it
        semaphore.release(1)
        #expect(semaphore.availablePermits == 2)
    }

    @Test("cancelling the head waiter admits the waiters behind it that now fit")
    func cancellingHeadUnblocks() async throws {
        // Given two free units, a head waiting for five, and two tasks behind it waiting for one each
        let semaphore = AsyncSemaphore(permits: 2)
        let recorder = Support.Recorder()
        let head = Task { _ = try await semaphore.acquire(5) }
        await Support.waitForWaiters(semaphore, 1)
        let first = acquirer(semaphore, 1, "first", recorder)
        await Support.waitForWaiters(semaphore, 2)
        let second = acquirer(semaphore, 1, "second", recorder)
        await Support.waitForWaiters(semaphore, 3)
        #expect(recorder.count == 0)
        // When the head is cancelled
        head.cancel()
        // Then it fails, and the two behind it get the free units without any release
        await Support.waitUntil("both small waiters acquired", orUnblock: semaphore) { recorder.count == 2 }
        await #expect(throws: CancellationError.self) { try await head.value }
        try await first.value
        try await second.value
        #expect(Set(recorder.all) == ["first", "second"])
        #expect(semaphore.waiterCount == 0)
        #expect(semaphore.availablePermits == 0)
    }

    @Test("a request larger than the semaphore holds waits until release adds enough units")
    func oversizedRequestWaits() async throws {
        // Given a semaphore of two units and a task asking for five
        let semaphore = AsyncSemaphore(permits: 2)
        let recorder = Support.Recorder()
        let task = acquirer(semaphore, 5, "five", recorder)
        await Support.waitForWaiters(semaphore, 1)
        // When units are added until five are free
        semaphore.release(2)
        #expect(semaphore.waiterCount == 1)
        #expect(semaphore.availablePermits == 4)
        semaphore.release(1)
        // Then it gets them, and the semaphore has grown by three once they come back
        await Support.waitUntil("the large request acquired", orUnblock: semaphore) { recorder.count == 1 }
        try await task.value
        #expect(recorder.all == ["five"])
        #expect(semaphore.availablePermits == 0)
        semaphore.release(5)
        #expect(semaphore.availablePermits == 5)
    }
}
