import Testing

@testable import SluiceChannels

/// Permits, waiting senders and a waiting receiver at the same time: the states in which a value goes straight
/// from a permit (or an admitted sender) to the receiver and takes no slot. The channel must then let the next
/// waiting sender in, or end the remaining receivers of a closed channel; otherwise tasks wait forever on a
/// channel with a free slot.
///
/// These fail on the engine as committed (see `MPSCStateMachineHandOffTests` for the exact event). Stuck tasks are
/// cancelled at the end of each test so that the failure is reported instead of hanging the run.
@Suite("MPSC permits handing off to a waiting receiver", .timeLimit(.minutes(1)))
struct MPSCPermitHandOffTests {
    @Test("a sender waiting behind a permit is let in when the permit's value goes straight to a waiting receiver")
    func permitSendLetsWaitingSenderIn() async throws {
        // Given capacity 1 held by a permit, a sender waiting for room and the receiver waiting for a value
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 1)
        let permit = try await sender.reserve()
        let waitingSender = harness.spawn { try await sender.send(1) }
        await harness.quiesce()
        let firstReceive = harness.spawn { try await receiver.recv() }
        await harness.quiesce()
        // When the permit sends
        try permit.send(0)
        await harness.quiesce()
        #expect(await expectValue(firstReceive) == 0)
        // Then the slot is free again, so the waiting sender is in, and the next receive gets its value
        #expect(waitingSender.isFinished, "the waiting sender is stranded although the channel has a free slot")
        let secondReceive = harness.spawn { try await receiver.recv() }
        await harness.quiesce()
        #expect(secondReceive.isFinished, "the sender and the receiver wait for each other forever")
        // Unwind whatever is stuck, and check that nothing was delivered twice
        harness.cancelAll()
        await harness.quiesce()
        var seen: [Int] = []
        if case .success(let value?) = await secondReceive.result { seen.append(value) }
        while let value = try? receiver.tryRecv() { seen.append(value) }
        if case .success = await waitingSender.result {
            #expect(seen == [1], "a sent value is received exactly once")
        } else {
            #expect(seen == [], "a cancelled send is not delivered")
        }
    }

    @Test("a dropped permit lets in every waiting sender that fits when the first hands its value to the receiver")
    func droppedPermitLetsEveryFittingSenderIn() async throws {
        // Given capacity 1 held by a permit, two senders waiting and the receiver waiting
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 1)
        let permit = try await sender.reserve()
        let first = harness.spawn { try await sender.send(1) }
        await harness.quiesce()
        let second = harness.spawn { try await sender.send(2) }
        await harness.quiesce()
        let receive = harness.spawn { try await receiver.recv() }
        await harness.quiesce()
        // When the permit is dropped unused
        _ = consume permit
        await harness.quiesce()
        // Then the first sender's value went straight to the receiver, and the still-free slot took the second's
        await expectValue(first)
        #expect(await expectValue(receive) == 1)
        #expect(second.isFinished, "the second sender is stranded although the channel has a free slot")
        #expect(receiver.count == 1)
        harness.cancelAll()
        await harness.quiesce()
    }

    @Test("after close, every task waiting on the receiver ends once the last permit hands its value to one of them")
    func lastPermitAfterCloseEndsEveryReceiver() async throws {
        // Given two tasks waiting on one receiver, and a closed channel kept open by one permit
        let harness = ParkingHarness()
        let (sender, receiver) = MPSC<Int>.channel(capacity: 2)
        let permit = try await sender.reserve()
        let first = harness.spawn { try await receiver.recv() }
        let second = harness.spawn { try await receiver.recv() }
        await harness.quiesce()
        receiver.close()
        await harness.quiesce()
        expectSuspended(first, "a permit is outstanding")
        // When the permit sends
        try permit.send(5)
        await harness.quiesce()
        // Then one task gets the value and the other sees the end, although the sender itself is still alive
        #expect(first.isFinished)
        #expect(second.isFinished, "a receiver waits forever on a closed, drained channel")
        harness.cancelAll()
        await harness.quiesce()
        var outcomes: [Int?] = []
        for probe in [first, second] {
            if case .success(let value) = await probe.result { outcomes.append(value) }
        }
        #expect(outcomes.compactMap { $0 } == [5])
        withExtendedLifetime(sender) {}
    }
}
