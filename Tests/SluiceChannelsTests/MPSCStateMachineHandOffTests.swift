import Testing

@testable import SluiceChannels

/// Waiting senders and waiting receivers exist at the same time only when permits hold every slot (the buffer is
/// empty, so receivers wait; there is no room, so senders wait). A value that then goes straight from a sender to
/// a waiting receiver takes no slot. These tests check that the machine notices the slot it left free.
///
/// They fail on the engine as committed (see the final report of the `mpsc-tests` branch): `permitSend` and
/// `admitWaitingSender` hand a value to a waiting receiver without admitting the next waiting sender, and
/// `permitSend` on a closed channel does not end the other waiting receivers.
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

    @Test("a permit send handed straight to a waiting receiver admits the waiting sender into the slot it left free")
    func permitSendToWaitingReceiverAdmitsSender() async {
        // Given capacity 1 held by a permit, a sender waiting for room and the receiver waiting for a value
        var machine = MPSCMachine(capacity: 1)
        #expect(machine.reserve().kind == "reserved")
        let (senderID, sender) = await Self.parkSender(&machine, 1)
        let (_, receiver) = await Self.parkReceiver(&machine)
        // When the permit sends: the value goes straight to the receiver
        let action = machine.permitSend(0)
        #expect(action.kind == "resumeReceiver")
        action.receiver?.resume()
        #expect(await receiver.outcome()?.text == "value(0)")
        // Then nothing is buffered and nothing reserved, so the waiting sender must have been admitted
        let stillWaiting = machine.sendCancelled(id: senderID)
        #expect(stillWaiting == nil, "the waiting sender is stranded although the channel has a free slot")
        #expect(machine.receive(mayWait: false).value == 1)
        // Clean up the stranded sender so that its task ends
        stillWaiting?.resume()
        _ = await sender.outcome()
    }

    @Test("a dropped permit whose slot goes to a sender handing off to a waiting receiver admits the next sender")
    func permitDroppedAdmitsUntilFull() async {
        // Given capacity 1 held by a permit, two senders waiting and the receiver waiting
        var machine = MPSCMachine(capacity: 1)
        #expect(machine.reserve().kind == "reserved")
        let (_, first) = await Self.parkSender(&machine, 1)
        let (secondID, second) = await Self.parkSender(&machine, 2)
        let (_, receiver) = await Self.parkReceiver(&machine)
        // When the permit is dropped: the first sender is admitted and its value goes straight to the receiver
        let wakeups = machine.permitDropped()
        wakeups.resumeAll()
        #expect(await first.outcome() == .sent)
        #expect(await receiver.outcome()?.text == "value(1)")
        // Then the slot is still free, so the second sender must have been admitted as well
        let stillWaiting = machine.sendCancelled(id: secondID)
        #expect(stillWaiting == nil, "the second sender is stranded although the channel has a free slot")
        #expect(machine.receive(mayWait: false).value == 2)
        stillWaiting?.resume()
        _ = await second.outcome()
    }

    @Test("after close, the last permit handing its value to one waiting receiver ends the other waiting receivers")
    func lastPermitAfterCloseEndsOtherReceivers() async {
        // Given a closed channel whose only outstanding permit keeps two receivers (one shared Receiver) waiting
        var machine = MPSCMachine(capacity: 2)
        #expect(machine.reserve().kind == "reserved")
        let (_, first) = await Self.parkReceiver(&machine)
        let (secondID, second) = await Self.parkReceiver(&machine)
        #expect(machine.receiverClosed().receivers.isEmpty)
        // When the permit sends: the first receiver gets the value
        let action = machine.permitSend(5)
        action.receiver?.resume()
        #expect(await first.outcome()?.text == "value(5)")
        // Then nothing can ever arrive again, so the second receiver must have been ended with `.closed`
        #expect(machine.receive(mayWait: false).kind == "finished")
        let stillWaiting = machine.receiveCancelled(id: secondID)
        #expect(stillWaiting == nil, "a receiver waits forever on a finished channel")
        stillWaiting?.resume()
        _ = await second.outcome()
    }
}
