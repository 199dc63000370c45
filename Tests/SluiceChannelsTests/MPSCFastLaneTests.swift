import Synchronization
import Testing

@testable import SluiceChannels

/// The split between the lock-free lane and the state machine, driven step by step without concurrency: the lane's
/// fast-path operations (`tryAcquire`, `write`, `pop`) interleaved with the machine's events, checking the flags that
/// hand work from one to the other, the batched return of taken slots, and the spill beyond the ring.
@Suite("MPSC fast lane and slow lane")
struct MPSCFastLaneTests {
    typealias Lane = MPSC<Int>.Lane

    @Test("the fast path takes permits until the ring is full, and then the lock decides")
    func fastPathUntilFull() {
        // Given a bounded channel of 3
        var machine = MPSCMachine(capacity: 3)
        // When fast-path sends take every permit
        for value in 1...3 {
            #expect(machine.lane.tryAcquire())
            #expect(!machine.lane.writeAndCheck(value), "no receiver is parked")
        }
        // Then the fast path is refused and the slow path says full
        #expect(!machine.lane.tryAcquire())
        #expect(machine.send(4, mayWait: false).kind == "full")
        #expect(machine.count == 3)
        var values: [Int] = []
        #expect(machine.lane.pop(upTo: 10, into: &values) == 3)
        #expect(values == [1, 2, 3])
    }

    @Test("slots a consumer took come back in batches, and the slow path collects the rest itself")
    func takenSlotsComeBackInBatches() {
        // Given a full channel of 8 (batches of 2) from which the consumer took one value on the fast path
        var machine = MPSCMachine(capacity: 8)
        for value in 0..<8 {
            #expect(machine.lane.tryAcquire())
            machine.lane.write(value)
        }
        #expect(machine.lane.pop() == 0)
        // Then the slot is not yet back: the fast path still finds the ring full
        #expect(machine.lane.pendingReleases == 1)
        #expect(!machine.lane.mustReleaseTaken, "one taken slot is below the batch")
        #expect(!machine.lane.tryAcquire())
        // When the slow path runs, it collects the taken slot and stores the value
        #expect(machine.send(8, mayWait: false).kind == "stored")
        #expect(machine.lane.pendingReleases == 0)
        // And a second take completes a batch: the consumer gives both back at once
        #expect(machine.lane.pop() == 1)
        #expect(machine.lane.pop() == 2)
        #expect(machine.lane.mustReleaseTaken)
        #expect(machine.lane.releaseTaken()?.count == 2)
        #expect(machine.lane.releaseTaken() == nil, "each taken slot comes back exactly once")
        #expect(machine.lane.tryAcquire() && machine.lane.tryAcquire())
        #expect(!machine.lane.tryAcquire())
    }

    @Test("a waiting sender raises the waiters flag: the fast path stays out and a consumer gives slots back at once")
    func waitersFlagHandsOverToTheLock() async {
        // Given a full channel of 4 and one sender waiting
        var machine = MPSCMachine(capacity: 4)
        for value in 0..<4 { _ = machine.send(value, mayWait: false) }
        let id = machine.send(9, mayWait: true).suspendID!
        let parked = await ParkedContinuation<MPSCSendOutcome>.make()
        #expect(
            machine.sendSuspended(id: id, value: 9, continuation: parked.continuation, isCancelled: false).0
                .resumption == nil
        )
        #expect(machine.lane.word & Lane.waitersBit != 0)
        #expect(machine.lane.attentionWord & Lane.waitersBit != 0)
        // When the consumer takes a value on the fast path
        #expect(machine.lane.pop() == 0)
        // Then it must give the slot back now (not in a batch), and a fast-path send may not take it
        #expect(machine.lane.mustReleaseTaken)
        let released = machine.lane.releaseTaken()
        #expect(released.map { $0.word & Lane.waitersBit != 0 } == true, "the release tells the consumer to lock")
        #expect(!machine.lane.tryAcquire(), "a new sender never overtakes a waiting one")
        // When the lock hears of it, the waiter is admitted and the flag goes down
        let wakeups = machine.permitsReleased()
        #expect(wakeups.senders.map(\.outcome) == [.sent])
        wakeups.resumeAll()
        #expect(await parked.outcome() == .sent)
        #expect(machine.lane.word & Lane.waitersBit == 0)
        #expect(machine.lane.attentionWord & Lane.waitersBit == 0)
        var values: [Int] = []
        _ = machine.receive(upTo: 10, into: &values)
        #expect(values == [1, 2, 3, 9])
    }

    @Test("a sender about to wait finds a slot the consumer took before the waiters flag went up")
    func senderAboutToWaitCollectsTakenSlot() async {
        // Given a full channel of 4 (batches of 1) and a sender told to suspend
        var machine = MPSCMachine(capacity: 4)
        for value in 0..<4 { _ = machine.send(value, mayWait: false) }
        let id = machine.send(9, mayWait: true).suspendID!
        // When the consumer takes a value without giving the slot back yet (the flag was down when it looked)
        #expect(machine.lane.pop() == 0)
        // Then the sender, registering, collects that slot instead of waiting for a wake-up nobody would send
        let parked = await ParkedContinuation<MPSCSendOutcome>.make()
        let (action, _) = machine.sendSuspended(id: id, value: 9, continuation: parked.continuation, isCancelled: false)
        #expect(action.resumption?.outcome == .sent)
        action.resumption?.resume()
        #expect(await parked.outcome() == .sent)
        #expect(machine.lane.word & Lane.waitersBit == 0, "the flag is down again: nobody waits")
    }

    @Test("a parked receiver raises the receiver-waiting bit, and a fast-path write reports it")
    func receiverWaitingBit() async {
        // Given a receiver parked on an empty channel
        var machine = MPSCMachine(capacity: 4)
        let id = machine.receive(mayWait: true).suspendID!
        let parked = await ParkedContinuation<MPSCReceiveOutcome>.make()
        #expect(
            machine.receiveSuspended(id: id, continuation: parked.continuation, isCancelled: false).resumption == nil
        )
        // When a producer writes on the fast path
        #expect(machine.lane.tryAcquire())
        let mustWake = machine.lane.writeAndCheck(1)
        // Then it sees the bit, and the lock wakes the receiver, which takes the value itself
        #expect(mustWake)
        let wakeups = machine.wakeReceivers()
        #expect(wakeups.receivers.count == 1)
        wakeups.resumeAll()
        #expect(await parked.outcome()?.text == "ready")
        #expect(machine.lane.attentionWord & Lane.receiverWaitingBit == 0)
        #expect(machine.lane.pop() == 1)
        // And a write with nobody parked does not ask for the lock
        #expect(machine.lane.tryAcquire())
        #expect(!machine.lane.writeAndCheck(2))
    }

    @Test("a receiver registering after a fast-path write finds the value and does not park")
    func receiverRegisteringAfterWriteDoesNotPark() async {
        var machine = MPSCMachine(capacity: 4)
        let id = machine.receive(mayWait: true).suspendID!
        #expect(machine.lane.tryAcquire())
        #expect(!machine.lane.writeAndCheck(5), "the receiver had not raised its bit yet")
        let parked = await ParkedContinuation<MPSCReceiveOutcome>.make()
        let action = machine.receiveSuspended(id: id, continuation: parked.continuation, isCancelled: false)
        #expect(action.resumption?.outcome.text == "ready")
        action.resumption?.resume()
        _ = await parked.outcome()
        #expect(machine.lane.attentionWord & Lane.receiverWaitingBit == 0)
        #expect(machine.receive(mayWait: false).value == 5)
    }

    @Test("values beyond the ring wait in the spill, keep their order, and keep the fast path out until moved in")
    func spillKeepsOrder() {
        // Given a channel of 6 whose ring has 2 slots
        var machine = MPSCMachine(capacity: 6, ringLimit: 2)
        #expect(machine.canSpill == true)
        for value in 1...6 { #expect(machine.send(value, mayWait: false).kind == "stored") }
        #expect(machine.send(7, mayWait: false).kind == "full")
        #expect(machine.spill.count == 4)
        #expect(machine.lane.word & Lane.spilledBit != 0)
        // When the consumer takes the ring's two values on the fast path
        #expect(machine.lane.pop() == 1)
        #expect(machine.lane.pop() == 2)
        _ = machine.lane.releaseTaken()
        // Then a fast-path send may not use the freed slots: its value would overtake the spill
        #expect(!machine.lane.tryAcquire())
        // When the consumer finds the ring empty, the lock moves the spill in, oldest first
        #expect(machine.receive(mayWait: false).value == 3)
        #expect(machine.lane.pop() == 4)
        var values: [Int] = []
        _ = machine.receive(upTo: 10, into: &values)
        #expect(values == [5, 6])
        #expect(machine.lane.word & Lane.spilledBit == 0)
        #expect(machine.lane.tryAcquire(), "spill empty: the fast path is open again")
    }

    @Test("a permit holding the only ring slot of a spilling channel does not hold up the spilled values")
    func spillHeadIsTakenPastPermits() {
        // Given a channel of 3 whose ring has 1 slot: two reservations take the spill's share (3 - 1), the third
        // holds the ring slot
        var machine = MPSCMachine(capacity: 3, ringLimit: 1)
        #expect(machine.reserve().inSpill == true)
        #expect(machine.reserve().inSpill == true)
        #expect(machine.reserve().inSpill == false)
        #expect(machine.reserve().kind == "suspend", "3 of 3 slots reserved")
        // When the two spill permits send: the ring slot is held, so their values spill
        #expect(machine.permitSend(1, inSpill: true).kind == "stored")
        #expect(machine.permitSend(2, inSpill: true).kind == "stored")
        #expect(machine.spill.count == 2)
        // Then the receiver still gets them: the ring is empty and its only permit is held by a permit, so the
        // spill's head is the oldest value in the channel
        #expect(machine.receive(mayWait: false).value == 1)
        var values: [Int] = []
        #expect(machine.receive(upTo: 5, into: &values).kind == "values")
        #expect(values == [2])
        #expect(machine.receive(mayWait: false).kind == "empty")
        // And the ring permit's value goes into its slot when sent
        #expect(machine.permitSend(3, inSpill: false).kind == "stored")
        #expect(machine.receive(mayWait: false).value == 3)
        #expect(machine.count == 0)
        #expect(machine.lane.isIdle)
    }

    @Test("a reservation never takes a ring slot that spilled values wait for, even with the spill past its share")
    func reservationDoesNotTakeSpilledValuesSlot() {
        // Given a channel of 8 whose ring has 3 slots (the spill's share is 5), full: 3 values in the ring, 5 spilled
        var machine = MPSCMachine(capacity: 8, ringLimit: 3)
        for value in 1...8 { #expect(machine.send(value, mayWait: false).kind == "stored") }
        // And the state a consumer racing a spill decision leaves behind (it took a value between the lock's refill
        // and its count of the room, so the value spilled though the ring had a slot): 2 in the ring, 6 spilled
        #expect(machine.lane.pop() == 1)
        machine.spill.append(9)
        #expect(machine.count == 8)
        // When a reservation comes: the freed slot belongs to the spill's head, and the channel is full
        #expect(machine.reserve(mayWait: false).kind == "full")
        #expect(machine.count == 8)
        #expect(machine.lane.ringPermits - Lane.freeSlots(machine.lane.word) == 3, "the slot went to value 4")
        // Then the values still come out in order, and a reservation fits once one leaves
        #expect(machine.receive(mayWait: false).value == 2)
        #expect(machine.reserve(mayWait: false).inSpill == true)
        var values: [Int] = []
        while case .value(let value, _) = machine.receive(mayWait: false) { values.append(value) }
        #expect(values == [3, 4, 5, 6, 7, 8, 9])
    }

    @Test("a batch receive waits for more only while waiting pays, and probes again now and then")
    func lingerIsAdaptive() {
        let lane = Lane(ringPermits: 16)
        let linger = MPSC<Int>.Linger()
        // Nothing ready: that is the slow path's business, no wait
        #expect(linger.wait(on: lane) == nil)
        // One value ready: it waits, and says how many were ready before
        #expect(lane.tryAcquire())
        lane.write(1)
        #expect(linger.wait(on: lane) == 1)
        // A wait that brought more (a producer wrote meanwhile) keeps waiting on
        linger.record(readyBefore: 1, taken: 3)
        #expect(linger.failures.load(ordering: .relaxed) == 0)
        // Waits that bring nothing (producer and consumer on one thread, or a quiet channel) stop it after four
        for _ in 0..<MPSC<Int>.Linger.maximumFailures {
            #expect(linger.wait(on: lane) == 1)
            linger.record(readyBefore: 1, taken: 1)
        }
        var waited = 0
        for _ in 0..<MPSC<Int>.Linger.probeInterval - 1 where linger.wait(on: lane) != nil { waited += 1 }
        #expect(waited == 0, "paused")
        // Then one probe in each interval waits again; if it pays, waiting resumes
        #expect(linger.wait(on: lane) == 1)
        linger.record(readyBefore: 1, taken: 2)
        #expect(linger.wait(on: lane) == 1)
        #expect(lane.pop() == 1)
        // A ring of one slot is full with one value: nothing more can arrive, so no wait
        let single = Lane(ringPermits: 1)
        #expect(single.tryAcquire())
        single.write(1)
        #expect(MPSC<Int>.Linger().wait(on: single) == nil)
        #expect(single.pop() == 1)
    }

    @Test("values left in the ring are destroyed exactly once when the channel is freed")
    func ringDestroysLeftValues() {
        let counter = DeinitCounter()
        do {
            let (sender, receiver) = MPSC<DeinitTracked>.channel(capacity: 8)
            for id in 0..<5 { sender.trySend(DeinitTracked(id, counter)) }
            _ = try? receiver.tryRecv()
            #expect(counter.destroyed == 1)
            withExtendedLifetime(sender) {}
        }
        // The receiver's drop destroyed the buffered values; nothing twice
        #expect(counter.destroyed == 5)
        #expect(counter.destroyedTwice.isEmpty)
        // And a channel freed with values still in the ring (the senders dropped first) frees them too
        do {
            var (sender, receiver): (MPSC<DeinitTracked>.Sender?, MPSC<DeinitTracked>.Receiver?) = MPSC.channel(
                capacity: 4
            )
            for id in 10..<13 { sender?.trySend(DeinitTracked(id, counter)) }
            sender = nil
            #expect(counter.destroyed == 5)
            receiver = nil
            #expect(sender == nil && receiver == nil)
        }
        #expect(counter.destroyed == 8)
        #expect(counter.destroyedTwice.isEmpty)
    }
}
