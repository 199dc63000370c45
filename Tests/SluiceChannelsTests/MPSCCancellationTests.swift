import Testing

@testable import SluiceChannels

/// Cancellation of every MPSC wait (`send`, `reserve`, `recv`, `recv(upTo:)`), in both orders: the task is
/// cancelled before it reaches the wait, and while it is parked in it. Each test then checks that no ghost waiter
/// is left behind (the next sender or receiver is not blocked and no value goes to the cancelled task) and that
/// every value is received exactly once.
@Suite("MPSC cancellation", .timeLimit(.minutes(1)))
struct MPSCCancellationTests {
    /// Marks the current task cancelled, so that its next wait sees the flag before it suspends.
    private static func cancelSelf() {
        withUnsafeCurrentTask { $0?.cancel() }
    }

    // MARK: send

    @Test("a send cancelled before it would wait throws CancellationError and leaves no waiter behind")
    func sendCancelledBeforeSuspending() async throws {
        let harness = ParkingHarness()
        var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.channel(capacity: 1)
        try await sender!.send(0)
        let cancelled = harness.spawn { [sender] in
            Self.cancelSelf()
            try await sender!.send(1)
        }
        await harness.quiesce()
        await expectError(cancelled, CancellationError.self)
        // The slot freed by the next receive goes to a new trySend: nobody is queued in front of it
        #expect(try receiver.tryRecv() == 0)
        #expect(describe(sender!.trySend(2)) == "sent")
        sender = nil
        #expect(drainToEnd(receiver) == [2])
    }

    @Test("a send cancelled on a channel with room still sends: a value is never both enqueued and reported failed")
    func sendCancelledWithRoomSends() async throws {
        let harness = ParkingHarness()
        var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.channel(capacity: 1)
        let cancelled = harness.spawn { [sender] in
            Self.cancelSelf()
            try await sender!.send(1)
        }
        await harness.quiesce()
        await expectValue(cancelled)
        sender = nil
        #expect(drainToEnd(receiver) == [1])
    }

    @Test(
        "a send cancelled while waiting throws CancellationError, its value is not enqueued and the next waiter moves up"
    )
    func sendCancelledWhileSuspended() async throws {
        // Given a full channel with two senders waiting
        let harness = ParkingHarness()
        var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.channel(capacity: 1)
        try await sender!.send(0)
        let first = harness.spawn { [sender] in try await sender!.send(1) }
        await harness.quiesce()
        let second = harness.spawn { [sender] in try await sender!.send(2) }
        await harness.quiesce()
        // When the first is cancelled
        first.cancel()
        await harness.quiesce()
        // Then it stops at once, and the freed slot goes to the second
        await expectError(first, CancellationError.self)
        expectSuspended(second)
        #expect(try await receiver.recv() == 0)
        await harness.quiesce()
        await expectValue(second)
        #expect(try await receiver.recv() == 2)
        #expect(describe(sender!.trySend(3)) == "sent")
        sender = nil
        #expect(drainToEnd(receiver) == [3])
    }

    @Test("a send cancelled after its value was admitted returns normally and the value is received once")
    func sendCancelledAfterAdmission() async throws {
        let harness = ParkingHarness()
        var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.channel(capacity: 1)
        try await sender!.send(0)
        let waiting = harness.spawn { [sender] in try await sender!.send(1) }
        await harness.quiesce()
        #expect(try receiver.tryRecv() == 0)  // admits the waiter under the lock
        waiting.cancel()  // too late: the value is already in
        await harness.quiesce()
        await expectValue(waiting)
        sender = nil
        #expect(drainToEnd(receiver) == [1])
    }

    // MARK: reserve

    @Test("a reserve cancelled before it would wait throws CancellationError and holds no slot")
    func reserveCancelledBeforeSuspending() async throws {
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 1)
        try await sender.send(0)
        let cancelled = harness.spawn {
            Self.cancelSelf()
            _ = try await sender.reserve()
        }
        await harness.quiesce()
        await expectError(cancelled, CancellationError.self)
        #expect(try receiver.tryRecv() == 0)
        #expect(describe(sender.trySend(1)) == "sent", "no ghost reservation holds the slot")
    }

    @Test("a reserve cancelled while waiting throws CancellationError, holds no slot and lets the next waiter in")
    func reserveCancelledWhileSuspended() async throws {
        let harness = ParkingHarness()
        var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.channel(capacity: 1)
        try await sender!.send(0)
        let reserver = harness.spawn { [sender] in _ = try await sender!.reserve() }
        await harness.quiesce()
        let next = harness.spawn { [sender] in try await sender!.send(2) }
        await harness.quiesce()
        reserver.cancel()
        await harness.quiesce()
        await expectError(reserver, CancellationError.self)
        #expect(try await receiver.recv() == 0)
        await harness.quiesce()
        await expectValue(next)
        #expect(try await receiver.recv() == 2)
        #expect(describe(sender!.trySend(3)) == "sent")
        sender = nil
        #expect(drainToEnd(receiver) == [3])
    }

    @Test("a reserve cancelled after it was granted the slot returns a permit that still sends")
    func reserveCancelledAfterGrant() async throws {
        let harness = ParkingHarness()
        let gate = HarnessGate()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 1)
        try await sender.send(0)
        let reserver = harness.spawn {
            let permit = try await sender.reserve()
            await gate.wait()
            try permit.send(1)
        }
        await harness.quiesce()
        #expect(try receiver.tryRecv() == 0)  // grants the slot under the lock
        reserver.cancel()
        gate.open()
        await harness.quiesce()
        await expectValue(reserver)
        #expect(try receiver.tryRecv() == 1)
    }

    // MARK: recv and recv(upTo:)

    @Test("a recv cancelled before it would wait throws CancellationError and the next value stays for others")
    func recvCancelledBeforeSuspending() async throws {
        for batch in [false, true] {
            let harness = ParkingHarness()
            let (sender, receiver) = MPSC<Int>.channel(capacity: 2)
            let cancelled = harness.spawn { () -> [Int] in
                Self.cancelSelf()
                return batch ? try await receiver.recv(upTo: 4) : [try await receiver.recv()].compactMap { $0 }
            }
            await harness.quiesce()
            await expectError(cancelled, CancellationError.self)
            try await sender.send(1)
            #expect(receiver.count == 1, "the value is buffered, not handed to a ghost receiver")
            #expect(try await receiver.recv() == 1)
        }
    }

    @Test("a recv with a value ready returns it even when the task is already cancelled")
    func recvCancelledWithValueReady() async throws {
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 2)
        try await sender.send(1)
        try await sender.send(2)
        let single = harness.spawn { () -> Int? in
            Self.cancelSelf()
            return try await receiver.recv()
        }
        await harness.quiesce()
        #expect(await expectValue(single) == 1)
        let batch = harness.spawn { () -> [Int] in
            Self.cancelSelf()
            return try await receiver.recv(upTo: 5)
        }
        await harness.quiesce()
        #expect(await expectValue(batch) == [2])
    }

    @Test("a recv cancelled while waiting throws CancellationError and a later receiver gets the next value")
    func recvCancelledWhileSuspended() async throws {
        for batch in [false, true] {
            let harness = ParkingHarness()
            var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.channel(capacity: 2)
            let waiting = harness.spawn { [receiver] () -> [Int] in
                var values = [-1]
                if batch {
                    _ = try await receiver.recv(upTo: 4, into: &values)
                } else if let value = try await receiver.recv() {
                    values.append(value)
                }
                return values
            }
            await harness.quiesce()
            expectSuspended(waiting)
            waiting.cancel()
            await harness.quiesce()
            await expectError(waiting, CancellationError.self)
            // A later receiver is not blocked by a ghost, and the value is not swallowed by the cancelled one
            let next = harness.spawn { [receiver] in try await receiver.recv() }
            await harness.quiesce()
            try await sender!.send(1)
            await harness.quiesce()
            #expect(await expectValue(next) == 1)
            try await sender!.send(2)
            #expect(receiver.count == 1)
            sender = nil
            #expect(drainToEnd(receiver) == [2])
        }
    }

    @Test("a recv cancelled after a value was handed to it returns that value")
    func recvCancelledAfterHandOff() async throws {
        let harness = ParkingHarness()
        var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.channel(capacity: 2)
        let waiting = harness.spawn { [receiver] in try await receiver.recv() }
        await harness.quiesce()
        #expect(describe(sender!.trySend(1)) == "sent")  // handed straight to the waiter under the lock
        waiting.cancel()
        await harness.quiesce()
        #expect(await expectValue(waiting) == 1)
        sender = nil
        #expect(drainToEnd(receiver) == [])
    }

    @Test("iterating the receiver in a cancelled task ends the loop without taking a value")
    func iterationEndsOnCancel() async throws {
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 2)
        let loop = harness.spawn { () -> [Int] in
            var values: [Int] = []
            for await value in receiver { values.append(value) }
            return values
        }
        try await sender.send(1)
        await harness.quiesce()
        expectSuspended(loop)
        loop.cancel()
        await harness.quiesce()
        #expect(await expectValue(loop) == [1])
        try await sender.send(2)
        #expect(try receiver.tryRecv() == 2)
    }

    @Test("an iterator that ended because its task was cancelled stays ended, as AsyncIteratorProtocol requires")
    func iteratorStaysEndedAfterCancel() async throws {
        // Given a cancelled task whose iterator returned nil on an empty channel
        let harness = ParkingHarness()
        let gate = HarnessGate()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 2)
        let iterating = harness.spawn { () -> [Int?] in
            Self.cancelSelf()
            var iterator = receiver.makeAsyncIterator()
            let first = await iterator.next()
            await gate.wait()
            let second = await iterator.next()
            return [first, second]
        }
        await harness.quiesce()
        // When a value arrives afterwards and the same iterator is asked again
        try await sender.send(1)
        gate.open()
        await harness.quiesce()
        // Then it still answers nil ("after returning nil, all future calls to next() must return nil"), and the
        // value is left for the next consumer
        #expect(await expectValue(iterating) == [nil, nil])
        #expect(receiver.count == 1)
    }
}
