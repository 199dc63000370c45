import Testing

@testable import SluiceChannels

/// Waiting senders and waiting receivers exist at the same time only when permits hold every slot (the ring is
/// empty, so receivers wait; there is no room, so senders wait). A value a permit then sends wakes the receivers
/// and takes the permit's slot until a receiver takes it; these tests check that the slot then goes to the waiting
/// sender, and that a closed channel ends every remaining receiver once nothing more can arrive.
///
/// (Written against the first engine, which handed such values straight to the receiver and then stranded the
/// sender; kept, adapted to the fast lane, where values always pass through the ring.)
@Suite("MPSC state machine hand-off to a waiting receiver")
struct MPSCStateMachineHandOffTests {
    private static func parkSender(_ machine: inout MPSCMachine, _ value: Int) async -> (
        UInt64, ParkedContinuation<MPSCSendOutcome>
    ) {
        let id = machine.send(value, mayWait: true).suspendID!
        let parked = await ParkedContinuation<MPSCSendOutcome>.make()
        let (action, _) = machine.sendSuspended(
            id: id,
            value: value,
            continuation: parked.continuation,
            isCancelled: false
        )
        #expect(action.resumption == nil)
        return (id, parked)
    }

    private static func parkReceiver(_ machine: inout MPSCMachine) async -> (
        UInt64, ParkedContinuation<MPSCReceiveOutcome>
    ) {
        let id = machine.receive(mayWait: true).suspendID!
        let parked = await ParkedContinuation<MPSCReceiveOutcome>.make()
        #expect(
            machine.receiveSuspended(id: id, continuation: parked.continuation, isCancelled: false).resumption == nil
        )
        return (id, parked)
    }

    @Test("a permit send wakes the waiting receiver, and the slot its value frees goes to the waiting sender")
    func permitSendToWaitingReceiverAdmitsSender() async {
        // Given capacity 1 held by a permit, a sender waiting for room and the receiver waiting for a value
        var machine = MPSCMachine(capacity: 1)
        #expect(machine.reserve().kind == "reserved")
        let (senderID, sender) = await Self.parkSender(&machine, 1)
        let (_, receiver) = await Self.parkReceiver(&machine)
        // When the permit sends: the receiver is woken and takes the value
        let action = machine.permitSend(0)
        #expect(action.kind == "resumeReceiver")
        action.receiver?.resume()
        #expect(await receiver.outcome()?.text == "ready")
        let taken = machine.receive(mayWait: false)
        #expect(taken.value == 0)
        // Then the slot the value held goes to the waiting sender
        #expect(taken.admitted?.outcome == .sent)
        taken.admitted?.resume()
        #expect(await sender.outcome() == .sent)
        let stillWaiting = machine.sendCancelled(id: senderID)
        #expect(stillWaiting == nil, "the waiting sender is stranded although the channel has a free slot")
        #expect(machine.receive(mayWait: false).value == 1)
        stillWaiting?.resume()
    }

    @Test("a dropped permit admits the first waiting sender, and the next one when the receiver takes that value")
    func permitDroppedAdmitsUntilFull() async {
        // Given capacity 1 held by a permit, two senders waiting and the receiver waiting
        var machine = MPSCMachine(capacity: 1)
        #expect(machine.reserve().kind == "reserved")
        let (_, first) = await Self.parkSender(&machine, 1)
        let (secondID, second) = await Self.parkSender(&machine, 2)
        let (_, receiver) = await Self.parkReceiver(&machine)
        // When the permit is dropped: the first sender is admitted and the receiver woken
        let wakeups = machine.permitDropped()
        #expect(wakeups.senders.count == 1 && wakeups.receivers.count == 1)
        wakeups.resumeAll()
        #expect(await first.outcome() == .sent)
        #expect(await receiver.outcome()?.text == "ready")
        // Then the receiver's take frees the slot for the second sender
        let taken = machine.receive(mayWait: false)
        #expect(taken.value == 1)
        taken.admitted?.resume()
        #expect(await second.outcome() == .sent)
        let stillWaiting = machine.sendCancelled(id: secondID)
        #expect(stillWaiting == nil, "the second sender is stranded although the channel has a free slot")
        #expect(machine.receive(mayWait: false).value == 2)
        stillWaiting?.resume()
    }

    @Test("after close, the last permit's value wakes every waiting receiver, and the channel then finishes")
    func lastPermitAfterCloseEndsOtherReceivers() async {
        // Given a closed channel whose only outstanding permit keeps two receivers (one shared Receiver) waiting
        var machine = MPSCMachine(capacity: 2)
        #expect(machine.reserve().kind == "reserved")
        let (_, first) = await Self.parkReceiver(&machine)
        let (secondID, second) = await Self.parkReceiver(&machine)
        #expect(machine.receiverClosed().receivers.isEmpty)
        // When the permit sends: both receivers are woken to look again
        let action = machine.permitSend(5)
        #expect(action.receiver?.receivers.count == 2)
        action.receiver?.resume()
        #expect(await first.outcome()?.text == "ready")
        #expect(await second.outcome()?.text == "ready")
        // Then one takes the value and the other finds the end: nobody is left waiting
        #expect(machine.receive(mayWait: false).value == 5)
        #expect(machine.receive(mayWait: false).kind == "finished")
        let stillWaiting = machine.receiveCancelled(id: secondID)
        #expect(stillWaiting == nil, "a receiver waits forever on a finished channel")
        stillWaiting?.resume()
    }
}
