import Testing

@testable import SluiceChannels

/// The bounded MPSC channel through its public API: backpressure, `trySend`, permits and receiving. Tasks that
/// must wait run in a ``ParkingHarness``; `quiesce()` returns once every one of them is parked, so "it is waiting"
/// is an observation, not a guess.
@Suite("MPSC bounded channel", .timeLimit(.minutes(1)))
struct MPSCTests {
    @Test("send suspends while the channel is full and returns once a receive frees a slot")
    func sendWaitsWhileFull() async throws {
        // Given a full channel of capacity 2
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 2)
        #expect(sender.capacity == 2)
        try await sender.send(1)
        try await sender.send(2)
        // When a third send is made
        let third = harness.spawn { try await sender.send(3) }
        await harness.quiesce()
        // Then it waits and nothing more is buffered
        expectSuspended(third)
        #expect(receiver.count == 2)
        // When the receiver takes one value, the waiting value takes the slot
        #expect(try await receiver.recv() == 1)
        await harness.quiesce()
        await expectValue(third)
        #expect(receiver.count == 2)
        #expect(try await receiver.recv() == 2)
        #expect(try await receiver.recv() == 3)
    }

    @Test("waiting senders resume in the order they started waiting, one per freed slot")
    func waitingSendersFIFO() async throws {
        // Given a full channel of capacity 1 and five senders that started waiting one after the other
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 1)
        try await sender.send(0)
        var waiting: [HarnessTask<Void>] = []
        for value in 1...5 {
            waiting.append(harness.spawn { try await sender.send(value) })
            await harness.quiesce()  // parked before the next one starts
        }
        // When the receiver takes the values one by one
        for expected in 0...5 {
            #expect(try await receiver.recv() == expected)
            await harness.quiesce()
            // Then exactly the oldest waiting sender has been let in each time
            #expect(waiting.map(\.isFinished) == (1...5).map { $0 <= expected + 1 }, "after receiving \(expected)")
        }
        #expect(receiver.count == 0)
    }

    @Test("trySend answers full with the value handed back while no slot is free")
    func trySendFull() throws {
        let (sender, receiver) = MPSC<String>.channel(capacity: 1)
        #expect(describe(sender.trySend("a")) == "sent")
        #expect(describe(sender.trySend("b")) == "full(b)")
        #expect(try receiver.tryRecv() == "a")
        #expect(describe(sender.trySend("c")) == "sent")
    }

    @Test("trySend answers closed with the value handed back once the receiver closed or went away")
    func trySendClosed() {
        let (sender, receiver) = MPSC<String>.channel(capacity: 4)
        receiver.close()
        #expect(describe(sender.trySend("a")) == "closed(a)")
        let sender2: MPSC<String>.Sender
        var receiver2: MPSC<String>.Receiver?
        (sender2, receiver2) = MPSC<String>.channel(capacity: 4)
        #expect(receiver2 != nil)
        receiver2 = nil
        #expect(describe(sender2.trySend("b")) == "closed(b)")
        #expect(sender2.isClosed)
    }

    @Test("trySend does not overtake a waiting sender: the freed slot goes to the waiter")
    func trySendDoesNotOvertake() async throws {
        // Given a full channel and one sender waiting
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 1)
        try await sender.send(0)
        let waiter = harness.spawn { try await sender.send(1) }
        await harness.quiesce()
        #expect(describe(sender.trySend(2)) == "full(2)")
        // When a slot frees
        #expect(try receiver.tryRecv() == 0)
        // Then it is the waiter's, not a later trySend's
        #expect(describe(sender.trySend(3)) == "full(3)")
        await harness.quiesce()
        await expectValue(waiter)
        #expect(try receiver.tryRecv() == 1)
        #expect(describe(sender.trySend(4)) == "sent")
    }

    @Test("reserve waits for room and returns a permit that holds one slot until it sends")
    func reserveHoldsSlot() async throws {
        // Given a full channel of capacity 1 and a task waiting in reserve()
        let harness = ParkingHarness()
        let gate = HarnessGate()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 1)
        try await sender.send(0)
        let reserved = HarnessFlag()
        let reserver = harness.spawn {
            let permit = try await sender.reserve()
            reserved.set()
            await gate.wait()
            try permit.send(5)
        }
        await harness.quiesce()
        #expect(!reserved.isSet, "no slot is free yet")
        // When a slot frees, the reserver gets it
        #expect(try await receiver.recv() == 0)
        await harness.quiesce()
        #expect(reserved.isSet)
        // Then the permit holds the slot: nothing is buffered, yet the channel is full
        #expect(receiver.count == 0)
        #expect(describe(sender.trySend(1)) == "full(1)")
        // When the permit sends, its value is what the receiver gets
        gate.open()
        await harness.quiesce()
        await expectValue(reserver)
        #expect(try await receiver.recv() == 5)
        #expect(describe(sender.trySend(6)) == "sent")
    }

    @Test("sending through a permit never waits, even when every other slot is taken")
    func permitSendNeverWaits() async throws {
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 2)
        let first = try await sender.reserve()
        let second = try sender.tryReserve()
        #expect(describe(sender.trySend(9)) == "full(9)")
        // A waiting receiver gets a permit's value directly
        let waitingReceiver = harness.spawn { try await receiver.recv() }
        await harness.quiesce()
        try first.send(1)  // synchronous: it cannot wait
        await harness.quiesce()
        #expect(await expectValue(waitingReceiver) == 1)
        try second.send(2)
        #expect(try receiver.tryRecv() == 2)
    }

    @Test("a permit dropped unused gives its slot back and admits a waiting sender")
    func droppedPermitAdmitsWaiter() async throws {
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 1)
        let permit = try await sender.reserve()
        let waiter = harness.spawn { try await sender.send(1) }
        await harness.quiesce()
        expectSuspended(waiter)
        _ = consume permit
        await harness.quiesce()
        await expectValue(waiter)
        #expect(try receiver.tryRecv() == 1)
    }

    @Test("tryReserve takes a free slot now, or throws full or closed")
    func tryReserve() throws {
        let (sender, receiver) = MPSC<Int>.channel(capacity: 1)
        let permit = try sender.tryReserve()
        #expect {
            _ = try sender.tryReserve()
        } throws: { error in
            guard case .full = error as? TrySendError<Void> else { return false }
            return true
        }
        _ = consume permit
        let again = try sender.tryReserve()
        try again.send(3)
        #expect(try receiver.tryRecv() == 3)
        receiver.close()
        #expect {
            _ = try sender.tryReserve()
        } throws: { error in
            guard case .closed = error as? TrySendError<Void> else { return false }
            return true
        }
    }

    @Test("recv returns the values of each sender in the order that sender sent them")
    func perSenderOrder() async throws {
        // Given five producers sending 200 values each through a channel of capacity 3
        let harness = ParkingHarness(threads: 2)
        var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.channel(capacity: 3)
        for producer in 0..<5 {
            let producerSender = sender!
            harness.spawn {
                for sequence in 0..<200 { try await producerSender.send(producer * 1000 + sequence) }
            }
        }
        sender = nil
        #expect(sender == nil)
        // When the consumer receives everything
        var received: [Int] = []
        while let value = try await receiver.recv() { received.append(value) }
        // Then each producer's values arrived once each, in its own order
        #expect(received.count == 1000)
        for producer in 0..<5 {
            #expect(received.filter { $0 / 1000 == producer } == (0..<200).map { producer * 1000 + $0 })
        }
    }

    @Test("recv(upTo:) returns every ready value up to the limit and admits waiting senders for the freed slots")
    func batchReceive() async throws {
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 3)
        for value in 1...3 { try await sender.send(value) }
        let waiters = (4...5).map { value in harness.spawn { try await sender.send(value) } }
        await harness.quiesce()
        #expect(try await receiver.recv(upTo: 2) == [1, 2])
        await harness.quiesce()
        #expect(waiters.allSatisfy { $0.isFinished })
        var values = [0]
        #expect(try await receiver.recv(upTo: 10, into: &values) == 3)
        #expect(values == [0, 3, 4, 5])
    }

    @Test("recv(upTo:) on an empty channel waits for the first value and returns it with whatever came with it")
    func batchReceiveWaits() async throws {
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 8)
        let batch = harness.spawn { try await receiver.recv(upTo: 3) }
        await harness.quiesce()
        expectSuspended(batch)
        for value in 1...5 { try await sender.send(value) }
        await harness.quiesce()
        let got = await expectValue(batch) ?? []
        #expect(!got.isEmpty && got.count <= 3)
        #expect(got == Array(1...got.count))
        #expect(try await receiver.recv(upTo: 10) == Array((got.count + 1)...5))
    }

    @Test("the receiver is an AsyncSequence that yields every value in order and ends when the senders are gone")
    func asyncSequence() async throws {
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 2)
        harness.spawn { [sender] in
            for value in 1...20 { try await sender.send(value) }
        }
        _ = consume sender
        var values: [Int] = []
        for await value in receiver { values.append(value) }
        #expect(values == Array(1...20))
    }
}
