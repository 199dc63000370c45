import Testing

@testable import SluiceChannels

/// The MPSC state machine's waiter events (`sendSuspended`, `receiveSuspended`, the cancellations and the wake-ups
/// of lifecycle events), driven with real continuations owned by parked tasks. Every continuation the machine
/// hands back is resumed by the test, as `Storage` would after unlocking, and its outcome is checked.
@Suite("MPSC state machine waiters")
struct MPSCStateMachineWaiterTests {
    /// Registers a sender (or reserver, with `value == nil`) as a waiter on a full machine.
    private static func parkSender(
        _ machine: inout MPSCMachine,
        _ value: Int?,
        _ sourceLocation: SourceLocation = #_sourceLocation
    ) async -> (id: UInt64, parked: ParkedContinuation<MPSCSendOutcome>) {
        let id: UInt64
        if let value {
            id = machine.send(value, mayWait: true).suspendID ?? 0
        } else {
            id = machine.reserve().suspendID ?? 0
        }
        #expect(id != 0, "the machine should have said suspend", sourceLocation: sourceLocation)
        let parked = await ParkedContinuation<MPSCSendOutcome>.make()
        let (action, wakeups) = machine.sendSuspended(
            id: id,
            value: value,
            continuation: parked.continuation,
            isCancelled: false
        )
        #expect(action.resumption == nil, "the sender should have been stored", sourceLocation: sourceLocation)
        #expect(wakeups.isEmpty, sourceLocation: sourceLocation)
        #expect(!machine.lane.tryAcquire(), "a waiting sender keeps the fast path out", sourceLocation: sourceLocation)
        return (id, parked)
    }

    /// Registers a receiver as a waiter on an empty machine.
    private static func parkReceiver(
        _ machine: inout MPSCMachine,
        _ sourceLocation: SourceLocation = #_sourceLocation
    ) async -> (id: UInt64, parked: ParkedContinuation<MPSCReceiveOutcome>) {
        let id = machine.receive(mayWait: true).suspendID ?? 0
        #expect(id != 0, "the machine should have said suspend", sourceLocation: sourceLocation)
        let parked = await ParkedContinuation<MPSCReceiveOutcome>.make()
        let action = machine.receiveSuspended(id: id, continuation: parked.continuation, isCancelled: false)
        #expect(action.resumption == nil, "the receiver should have been stored", sourceLocation: sourceLocation)
        #expect(
            machine.lane.attentionWord & MPSC<Int>.Lane.receiverWaitingBit != 0,
            "a parked receiver raises the receiver-waiting bit",
            sourceLocation: sourceLocation
        )
        return (id, parked)
    }

    @Test("waiting senders are admitted in FIFO order as receives free slots, and new sends queue behind them")
    func waitingSendersFIFO() async {
        // Given a full channel of capacity 1 with two waiting senders and one waiting reserver
        var machine = MPSCMachine(capacity: 1)
        _ = machine.send(0, mayWait: false)
        let (_, s1) = await Self.parkSender(&machine, 1)
        let (_, s2) = await Self.parkSender(&machine, 2)
        let (_, r3) = await Self.parkSender(&machine, nil)
        // Then a new sender may not overtake them
        #expect(machine.send(9, mayWait: false).kind == "full")
        // When the receiver takes values, each freed slot goes to the oldest waiter
        let a = machine.receive(mayWait: true)
        #expect(a.value == 0)
        #expect(a.admitted?.outcome == .sent)
        a.admitted?.resume()
        #expect(await s1.outcome() == .sent)
        #expect(machine.count == 1)
        #expect(machine.send(9, mayWait: false).kind == "full")
        let b = machine.receive(mayWait: true)
        #expect(b.value == 1)
        b.admitted?.resume()
        #expect(await s2.outcome() == .sent)
        let c = machine.receive(mayWait: true)
        #expect(c.value == 2)
        #expect(c.admitted?.outcome == .reserved)
        c.admitted?.resume()
        #expect(await r3.outcome() == .reserved)
        // The reserver now holds the only slot
        #expect(machine.send(9, mayWait: false).kind == "full")
        #expect(machine.permitSend(3).kind == "stored")
        #expect(machine.receive(mayWait: false).value == 3)
        #expect(machine.send(9, mayWait: false).kind == "stored")
    }

    @Test("receive(upTo:) admits one waiting sender per slot it freed")
    func batchReceiveAdmitsPerSlot() async {
        var machine = MPSCMachine(capacity: 2)
        _ = machine.send(1, mayWait: false)
        _ = machine.send(2, mayWait: false)
        let s3 = await Self.parkSender(&machine, 3).parked
        let s4 = await Self.parkSender(&machine, 4).parked
        let s5 = await Self.parkSender(&machine, 5).parked
        var values: [Int] = []
        let action = machine.receive(upTo: 2, into: &values)
        #expect(values == [1, 2])
        #expect(action.wakeups?.senders.map(\.outcome) == [.sent, .sent])
        action.wakeups?.resumeAll()
        #expect(await s3.outcome() == .sent)
        #expect(await s4.outcome() == .sent)
        #expect(machine.count == 2)
        #expect(!s5.isResumed)
        values.removeAll()
        let second = machine.receive(upTo: 1, into: &values)
        #expect(values == [3])
        second.wakeups?.resumeAll()
        #expect(await s5.outcome() == .sent)
        values.removeAll()
        _ = machine.receive(upTo: 9, into: &values)
        #expect(values == [4, 5])
    }

    @Test("a sender that registers after room appeared is resumed at once and its value is delivered")
    func sendSuspendedRechecksRoom() async {
        // Given a sender told to suspend on a full channel
        var machine = MPSCMachine(capacity: 1)
        _ = machine.send(0, mayWait: false)
        let id = machine.send(1, mayWait: true).suspendID!
        // When the receiver frees the slot before the sender registers
        #expect(machine.receive(mayWait: true).value == 0)
        let parked = await ParkedContinuation<MPSCSendOutcome>.make()
        let (action, wakeups) = machine.sendSuspended(
            id: id,
            value: 1,
            continuation: parked.continuation,
            isCancelled: false
        )
        // Then it is resumed as sent, and the value is buffered
        #expect(wakeups.isEmpty)
        #expect(action.resumption?.outcome == .sent)
        action.resumption?.resume()
        #expect(await parked.outcome() == .sent)
        #expect(machine.receive(mayWait: false).value == 1)
    }

    @Test("a sender registering after a slot freed enqueues its value and wakes the waiting receiver")
    func sendSuspendedWakesWaitingReceiver() async {
        // Given a sender told to suspend behind a permit, and a receiver parked on the empty channel
        var machine = MPSCMachine(capacity: 1)
        #expect(machine.reserve().kind == "reserved")
        let id = machine.send(1, mayWait: true).suspendID!
        _ = machine.permitDropped()
        let receiver = await Self.parkReceiver(&machine).parked
        // When the sender registers, the slot is free again
        let parked = await ParkedContinuation<MPSCSendOutcome>.make()
        let (action, wakeups) = machine.sendSuspended(
            id: id,
            value: 1,
            continuation: parked.continuation,
            isCancelled: false
        )
        // Then it is resumed as sent, the receiver is woken, and the value waits in the ring for it
        #expect(action.resumption?.outcome == .sent)
        action.resumption?.resume()
        wakeups.resumeAll()
        #expect(await parked.outcome() == .sent)
        #expect(await receiver.outcome()?.text == "ready")
        #expect(machine.count == 1)
        #expect(machine.receive(mayWait: false).value == 1)
    }

    @Test("a sender registering cancelled, or after close, is resumed at once and stores nothing")
    func sendSuspendedCancelledOrClosed() async {
        var machine = MPSCMachine(capacity: 1)
        _ = machine.send(0, mayWait: false)
        let id = machine.send(1, mayWait: true).suspendID!
        let cancelled = await ParkedContinuation<MPSCSendOutcome>.make()
        let (action, _) = machine.sendSuspended(
            id: id,
            value: 1,
            continuation: cancelled.continuation,
            isCancelled: true
        )
        #expect(action.resumption?.outcome == .cancelled)
        action.resumption?.resume()
        #expect(await cancelled.outcome() == .cancelled)
        #expect(machine.receive(mayWait: false).admitted == nil, "the cancelled sender is not waiting")
        #expect(machine.count == 0)

        _ = machine.send(0, mayWait: false)
        let id2 = machine.send(2, mayWait: true).suspendID!
        _ = machine.receiverClosed()
        let closed = await ParkedContinuation<MPSCSendOutcome>.make()
        let (action2, _) = machine.sendSuspended(
            id: id2,
            value: 2,
            continuation: closed.continuation,
            isCancelled: false
        )
        #expect(action2.resumption?.outcome == .closed)
        action2.resumption?.resume()
        #expect(await closed.outcome() == .closed)
        #expect(machine.receive(mayWait: false).value == 0)
        #expect(machine.receive(mayWait: false).kind == "finished")
    }

    @Test("a cancelled waiting sender leaves the queue and is never admitted; cancelling it twice does nothing")
    func sendCancelledLeavesNoGhost() async {
        var machine = MPSCMachine(capacity: 1)
        _ = machine.send(0, mayWait: false)
        let (id1, s1) = await Self.parkSender(&machine, 1)
        let (_, s2) = await Self.parkSender(&machine, 2)
        let resumption = machine.sendCancelled(id: id1)
        #expect(resumption?.outcome == .cancelled)
        resumption?.resume()
        #expect(await s1.outcome() == .cancelled)
        #expect(machine.sendCancelled(id: id1) == nil)
        #expect(machine.sendCancelled(id: 12345) == nil)
        let receive = machine.receive(mayWait: false)
        receive.admitted?.resume()
        #expect(await s2.outcome() == .sent)
        #expect(machine.receive(mayWait: false).value == 2)
        #expect(machine.receive(mayWait: false).kind == "empty")
    }

    @Test("a send to a channel with a waiting receiver wakes it, and the value waits in the ring for it")
    func waitingReceiverIsWokenBySend() async {
        var machine = MPSCMachine(capacity: 1)
        let receiver = await Self.parkReceiver(&machine).parked
        let action = machine.send(7, mayWait: false)
        #expect(action.kind == "resumeReceiver")
        action.receiver?.resume()
        #expect(await receiver.outcome()?.text == "ready")
        #expect(
            machine.lane.attentionWord & MPSC<Int>.Lane.receiverWaitingBit == 0,
            "the bit is down once no receiver waits"
        )
        #expect(machine.count == 1)
        #expect(machine.send(8, mayWait: false).kind == "full")
        #expect(machine.receive(mayWait: false).value == 7)
        #expect(machine.send(8, mayWait: false).kind == "stored")
    }

    @Test("a receiver registering after a value arrived, after the end, or cancelled is resumed at once")
    func receiveSuspendedRechecks() async {
        var machine = MPSCMachine(capacity: 2)
        let id1 = machine.receive(mayWait: true).suspendID!
        _ = machine.send(5, mayWait: false)
        let early = await ParkedContinuation<MPSCReceiveOutcome>.make()
        machine.receiveSuspended(id: id1, continuation: early.continuation, isCancelled: false).resumption?.resume()
        #expect(await early.outcome()?.text == "ready")
        #expect(machine.receive(mayWait: false).value == 5)

        let id2 = machine.receive(mayWait: true).suspendID!
        let cancelled = await ParkedContinuation<MPSCReceiveOutcome>.make()
        machine.receiveSuspended(id: id2, continuation: cancelled.continuation, isCancelled: true).resumption?.resume()
        #expect(await cancelled.outcome()?.text == "cancelled")
        #expect(machine.send(6, mayWait: false).kind == "stored", "the cancelled receiver is not waiting")
        #expect(machine.receive(mayWait: false).value == 6)

        let id3 = machine.receive(mayWait: true).suspendID!
        _ = machine.sendersDropped()
        let late = await ParkedContinuation<MPSCReceiveOutcome>.make()
        machine.receiveSuspended(id: id3, continuation: late.continuation, isCancelled: false).resumption?.resume()
        #expect(await late.outcome()?.text == "closed")
    }

    @Test("a cancelled waiting receiver leaves the queue, so the next send is buffered, not lost")
    func receiveCancelledLeavesNoGhost() async {
        var machine = MPSCMachine(capacity: 2)
        let (id, receiver) = await Self.parkReceiver(&machine)
        let resumption = machine.receiveCancelled(id: id)
        resumption?.resume()
        #expect(await receiver.outcome()?.text == "cancelled")
        #expect(machine.receiveCancelled(id: id) == nil)
        #expect(machine.send(1, mayWait: false).kind == "stored")
        #expect(machine.receive(mayWait: false).value == 1)
    }

    @Test("sendersDropped ends every waiting receiver")
    func sendersDroppedEndsReceivers() async {
        var machine = MPSCMachine(capacity: 2)
        let r1 = await Self.parkReceiver(&machine).parked
        let r2 = await Self.parkReceiver(&machine).parked
        let wakeups = machine.sendersDropped()
        #expect(wakeups.receivers.count == 2)
        wakeups.resumeAll()
        #expect(await r1.outcome()?.text == "closed")
        #expect(await r2.outcome()?.text == "closed")
    }

    @Test("receiverClosed fails waiting senders and reservers and keeps the buffered values")
    func receiverClosedFailsWaiters() async {
        var machine = MPSCMachine(capacity: 1)
        _ = machine.send(0, mayWait: false)
        let sender = await Self.parkSender(&machine, 1).parked
        let reserver = await Self.parkSender(&machine, nil).parked
        let wakeups = machine.receiverClosed()
        #expect(wakeups.senders.map(\.outcome) == [.closed, .closed])
        wakeups.resumeAll()
        #expect(await sender.outcome() == .closed)
        #expect(await reserver.outcome() == .closed)
        #expect(machine.receive(mayWait: false).value == 0)
        #expect(machine.receive(mayWait: false).kind == "finished")
    }

    @Test("after close a waiting receiver keeps waiting for an outstanding permit and ends when it is dropped")
    func closeWaitsForPermit() async {
        var machine = MPSCMachine(capacity: 1)
        #expect(machine.reserve().kind == "reserved")
        let receiver = await Self.parkReceiver(&machine).parked
        let closing = machine.receiverClosed()
        #expect(closing.receivers.isEmpty, "a permit may still send")
        let wakeups = machine.permitDropped()
        #expect(wakeups.receivers.count == 1)
        wakeups.resumeAll()
        #expect(await receiver.outcome()?.text == "closed")
    }
}
