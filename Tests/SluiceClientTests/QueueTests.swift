import SluiceBroker
import SluiceClient
import SluiceWire
import Testing

@Suite("SluiceClient: work queues", .timeLimit(.minutes(1)))
struct QueueTests {
    /// Takes `count` messages from `consumer`.
    func take(_ count: Int, from consumer: QueueConsumer) async throws -> [QueueMessage] {
        try await within { () async throws -> [QueueMessage] in
            var messages: [QueueMessage] = []
            for try await message in consumer {
                messages.append(message)
                if messages.count == count { break }
            }
            return messages
        }
    }

    @Test("pushed messages reach a consumer once each, in order, and are acked")
    func pushConsumeAck() async throws {
        try await withTestServer { address in
            let client = try await connect(address)
            try await client.push("jobs", "a", headers: ["k": "v"])
            try await client.push("jobs", "b")
            try await client.push("jobs", "c", ack: true)
            let consumer = try await client.consume("jobs", credit: 10)
            let messages = try await take(3, from: consumer)
            #expect(messages.map { text($0.payload) } == ["a", "b", "c"])
            #expect(messages.allSatisfy { !$0.redelivered && $0.queue == "jobs" })
            #expect(messages[0].headers["k"] == "v")
            for message in messages { try await message.ack(confirmed: true) }
            // Settled for good: acking again is refused.
            await #expect(throws: SluiceError.server(code: .unknownID, message: "")) {
                do {
                    try await messages[0].ack(confirmed: true)
                } catch let error as SluiceError {
                    throw SluiceError.server(code: error.code ?? .notPermitted, message: "")
                }
            }
            await client.close()
        }
    }

    @Test("a NACKed message is delivered again, marked redelivered")
    func nack() async throws {
        try await withTestServer { address in
            let client = try await connect(address)
            try await client.push("jobs", "retry me", ack: true)
            let consumer = try await client.consume("jobs", credit: 1)
            let first = try await take(1, from: consumer)[0]
            #expect(!first.redelivered)
            try await first.nack()
            let second = try await take(1, from: consumer)[0]
            #expect(second.redelivered)
            #expect(text(second.payload) == "retry me")
            try await second.ack(confirmed: true)
            await client.close()
        }
    }

    @Test("messages a consumer held when its client closed go to another consumer, marked redelivered")
    func redeliveryAfterClose() async throws {
        try await withTestServer { address in
            let producer = try await connect(address, "producer")
            let leaving = try await connect(address, "leaving")
            try await producer.push("jobs", "one", ack: true)
            try await producer.push("jobs", "two", ack: true)
            let held = try await take(2, from: try await leaving.consume("jobs", credit: 2))
            #expect(held.map { text($0.payload) } == ["one", "two"])
            await leaving.close()
            let staying = try await connect(address, "staying")
            let again = try await take(2, from: try await staying.consume("jobs", credit: 2))
            #expect(Set(again.map { text($0.payload) }) == ["one", "two"])
            #expect(again.allSatisfy { $0.redelivered })
            for message in again { try await message.ack() }
            await staying.close()
            await producer.close()
        }
    }

    @Test("credit bounds unsettled messages: the next comes only after an ack")
    func credit() async throws {
        try await withTestServer { address in
            let client = try await connect(address)
            for index in 0..<3 { try await client.push("jobs", Payload("\(index)"), ack: true) }
            let consumer = try await client.consume("jobs", credit: 1)
            let first = try await take(1, from: consumer).first
            #expect(first.map { text($0.payload) } == "0")
            try await first?.ack()
            let second = try await take(1, from: consumer)
            #expect(second.map { text($0.payload) } == ["1"])
            await client.close()
        }
    }

    @Test("PUSH with noWait on a full queue fails with QUEUE_FULL")
    func queueFull() async throws {
        try await withTestServer(configure: { $0.queueCapacity = 1 }) { address in
            let client = try await connect(address)
            try await client.push("small", "fits", noWait: true, ack: true)
            do {
                try await client.push("small", "does not", noWait: true, ack: true)
                Issue.record("a push into a full queue succeeded")
            } catch let error as SluiceError {
                #expect(error.code == .queueFull)
            }
            try await client.ping()
            await client.close()
        }
    }
}
