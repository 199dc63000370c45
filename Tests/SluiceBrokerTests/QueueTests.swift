import SluiceIO
import SluiceWire
import Synchronization
import Testing

@testable import SluiceBroker

/// Pushes `payloads` to `queue` with acknowledgement and waits for each OK.
func push(_ client: RawClient, _ queue: String, _ payloads: [String], noWait: Bool = false) async throws {
    for payload in payloads {
        let id = client.nextID()
        try await client.send(
            .push(Frame.Push(requestID: id, ackWanted: true, noWait: noWait, queue: queue, payload: Payload(payload)))
        )
        try await client.expectOK(id)
    }
}

/// Sends CONSUME and waits for its OK (deliveries may follow it at once).
func consume(_ client: RawClient, _ queue: String, id: UInt32, credit: UInt32) async throws {
    let request = client.nextID()
    try await client.send(.consume(Frame.Consume(requestID: request, subscriptionID: id, credit: credit, queue: queue)))
    try await client.expectOK(request)
}

/// The next queue delivery: (delivery id, payload, redelivered).
func nextDelivery(_ client: RawClient) async throws -> (UInt64, String, Bool) {
    let frame = try await client.next()
    guard let message = frame.message, case .queue(let id, let redelivered) = message.delivery else {
        Issue.record("expected a queue MSG, got \(frame)")
        throw TimedOut(what: "a queue MSG")
    }
    return (id, String(decoding: message.payload, as: UTF8.self), redelivered)
}

@Suite("Queues: PUSH, CONSUME, ACK, NACK over real sockets")
struct QueueTests {
    @Test("messages pushed before any consumer exists wait, then each goes to exactly one consumer")
    func exactlyOnce() async throws {
        let server = try TestServer()
        let producer = try await server.client()
        try await push(producer, "jobs", (0..<100).map { "j\($0)" })

        let first = try await server.client()
        let second = try await server.client()
        try await consume(first, "jobs", id: 1, credit: 10)
        try await consume(second, "jobs", id: 1, credit: 10)

        // Both consume and ACK until all 100 are settled; together they see each message exactly once.
        let seen = Shared<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in [first, second] {
                group.addTask {
                    while seen.withLock({ $0.count }) < 100 {
                        guard let frame = try? await client.next(within: .milliseconds(500)) else { continue }
                        guard let message = frame.message, case .queue(let id, let redelivered) = message.delivery
                        else {
                            continue  // the OK of an ACK
                        }
                        #expect(!redelivered)
                        seen.withLock { $0.append(String(decoding: message.payload, as: UTF8.self)) }
                        try await client.send(.ack(Frame.Acknowledgement(deliveryID: id)))
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(seen.withLock { $0.sorted() } == (0..<100).map { "j\($0)" }.sorted())
        await server.shutdown()
    }

    @Test("a consumer holds at most its credit of unacknowledged messages; each ACK lets one more through")
    func credit() async throws {
        let server = try TestServer()
        let client = try await server.client()
        try await push(client, "work", (0..<10).map { "w\($0)" })
        try await consume(client, "work", id: 3, credit: 3)
        var ids: [UInt64] = []
        for index in 0..<3 {
            let (id, payload, _) = try await nextDelivery(client)
            #expect(payload == "w\(index)")
            ids.append(id)
        }
        #expect(try await client.nothingArrives(), "no fourth message before an ACK")
        try await client.send(.ack(Frame.Acknowledgement(requestID: 40, ackWanted: true, deliveryID: ids[0])))
        var frames = [try await client.next(), try await client.next()]
        frames.sort { a, _ in a == .ok(requestID: 40) }
        #expect(frames[0] == .ok(requestID: 40))
        #expect(frames[1].payloadText == "w3")
        // ACKing the same delivery twice is UNKNOWN_ID.
        try await client.send(.ack(Frame.Acknowledgement(requestID: 41, deliveryID: ids[0])))
        try await client.expectError(41, .unknownID)
        await server.shutdown()
    }

    @Test("NACK delivers the message again, marked redelivered")
    func nack() async throws {
        let server = try TestServer()
        let client = try await server.client()
        try await push(client, "q", ["a", "b"])
        try await consume(client, "q", id: 1, credit: 1)
        let (id, payload, redelivered) = try await nextDelivery(client)
        #expect(payload == "a" && !redelivered)
        try await client.send(.nack(Frame.Acknowledgement(deliveryID: id)))
        let (again, payloadAgain, redeliveredAgain) = try await nextDelivery(client)
        #expect(payloadAgain == "a" && redeliveredAgain && again != id)
        try await client.send(.ack(Frame.Acknowledgement(deliveryID: again)))
        let (_, next, nextRedelivered) = try await nextDelivery(client)
        #expect(next == "b" && !nextRedelivered)
        await server.shutdown()
    }

    @Test("messages a consumer held when it disconnected go to another consumer, marked redelivered, none lost")
    func redeliveryOnDisconnect() async throws {
        let server = try TestServer()
        let producer = try await server.client()
        try await push(producer, "q", ["1", "2", "3", "4"])
        let leaving = try await server.client()
        try await consume(leaving, "q", id: 1, credit: 2)
        _ = try await nextDelivery(leaving)
        _ = try await nextDelivery(leaving)
        let staying = try await server.client()
        try await consume(staying, "q", id: 9, credit: 10)
        // It gets the two the first consumer did not hold.
        let fresh = [try await nextDelivery(staying), try await nextDelivery(staying)]
        #expect(fresh.map(\.1) == ["3", "4"] && fresh.allSatisfy { !$0.2 })
        leaving.close()
        let again = [try await nextDelivery(staying), try await nextDelivery(staying)]
        #expect(again.map(\.1) == ["1", "2"])
        #expect(again.allSatisfy { $0.2 }, "marked redelivered")
        await server.shutdown()
    }

    @Test("PUSH with NO_WAIT on a full queue fails at once with QUEUE_FULL and the connection stays open")
    func queueFull() async throws {
        let server = try TestServer { $0.queueCapacity = 2 }
        let client = try await server.client()
        try await push(client, "small", ["a", "b"], noWait: true)
        try await client.send(.push(Frame.Push(requestID: 99, noWait: true, queue: "small", payload: "c")))
        try await client.expectError(99, .queueFull)
        try await client.send(.push(Frame.Push(requestID: 100, noWait: true, queue: "bad..name", payload: "c")))
        try await client.expectError(100, .badName)
        // The name checked last (and remembered) was the bad one; the good one is still full, not refused by name
        try await client.send(.push(Frame.Push(requestID: 101, noWait: true, queue: "small", payload: "d")))
        try await client.expectError(101, .queueFull)
        try await client.send(.ping)
        #expect(try await client.next() == .pong)
        await server.shutdown()
    }

    @Test(
        "a full queue stops the broker reading the producer (TCP backpressure); it resumes as consumers drain, nothing lost"
    )
    func backpressure() async throws {
        let server = try TestServer { $0.queueCapacity = 4 }
        let producer = try await server.client()
        let total = 40
        // The producer pipelines every PUSH with acknowledgement without waiting.
        for index in 0..<total {
            try await producer.send(
                .push(
                    Frame.Push(
                        requestID: UInt32(index + 1),
                        ackWanted: true,
                        queue: "bp",
                        payload: Payload("p\(index)")
                    )
                )
            )
        }
        // Only the capacity is accepted: the fifth PUSH waits, and the broker reads nothing after it.
        for index in 0..<4 { try await producer.expectOK(UInt32(index + 1)) }
        #expect(try await producer.nothingArrives(within: .milliseconds(300)), "the producer is stalled")
        try await producer.send(.ping)
        #expect(try await producer.nothingArrives(within: .milliseconds(200)), "not even PING is read while stalled")

        // A consumer drains; the producer resumes and every message arrives once, in order.
        let consumer = try await server.client()
        try await consume(consumer, "bp", id: 1, credit: 5)
        var received: [String] = []
        while received.count < total {
            let (id, payload, _) = try await nextDelivery(consumer)
            received.append(payload)
            try await consumer.send(.ack(Frame.Acknowledgement(deliveryID: id)))
        }
        #expect(received == (0..<total).map { "p\($0)" })
        var oks = 0
        var pong = false
        while oks < total - 4 || !pong {
            let frame = try await producer.next()
            if frame == .pong { pong = true } else if case .ok = frame { oks += 1 } else { Issue.record("\(frame)") }
        }
        await server.shutdown()
    }

    @Test("CONSUME again with the same id changes the credit; credit 0 pauses delivery")
    func creditChange() async throws {
        let server = try TestServer()
        let client = try await server.client()
        try await push(client, "c", ["a", "b", "c"])
        try await consume(client, "c", id: 1, credit: 0)
        #expect(try await client.nothingArrives())
        try await consume(client, "c", id: 1, credit: 2)
        #expect(try await nextDelivery(client).1 == "a")
        #expect(try await nextDelivery(client).1 == "b")
        // Another queue under the same id is DUPLICATE_ID.
        try await client.send(.consume(Frame.Consume(requestID: 60, subscriptionID: 1, credit: 1, queue: "other")))
        try await client.expectError(60, .duplicateID)
        await server.shutdown()
    }
}
