import Testing

@testable import SluiceChannels

/// How an MPSC channel ends: the last sender going away, `Receiver.close()`, the receiver going away, and the
/// unbounded flavour. Handles are held in optionals so that a test can let go of one and observe the effect.
@Suite("MPSC lifecycle and unbounded channel", .timeLimit(.minutes(1)))
struct MPSCLifecycleTests {
    @Test("when every copy of the sender is gone, recv drains what is buffered and then returns nil")
    func sendersGoneDrainThenNil() async throws {
        var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.channel(capacity: 4)
        for value in 1...3 { try await sender?.send(value) }
        let copy = sender
        sender = nil
        #expect(describe(copy!.trySend(4)) == "sent", "a copy keeps the channel open")
        _ = consume copy
        #expect(try await receiver.recv() == 1)
        #expect(try await receiver.recv(upTo: 2) == [2, 3])
        #expect(try receiver.tryRecv() == 4)
        #expect(try await receiver.recv() == nil)
        #expect(try await receiver.recv() == nil, "the end is sticky")
        #expect(try await receiver.recv(upTo: 5) == [])
        #expect(throws: MPSC<Int>.TryRecvError.disconnected) { try receiver.tryRecv() }
    }

    @Test("a receiver waiting on an empty channel gets nil when the last sender goes away")
    func waitingReceiverSeesEnd() async {
        let harness = ParkingHarness()
        var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.channel(capacity: 4)
        let single = harness.spawn { [receiver] in try await receiver.recv() }
        let batch = harness.spawn { [receiver] in try await receiver.recv(upTo: 4) }
        await harness.quiesce()
        expectSuspended(single)
        expectSuspended(batch)
        #expect(throws: MPSC<Int>.TryRecvError.empty) { try receiver.tryRecv() }
        sender = nil
        #expect(sender == nil)
        await harness.quiesce()
        #expect(await expectValue(single) == .some(nil))
        #expect(await expectValue(batch) == [])
    }

    @Test("a permit keeps the channel open after the last sender is dropped")
    func permitKeepsChannelOpen() async throws {
        let harness = ParkingHarness()
        var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.channel(capacity: 2)
        let permit = try await sender!.reserve()
        sender = nil
        let waiting = harness.spawn { [receiver] in try await receiver.recv() }
        await harness.quiesce()
        expectSuspended(waiting, "a permit is outstanding, so more may come")
        try permit.send(9)
        await harness.quiesce()
        #expect(await expectValue(waiting) == 9)
        #expect(try await receiver.recv() == nil)
    }

    @Test("close makes later sends fail with the value handed back while buffered values can still be drained")
    func closeKeepsBuffer() async throws {
        let (sender, receiver) = MPSC<Int>.channel(capacity: 4)
        try await sender.send(1)
        try await sender.send(2)
        receiver.close()
        #expect(sender.isClosed)
        await #expect(throws: SendError(3)) { try await sender.send(3) }
        #expect(describe(sender.trySend(4)) == "closed(4)")
        await #expect(throws: ClosedError()) { _ = try await sender.reserve() }
        #expect(receiver.count == 2)
        #expect(try await receiver.recv() == 1)
        #expect(try await receiver.recv() == 2)
        #expect(try await receiver.recv() == nil)
        #expect(throws: MPSC<Int>.TryRecvError.disconnected) { try receiver.tryRecv() }
    }

    @Test("close ends a receiver waiting on an empty channel, and closing twice changes nothing")
    func closeEndsWaitingReceiver() async throws {
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 2)
        let waiting = harness.spawn { try await receiver.recv(upTo: 3) }
        await harness.quiesce()
        expectSuspended(waiting)
        receiver.close()
        await harness.quiesce()
        #expect(await expectValue(waiting) == [])
        receiver.close()
        #expect(sender.isClosed)
        #expect(try await receiver.recv() == nil)
    }

    @Test("close fails senders waiting for room with their value and reservers with ClosedError")
    func closeFailsWaiters() async throws {
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 1)
        try await sender.send(0)
        let waitingSender = harness.spawn { try await sender.send(1) }
        let waitingReserver = harness.spawn { _ = try await sender.reserve() }
        await harness.quiesce()
        receiver.close()
        await harness.quiesce()
        #expect(await expectError(waitingSender, SendError<Int>.self) == SendError(1))
        #expect(await expectError(waitingReserver, ClosedError.self) != nil)
        #expect(drainToEnd(receiver) == [0])
    }

    @Test("permits reserved before close can still send, and the receiver gets their values before the end")
    func permitsSurviveClose() async throws {
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 3)
        let first = try await sender.reserve()
        let second = try await sender.reserve()
        try await sender.send(1)
        receiver.close()
        #expect(try await receiver.recv() == 1)
        let waiting = harness.spawn { try await receiver.recv() }
        await harness.quiesce()
        expectSuspended(waiting, "two permits are outstanding")
        try first.send(2)
        await harness.quiesce()
        #expect(await expectValue(waiting) == 2)
        try second.send(3)
        #expect(try await receiver.recv() == 3)
        #expect(try await receiver.recv() == nil)
    }

    @Test("dropping the receiver fails waiting senders with their value and waiting reservers with ClosedError")
    func receiverDroppedFailsWaiters() async throws {
        let harness = ParkingHarness()
        let sender: MPSC<Int>.Sender
        var receiver: MPSC<Int>.Receiver?
        (sender, receiver) = MPSC<Int>.channel(capacity: 1)
        try await sender.send(0)
        let waitingSender = harness.spawn { [sender] in try await sender.send(1) }
        let waitingReserver = harness.spawn { [sender] in _ = try await sender.reserve() }
        await harness.quiesce()
        expectSuspended(waitingSender)
        receiver = nil
        #expect(receiver == nil)
        await harness.quiesce()
        #expect(await expectError(waitingSender, SendError<Int>.self) == SendError(1))
        #expect(await expectError(waitingReserver, ClosedError.self) != nil)
        #expect(sender.isClosed)
        #expect(describe(sender.trySend(2)) == "closed(2)")
        await #expect(throws: SendError(3)) { try await sender.send(3) }
    }

    @Test("dropping the receiver destroys the buffered values, and a permit send then hands its value back")
    func receiverDroppedDestroysBuffer() async throws {
        let counter = DeinitCounter()
        let sender: MPSC<DeinitTracked>.Sender
        var receiver: MPSC<DeinitTracked>.Receiver?
        (sender, receiver) = MPSC<DeinitTracked>.channel(capacity: 4)
        let permit = try await sender.reserve()
        for id in 0..<3 { try await sender.send(DeinitTracked(id, counter)) }
        #expect(counter.destroyed == 0)
        receiver = nil
        #expect(receiver == nil)
        #expect(counter.destroyed == 3)
        #expect(counter.destroyedTwice.isEmpty)
        do {
            try permit.send(DeinitTracked(3, counter))
            Issue.record("a permit send succeeded although nobody can ever receive it")
        } catch {
            #expect(error.value.id == 3)
        }
        #expect(counter.destroyed == 4)
    }

    @Test("channel(capacity:) refuses a capacity below 1, and recv(upTo:) a limit below 1")
    func preconditions() async {
        await #expect(processExitsWith: .failure) {
            _ = MPSC<Int>.channel(capacity: 0)
        }
        await #expect(processExitsWith: .failure) {
            let (sender, receiver) = MPSC<Int>.channel(capacity: 1)
            sender.trySend(1)
            _ = try await receiver.recv(upTo: 0)
        }
    }

    @Test("tryRecv answers empty while more may come and disconnected at the end")
    func tryRecv() throws {
        var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.channel(capacity: 2)
        #expect(throws: MPSC<Int>.TryRecvError.empty) { try receiver.tryRecv() }
        sender?.trySend(1)
        #expect(try receiver.tryRecv() == 1)
        sender = nil
        #expect(throws: MPSC<Int>.TryRecvError.disconnected) { try receiver.tryRecv() }
    }

    @Test("an unbounded channel's sends and reservations never wait, order is kept, and it drains then ends")
    func unbounded() async throws {
        // Given an unbounded channel whose receiver takes nothing for a while
        let harness = ParkingHarness()
        var (sender, receiver): (MPSC<Int>.Sender?, MPSC<Int>.Receiver) = MPSC<Int>.unboundedChannel()
        #expect(sender?.capacity == nil)
        let producer = harness.spawn { [sender] in
            for value in 0..<5000 { try await sender!.send(value) }
            for _ in 0..<10 {
                let permit = try await sender!.reserve()
                try permit.send(-1)
            }
        }
        await harness.quiesce()
        // Then the producer finished without waiting and everything is buffered
        await expectValue(producer)
        #expect(receiver.count == 5010)
        for value in 5000..<5100 { #expect(describe(sender!.trySend(value)) == "sent") }
        sender = nil
        // When the receiver drains, it gets every value in order, then the end
        var values: [Int] = []
        while let value = try await receiver.recv() { values.append(value) }
        #expect(values == Array(0..<5000) + Array(repeating: -1, count: 10) + Array(5000..<5100))
    }
}
