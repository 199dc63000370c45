import Testing

@testable import SluiceChannels

/// The broadcast channel through its public API: one test per documented behaviour.
@Suite("Broadcast")
struct BroadcastTests {
    typealias Payload = BroadcastTestSupport.Payload
    typealias RecvError = Broadcast<Int>.RecvError
    typealias TryRecvError = Broadcast<Int>.TryRecvError

    // MARK: Sending

    @Test("send never waits and returns how many receivers will see the value")
    func sendReturnsReceiverCount() throws {
        // Given two receivers that never read, in a ring of two
        let (sender, first) = Broadcast<Int>.channel(capacity: 2)
        let second = sender.subscribe()
        // When far more values than the capacity are sent from synchronous code (send cannot wait)
        for value in 0..<1_000 {
            // Then every send reports both receivers
            #expect(sender.send(value) == 2)
        }
        #expect(first.count == 1_000)
        #expect(second.count == 1_000)
        #expect(first.storage.heldValueCount == 2)
    }

    @Test("backlog is how far the slowest receiver is behind, counting what it lagged past; 0 without receivers")
    func backlog() async throws {
        let (sender, fast) = Broadcast<Int>.channel(capacity: 4)
        let slow = sender.subscribe()
        #expect(sender.backlog == 0)
        sender.send(contentsOf: [1, 2, 3])
        #expect(sender.backlog == 3)
        for _ in 0..<3 { _ = try await fast.recv() }
        #expect(sender.backlog == 3, "the slow receiver still owes all three")
        _ = try await slow.recv()
        #expect(sender.backlog == 2)
        sender.send(contentsOf: [4, 5, 6, 7])
        #expect(sender.backlog == 6, "past the capacity: the slow receiver has lagged")
        await #expect(throws: Broadcast<Int>.RecvError.lagged(2)) { try await slow.recv() }
        #expect(sender.backlog == 4)
        _ = consume slow
        #expect(sender.backlog == 4, "the fast receiver owes 4, 5, 6, 7")
        _ = consume fast
        #expect(sender.backlog == 0)
    }

    @Test("a send can report the backlog: nil while it cannot exceed the threshold, the exact backlog once it may")
    func sendReportingBacklog() async throws {
        // Given a 64-value channel whose receiver reads nothing yet
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 64)
        // When 10 values are sent, the backlog cannot be over 48: no answer (and no look at the receivers)
        let first = sender.send(contentsOf: Array(0..<10), backlogAbove: 48)
        #expect(first.receivers == 1)
        #expect(first.backlog == nil)
        // When 50 more are sent, the ring has grown to hold them and the backlog (60) is reported
        let second = sender.send(contentsOf: Array(10..<60), backlogAbove: 48)
        #expect(second.backlog == 60)
        #expect(sender.backlog == 60)
        // And once the receiver catches up, a send reports how far behind it is again
        for _ in 0..<60 { _ = try await receiver.recv() }
        #expect(sender.send(contentsOf: [60], backlogAbove: 48).backlog == 1)
        // Without receivers nothing is stored or measured
        _ = consume receiver
        #expect(sender.send(contentsOf: [61], backlogAbove: 0) == (0, nil))
    }

    @Test("a send with no receiver returns zero and is not stored for later subscribers")
    func sendWithoutReceivers() throws {
        // Given a channel whose only receiver is gone
        let sender: Broadcast<Int>.Sender
        do {
            let channel = Broadcast<Int>.channel(capacity: 4)
            sender = channel.sender
        }
        #expect(sender.receiverCount == 0)
        // When a value is sent, then nobody sees it
        #expect(sender.send(1) == 0)
        #expect(sender.storage.heldValueCount == 0)
        // And a receiver subscribed afterwards starts empty
        let late = sender.subscribe()
        #expect(throws: TryRecvError.empty) { try late.tryRecv() }
        #expect(sender.send(2) == 1)
        #expect(try late.tryRecv() == 2)
    }

    @Test("a class payload is stored once: every receiver gets the same object")
    func payloadSharedByIdentity() throws {
        // Given three receivers
        let (sender, first) = Broadcast<Payload>.channel(capacity: 4)
        let others = [sender.subscribe(), sender.subscribe()]
        let payload = Payload(1)
        // When one object is sent
        #expect(sender.send(payload) == 3)
        // Then each receiver gets that very object, not a copy
        #expect(try first.tryRecv() === payload)
        for receiver in others { #expect(try receiver.tryRecv() === payload) }
    }

    // MARK: Memory

    @Test("a value is released as soon as the last receiver has read it")
    func releasedAfterLastRead() throws {
        // Given two receivers and one payload that only the channel references
        let (sender, first) = Broadcast<Payload>.channel(capacity: 4)
        let second = sender.subscribe()
        weak var weakPayload: Payload?
        do {
            let payload = Payload(1)
            weakPayload = payload
            sender.send(payload)
        }
        #expect(weakPayload != nil)
        // When the first receiver reads it (and lets go of its copy), the second still owes it
        do { #expect(try first.tryRecv().number == 1) }
        #expect(weakPayload != nil)
        // When the second reads it too, the channel holds it no more
        do { #expect(try second.tryRecv().number == 1) }
        #expect(weakPayload == nil)
        #expect(sender.storage.heldValueCount == 0)
    }

    @Test("a value owed only by a dropped receiver is released with it")
    func releasedWhenOwerDropped() throws {
        // Given a reader that read the payload and an idle receiver that did not
        let (sender, reader) = Broadcast<Payload>.channel(capacity: 4)
        var idle: Broadcast<Payload>.Receiver? = sender.subscribe()
        weak var weakPayload: Payload?
        do {
            let payload = Payload(1)
            weakPayload = payload
            sender.send(payload)
        }
        do { _ = try reader.tryRecv() }
        #expect(weakPayload != nil)
        // When the idle receiver is dropped
        idle = nil
        // Then the payload is gone
        #expect(idle == nil)
        #expect(weakPayload == nil)
    }

    @Test("a value overwritten under a lagging receiver is released")
    func releasedWhenLaggedPast() throws {
        // Given an idle receiver and a ring of one
        let (sender, receiver) = Broadcast<Payload>.channel(capacity: 1)
        weak var weakPayload: Payload?
        do {
            let payload = Payload(1)
            weakPayload = payload
            sender.send(payload)
        }
        #expect(weakPayload != nil)
        // When the next send overwrites it
        sender.send(Payload(2))
        // Then the first payload is released, and the receiver learns it lagged by one
        #expect(weakPayload == nil)
        #expect(throws: Broadcast<Payload>.TryRecvError.lagged(1)) { try receiver.tryRecv() }
        #expect(try receiver.tryRecv().number == 2)
    }

    // MARK: Subscription

    @Test("a subscriber sees only values sent after it subscribed")
    func subscribeSeesLaterValues() throws {
        // Given a value already sent
        let (sender, first) = Broadcast<Int>.channel(capacity: 4)
        sender.send(1)
        // When a receiver subscribes and another value is sent
        let late = sender.subscribe()
        #expect(late.isEmpty)
        sender.send(2)
        // Then it gets only the later value; the first receiver gets both
        #expect(try late.tryRecv() == 2)
        #expect(throws: TryRecvError.empty) { try late.tryRecv() }
        #expect(try first.tryRecv() == 1)
        #expect(try first.tryRecv() == 2)
    }

    @Test("resubscribe starts at the current tail, whatever the original has read")
    func resubscribeStartsAtTail() throws {
        // Given a receiver with two unread values
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 4)
        sender.send(1)
        sender.send(2)
        #expect(receiver.count == 2)
        // When it is resubscribed
        let copy = receiver.resubscribe()
        // Then the copy owes nothing yet, and sees the next value; the original still has its two
        #expect(copy.isEmpty)
        #expect(copy.count == 0)
        sender.send(3)
        #expect(copy.count == 1)
        #expect(try copy.tryRecv() == 3)
        #expect(receiver.count == 3)
        #expect(try receiver.tryRecv() == 1)
    }

    @Test("receiverCount is exact across subscribe, resubscribe and deinit")
    func receiverCountExact() {
        // Given the first receiver
        let (sender, first) = Broadcast<Int>.channel(capacity: 4)
        #expect(sender.receiverCount == 1)
        // When receivers come and go, the count follows at once
        var second: Broadcast<Int>.Receiver? = sender.subscribe()
        #expect(sender.receiverCount == 2)
        var third: Broadcast<Int>.Receiver? = first.resubscribe()
        #expect(sender.receiverCount == 3)
        second = nil
        #expect(sender.receiverCount == 2)
        third = nil
        #expect(sender.receiverCount == 1)
        // And a dropped receiver's id is reused without disturbing the survivors
        var many = (0..<10).map { _ in sender.subscribe() }
        #expect(sender.receiverCount == 11)
        many.removeAll()
        #expect(sender.receiverCount == 1)
        #expect(second == nil && third == nil && many.isEmpty)
        #expect(sender.send(1) == 1)
    }

    // MARK: Lagging

    @Test("a lagged receiver gets the exact count, then resumes at the oldest held value")
    func lagExactThenContinues() async throws {
        // Given a ring of three and a receiver that reads nothing while ten values are sent
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 3)
        for value in 0..<10 { sender.send(value) }
        // When it receives, it learns it missed exactly seven
        await #expect(throws: RecvError.lagged(7)) { try await receiver.recv() }
        // Then it continues from the oldest value still held, in order
        #expect(try await receiver.recv() == 7)
        #expect(try await receiver.recv() == 8)
        #expect(try await receiver.recv() == 9)
        // And a second lag is counted from where it stood
        for value in 10..<15 { sender.send(value) }
        #expect(throws: TryRecvError.lagged(2)) { try receiver.tryRecv() }
        #expect(try receiver.tryRecv() == 12)
    }

    @Test("the Lagging example behaves as documented")
    func laggingExample() async throws {
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 2)
        for i in 1...5 { sender.send(i) }
        var missed: UInt64 = 0
        do {
            _ = try await receiver.recv()
        } catch Broadcast<Int>.RecvError.lagged(let count) {
            missed = count
        }
        #expect(missed == 3)
        #expect(try await receiver.recv() == 4)
        #expect(try await receiver.recv() == 5)
    }

    // MARK: Closing

    @Test("after the sender is gone each receiver drains what is left, then sees closed")
    func closeAfterDrain() async throws {
        // Given two receivers and three values, the second receiver having read one already
        var sender: Broadcast<Int>.Sender? = nil
        let (first, second): (Broadcast<Int>.Receiver, Broadcast<Int>.Receiver)
        do {
            let channel = Broadcast<Int>.channel(capacity: 4)
            sender = channel.sender
            first = channel.receiver
            second = channel.receiver.resubscribe()
        }
        for value in 1...3 { sender?.send(value) }
        #expect(try await second.recv() == 1)
        // When the sender goes away
        sender = nil
        #expect(sender == nil)
        // Then each receiver still gets what it had not read, then closed, every time after
        #expect(try await first.recv() == 1)
        #expect(try await first.recv() == 2)
        #expect(try await first.recv() == 3)
        await #expect(throws: RecvError.closed) { try await first.recv() }
        #expect(throws: TryRecvError.closed) { try first.tryRecv() }
        var values: [Int] = []
        #expect(try await second.recv(upTo: 8, into: &values) == 2)
        #expect(values == [2, 3])
        await #expect(throws: RecvError.closed) { try await second.recv(upTo: 8, into: &values) }
        // And a resubscription of a closed channel is closed at once
        await #expect(throws: RecvError.closed) { try await first.resubscribe().recv() }
    }

    @Test("the Closing example behaves as documented")
    func closingExample() async throws {
        let receiver = {
            let (sender, receiver) = Broadcast<String>.channel(capacity: 8)
            sender.send("last words")
            return receiver
        }()
        #expect(try await receiver.recv() == "last words")
        await #expect(throws: Broadcast<String>.RecvError.closed) { try await receiver.recv() }
    }

    @Test("waiting receivers are woken with closed when the sender goes")
    func closeWakesWaiters() async throws {
        // Given two receivers suspended in recv
        var sender: Broadcast<Int>.Sender?
        let first: Broadcast<Int>.Receiver
        (sender, first) = Broadcast<Int>.channel(capacity: 4)
        let second = first.resubscribe()
        let tasks = [first, second].map { receiver in
            Task { () -> RecvError? in
                do {
                    _ = try await receiver.recv()
                    return nil
                } catch let error as RecvError {
                    return error
                }
            }
        }
        await TestSupport.waitUntil("both receivers wait") { first.storage.waiterCount == 2 }
        // When the sender is dropped
        sender = nil
        #expect(sender == nil)
        // Then both end with closed
        for task in tasks { #expect(try await task.value == .closed) }
        #expect(first.storage.waiterCount == 0)
    }

    // MARK: Waiting

    @Test("a send wakes every waiting receiver and hands each the value")
    func sendWakesEveryWaiter() async throws {
        // Given three receivers suspended in recv
        let (sender, first) = Broadcast<Payload>.channel(capacity: 4)
        let receivers = [first, sender.subscribe(), sender.subscribe()]
        let tasks = receivers.map { receiver in Task { try await receiver.recv() } }
        await TestSupport.waitUntil("three receivers wait") { first.storage.waiterCount == 3 }
        // When one payload is sent
        let payload = Payload(42)
        #expect(sender.send(payload) == 3)
        // Then each gets that same object, and the channel kept nothing since nobody still owes it
        for task in tasks { #expect(try await task.value === payload) }
        #expect(first.storage.heldValueCount == 0)
        for receiver in receivers { #expect(receiver.isEmpty) }
    }

    @Test("tasks sharing one receiver each get a different value, oldest waiter first")
    func sharedReceiver() async throws {
        // Given two tasks waiting on the same receiver, the first one suspended first
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 4)
        let older = Task { try await receiver.recv() }
        await TestSupport.waitUntil("the first task waits") { receiver.storage.waiterCount == 1 }
        let newer = Task { try await receiver.recv() }
        await TestSupport.waitUntil("both tasks wait") { receiver.storage.waiterCount == 2 }
        // When one value is sent, only the older task gets it
        sender.send(1)
        #expect(try await older.value == 1)
        #expect(receiver.storage.waiterCount == 1)
        // And the next value goes to the other task
        sender.send(2)
        #expect(try await newer.value == 2)
        #expect(receiver.isEmpty)
    }

    // MARK: Batches

    @Test("recv(upTo:) takes the ready values in order, up to the limit")
    func batchTakesReady() async throws {
        // Given five ready values
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 8)
        for value in 1...5 { sender.send(value) }
        // When a batch of three and then a batch of ten are taken into one array
        var values: [Int] = []
        #expect(try await receiver.recv(upTo: 3, into: &values) == 3)
        #expect(try await receiver.recv(upTo: 10, into: &values) == 2)
        // Then the array holds all five, in order, and the receiver is drained
        #expect(values == [1, 2, 3, 4, 5])
        #expect(receiver.isEmpty)
        #expect(receiver.storage.heldValueCount == 0)
    }

    @Test("recv(upTo:) throws the lag when the receiver has lagged at the start, then continues")
    func batchLag() async throws {
        // Given a receiver that missed two values in a ring of two
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 2)
        for value in 0..<4 { sender.send(value) }
        var values: [Int] = []
        // When it receives a batch, the lag is thrown and nothing appended
        await #expect(throws: RecvError.lagged(2)) { try await receiver.recv(upTo: 8, into: &values) }
        #expect(values.isEmpty)
        // Then the next batch has the values still held
        #expect(try await receiver.recv(upTo: 8, into: &values) == 2)
        #expect(values == [2, 3])
    }

    @Test("recv(upTo:) waits for the first value when nothing is ready")
    func batchWaits() async throws {
        // Given a batch receive suspended on an empty channel
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 8)
        let task = Task { () -> [Int] in
            var values: [Int] = []
            _ = try await receiver.recv(upTo: 4, into: &values)
            return values
        }
        await TestSupport.waitUntil("the batch waits") { receiver.storage.waiterCount == 1 }
        // When a value is sent, then the batch returns with it
        sender.send(7)
        let values = try await task.value
        #expect(values.first == 7)
        #expect(values.count >= 1 && values.count <= 4)
    }

    // MARK: Cancellation

    @Test("a recv cancelled before it suspends throws and loses no value")
    func cancelBeforeSuspend() async throws {
        // Given a task that is cancelled before it calls recv on an empty channel
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 4)
        let task = Task { () -> Bool in
            withUnsafeCurrentTask { $0?.cancel() }
            do {
                _ = try await receiver.recv()
                return false
            } catch {
                return error is CancellationError
            }
        }
        // Then it ends with CancellationError and leaves no waiter behind
        #expect(await task.value)
        #expect(receiver.storage.waiterCount == 0)
        // And the next value is there for the next receive
        sender.send(1)
        #expect(try await receiver.recv() == 1)
    }

    @Test("a value already in the channel is returned even to a cancelled task")
    func readyValueBeatsCancellation() async throws {
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 4)
        sender.send(1)
        let task = Task { () -> Int in
            withUnsafeCurrentTask { $0?.cancel() }
            return try await receiver.recv()
        }
        #expect(try await task.value == 1)
    }

    @Test("a recv cancelled while suspended throws and loses no value")
    func cancelWhileSuspended() async throws {
        // Given a recv and a batch recv suspended on an empty channel
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 4)
        let single = Task { try await receiver.recv() }
        let batch = Task { () -> Int in
            var values: [Int] = []
            return try await receiver.recv(upTo: 4, into: &values)
        }
        await TestSupport.waitUntil("both wait") { receiver.storage.waiterCount == 2 }
        // When both tasks are cancelled
        single.cancel()
        batch.cancel()
        // Then both throw CancellationError and nothing is left waiting
        await #expect(throws: CancellationError.self) { try await single.value }
        await #expect(throws: CancellationError.self) { try await batch.value }
        #expect(receiver.storage.waiterCount == 0)
        // And the values sent afterwards all reach the next receives
        sender.send(1)
        sender.send(2)
        #expect(try await receiver.recv() == 1)
        #expect(try receiver.tryRecv() == 2)
    }

    @Test("a cancel racing a send either returns the value or leaves it for the next recv")
    func cancelRacingSend() async throws {
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 4)
        for round in 0..<200 {
            // Given a suspended recv
            let task = Task { try await receiver.recv() }
            await TestSupport.waitUntil("round \(round) waits") { receiver.storage.waiterCount == 1 }
            // When a send and a cancel happen at about the same time
            async let sent = sender.send(round)
            task.cancel()
            _ = await sent
            // Then the value is either returned by the cancelled recv or still there, never lost or duplicated
            do {
                #expect(try await task.value == round)
                #expect(throws: TryRecvError.empty) { try receiver.tryRecv() }
            } catch is CancellationError {
                #expect(try receiver.tryRecv() == round)
            }
        }
    }

    @Test("tryRecv reports empty while nothing is new, then the value, then closed")
    func tryRecvStates() throws {
        var sender: Broadcast<Int>.Sender?
        let receiver: Broadcast<Int>.Receiver
        (sender, receiver) = Broadcast<Int>.channel(capacity: 4)
        #expect(throws: TryRecvError.empty) { try receiver.tryRecv() }
        sender?.send(1)
        #expect(try receiver.tryRecv() == 1)
        sender = nil
        #expect(sender == nil)
        #expect(throws: TryRecvError.closed) { try receiver.tryRecv() }
    }

    @Test("send(contentsOf:) delivers a batch in order to every receiver, like sends one by one")
    func batchSendInOrder() async throws {
        let (sender, first) = Broadcast<Int>.channel(capacity: 8)
        let second = sender.subscribe()
        #expect(sender.send(contentsOf: [1, 2, 3]) == 2)
        sender.send(4)
        for receiver in [first, second] {
            var values: [Int] = []
            for _ in 0..<4 { values.append(try await receiver.recv()) }
            #expect(values == [1, 2, 3, 4])
        }
    }

    @Test("send(contentsOf:) past the capacity makes a receiver lag by exactly the overflow")
    func batchSendLagsExactly() async throws {
        // Given a receiver that read nothing, when 11 values go into a capacity of 4 in one batch
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 4)
        sender.send(contentsOf: Array(0..<11))
        // Then it misses exactly 7 and continues at the oldest value held.
        await #expect(throws: Broadcast<Int>.RecvError.lagged(7)) { try await receiver.recv() }
        var values: [Int] = []
        for _ in 0..<4 { values.append(try await receiver.recv()) }
        #expect(values == [7, 8, 9, 10])
    }

    @Test("send(contentsOf:) wakes a waiting receiver; with no receivers it stores nothing and returns 0")
    func batchSendWakesAndDrops() async throws {
        let (sender, receiver) = Broadcast<Int>.channel(capacity: 4)
        let waiting = Task { try await receiver.recv() }
        await TestSupport.waitUntil("the receiver waits") { receiver.storage.waiterCount == 1 }
        #expect(sender.send(contentsOf: [5, 6]) == 1)
        #expect(try await waiting.value == 5)
        #expect(try await receiver.recv() == 6)
        let (lonely, _) = Broadcast<Int>.channel(capacity: 4)
        #expect(lonely.send(contentsOf: [1, 2]) == 0)
        #expect(sender.send(contentsOf: [Int]()) == 1)
    }
}
