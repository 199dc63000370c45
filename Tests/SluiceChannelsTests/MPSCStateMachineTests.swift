import Testing

@testable import SluiceChannels

/// The MPSC state machine driven event by event, with no continuation stored: sends, reservations, receives and
/// the lifecycle events, checked against the action each one must return.
@Suite("MPSC state machine")
struct MPSCStateMachineTests {
    @Test("a bounded machine stores sends until buffered values plus reservations reach capacity")
    func capacityCountsBufferAndReservations() {
        // Given capacity 3 with one reservation
        var machine = MPSCMachine(capacity: 3)
        #expect(machine.reserve().kind == "reserved")
        // When two values fill the rest
        #expect(machine.send(1, mayWait: false).kind == "stored")
        #expect(machine.send(2, mayWait: false).kind == "stored")
        // Then the next send is refused (or told to suspend), and nothing more was buffered
        #expect(machine.send(3, mayWait: false).kind == "full")
        #expect(machine.send(3, mayWait: true).suspendID != nil)
        #expect(machine.reserve().suspendID != nil)
        #expect(machine.count == 2)
        // When the permit spends its slot, the channel is still exactly full
        #expect(machine.permitSend(3).kind == "stored")
        #expect(machine.count == 3)
        #expect(machine.send(4, mayWait: false).kind == "full")
        // When one value is received, one slot frees
        #expect(machine.receive(mayWait: false).value == 1)
        #expect(machine.send(4, mayWait: false).kind == "stored")
        #expect(machine.send(5, mayWait: false).kind == "full")
    }

    @Test("a permit dropped unused gives its slot back")
    func permitDroppedFreesSlot() {
        var machine = MPSCMachine(capacity: 1)
        #expect(machine.reserve().kind == "reserved")
        #expect(machine.send(1, mayWait: false).kind == "full")
        let wakeups = machine.permitDropped()
        #expect(wakeups.senders.isEmpty && wakeups.receivers.isEmpty)
        #expect(machine.send(1, mayWait: false).kind == "stored")
        #expect(machine.reserve().suspendID != nil)
    }

    @Test("waiter ids are fresh for every suspension, sends, reserves and receives alike")
    func freshWaiterIDs() {
        var machine = MPSCMachine(capacity: 1)
        let r1 = machine.receive(mayWait: true).suspendID
        var values: [Int] = []
        let r2 = machine.receive(upTo: 4, into: &values).suspendID
        #expect(machine.receive(mayWait: false).kind == "empty")
        #expect(machine.send(0, mayWait: false).kind == "stored")
        let s1 = machine.send(1, mayWait: true).suspendID
        let s2 = machine.reserve().suspendID
        let ids = [r1, r2, s1, s2].compactMap { $0 }
        #expect(ids.count == 4)
        #expect(Set(ids).count == 4)
    }

    @Test("receive(upTo:into:) appends at most limit values in order and suspends only when empty")
    func batchReceive() {
        var machine = MPSCMachine(capacity: 8)
        for value in 1...5 { #expect(machine.send(value, mayWait: false).kind == "stored") }
        var values = [0]
        let first = machine.receive(upTo: 3, into: &values)
        #expect(first.kind == "values")
        #expect(first.wakeups?.senders.isEmpty == true)
        #expect(values == [0, 1, 2, 3])
        #expect(machine.receive(upTo: 10, into: &values).kind == "values")
        #expect(values == [0, 1, 2, 3, 4, 5])
        #expect(machine.receive(upTo: 10, into: &values).suspendID != nil)
        #expect(values == [0, 1, 2, 3, 4, 5])
    }

    @Test("after the senders are dropped the buffer drains, then the machine is finished")
    func sendersDroppedDrainThenFinish() {
        var machine = MPSCMachine(capacity: 4)
        _ = machine.send(1, mayWait: false)
        _ = machine.send(2, mayWait: false)
        let wakeups = machine.sendersDropped()
        #expect(wakeups.receivers.isEmpty && wakeups.senders.isEmpty)
        #expect(machine.receive(mayWait: true).value == 1)
        var values: [Int] = []
        #expect(machine.receive(upTo: 5, into: &values).kind == "values")
        #expect(values == [2])
        #expect(machine.receive(mayWait: true).kind == "finished")
        #expect(machine.receive(mayWait: false).kind == "finished")
        #expect(machine.receive(upTo: 5, into: &values).kind == "finished")
    }

    @Test("after receiverClosed new sends and reservations are refused but buffered values are still received")
    func receiverClosedKeepsBuffer() {
        var machine = MPSCMachine(capacity: 4)
        _ = machine.send(1, mayWait: false)
        _ = machine.receiverClosed()
        #expect(machine.isClosedForSending == true)
        #expect(machine.send(2, mayWait: false).kind == "closed")
        #expect(machine.send(2, mayWait: true).kind == "closed")
        #expect(machine.reserve().kind == "closed")
        #expect(machine.receive(mayWait: true).value == 1)
        #expect(machine.receive(mayWait: true).kind == "finished")
        #expect(machine.receiverGone == false)
    }

    @Test("a permit reserved before close still sends, and the machine finishes only after it is spent or dropped")
    func permitOutlivesClose() {
        for spend in [true, false] {
            var machine = MPSCMachine(capacity: 2)
            #expect(machine.reserve().kind == "reserved")
            _ = machine.send(1, mayWait: false)
            _ = machine.receiverClosed()
            #expect(machine.receive(mayWait: false).value == 1)
            #expect(machine.receive(mayWait: false).kind == "empty", "a permit is outstanding")
            if spend {
                #expect(machine.permitSend(2).kind == "stored")
                #expect(machine.receive(mayWait: false).value == 2)
            } else {
                let wakeups = machine.permitDropped()
                #expect(wakeups.senders.isEmpty)
            }
            #expect(machine.receive(mayWait: false).kind == "finished")
        }
    }

    @Test("receiverDropped hands back every buffered value, and a permit send then fails")
    func receiverDroppedHandsBackBuffer() {
        var machine = MPSCMachine(capacity: 4)
        #expect(machine.reserve().kind == "reserved")
        _ = machine.send(1, mayWait: false)
        _ = machine.send(2, mayWait: false)
        let (wakeups, dropped) = machine.receiverDropped()
        #expect(wakeups.senders.isEmpty && wakeups.receivers.isEmpty)
        #expect(dropped == [1, 2])
        #expect(machine.receiverGone == true)
        #expect(machine.count == 0)
        #expect(machine.permitSend(3).kind == "closed")
        #expect(machine.count == 0)
        #expect(machine.send(4, mayWait: false).kind == "closed")
    }

    @Test("an unbounded machine never refuses a send or a reservation and keeps order")
    func unboundedNeverRefuses() {
        var machine = MPSCMachine(capacity: nil)
        for value in 0..<5000 { #expect(machine.send(value, mayWait: true).kind == "stored") }
        // The ring (1,024 slots) is full, so these slots lie beyond it, in the spill
        var inSpill: [Bool] = []
        for _ in 0..<100 { inSpill.append(machine.reserve().inSpill ?? false) }
        #expect(inSpill == Array(repeating: true, count: 100))
        for flag in inSpill { #expect(machine.permitSend(-1, inSpill: flag).kind == "stored") }
        #expect(machine.count == 5100)
        var values: [Int] = []
        _ = machine.receive(upTo: .max, into: &values)
        #expect(values == Array(0..<5000) + Array(repeating: -1, count: 100))
    }

    @Test("random non-waiting events match a sequential model", arguments: [7, 8, 9, 10, 11] as [UInt64])
    func matchesSequentialModel(seed: UInt64) {
        var rng = SplitMix64Generator(seed: seed)
        for episode in 0..<10 {
            // Small rings put most values in the spill: the model must not be able to tell.
            Self.runModelEpisode(
                capacity: [1, 2, 3, 7, nil][rng.below(5)],
                ringLimit: [1, 2, 3, 1024][rng.below(4)],
                steps: 600,
                rng: &rng,
                episode: episode
            )
        }
    }

    /// One machine against the model: a buffer, a permit count and the three lifecycle flags. Lifecycle events
    /// come only in the last third, so that most steps exercise an open channel.
    private static func runModelEpisode(
        capacity: Int?,
        ringLimit: Int,
        steps: Int,
        rng: inout SplitMix64Generator,
        episode: Int
    ) {
        var machine = MPSCMachine(capacity: capacity, ringLimit: ringLimit)
        var buffer: [Int] = []
        var permits: [Bool] = []  // outstanding permits: is each one's slot beyond the ring?
        var closed = false
        var gone = false
        var sendersAlive = true
        var next = 0
        func hasRoom() -> Bool { capacity.map { buffer.count + permits.count < $0 } ?? true }
        func finished() -> Bool { buffer.isEmpty && permits.isEmpty && (closed || !sendersAlive) }

        for step in 0..<steps {
            let late = step > steps * 2 / 3
            let context: Comment =
                "episode \(episode) step \(step) capacity \(String(describing: capacity)) ring \(ringLimit)"
            switch rng.below(20) {
            case 0...5 where sendersAlive:
                next += 1
                let kind = machine.send(next, mayWait: false).kind
                #expect(kind == (closed ? "closed" : hasRoom() ? "stored" : "full"), context)
                if kind == "stored" { buffer.append(next) }
            case 6...7 where sendersAlive:
                let action = machine.reserve()
                #expect(action.kind == (closed ? "closed" : hasRoom() ? "reserved" : "suspend"), context)
                if let inSpill = action.inSpill { permits.append(inSpill) }
            case 8...9 where !permits.isEmpty:
                next += 1
                let kind = machine.permitSend(next, inSpill: permits.removeFirst()).kind
                #expect(kind == (gone ? "closed" : "stored"), context)
                if kind == "stored" { buffer.append(next) }
            case 10 where !permits.isEmpty:
                let wakeups = machine.permitDropped(inSpill: permits.removeLast())
                #expect(wakeups.senders.isEmpty && wakeups.receivers.isEmpty, context)
            case 11...14:
                let action = machine.receive(mayWait: false)
                let expected = buffer.isEmpty ? (finished() ? "finished" : "empty") : "value"
                #expect(action.kind == expected, context)
                #expect(action.value == buffer.first, context)
                if !buffer.isEmpty { buffer.removeFirst() }
            case 15, 16:
                let limit = 1 + rng.below(4)
                var values: [Int] = []
                let action = machine.receive(upTo: limit, into: &values)
                let expected = buffer.isEmpty ? (finished() ? "finished" : "suspend") : "values"
                #expect(action.kind == expected, context)
                #expect(values == Array(buffer.prefix(limit)), context)
                buffer.removeFirst(min(limit, buffer.count))
            case 17 where late && rng.chance(5) && !closed:
                _ = machine.receiverClosed()
                closed = true
            case 18 where late && rng.chance(5) && permits.isEmpty && sendersAlive:
                // Permits keep the sender alive, so the senders can only go once none is outstanding.
                _ = machine.sendersDropped()
                sendersAlive = false
            case 19 where late && rng.chance(3) && !gone:
                let (_, dropped) = machine.receiverDropped()
                #expect(dropped == buffer, context)
                buffer.removeAll()
                closed = true
                gone = true
            default:
                break
            }
            #expect(machine.count == buffer.count, context)
            #expect(machine.isClosedForSending == closed, context)
            if let capacity { #expect(buffer.count + permits.count <= capacity, context) }
        }
    }
}
