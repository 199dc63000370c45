import SluiceBroker
import SluiceClient
import SluiceWire
import Testing

@Suite("SluiceClient: publish and subscribe", .timeLimit(.minutes(1)))
struct SubjectTests {
    @Test("a wildcard subscription receives matching messages in order, with headers")
    func wildcard() async throws {
        try await withTestServer { address in
            let subscriber = try await connect(address, "subscriber")
            let publisher = try await connect(address, "publisher")
            let subscription = try await subscriber.subscribe("orders.*")
            try await publisher.publish("orders.eu", "1", headers: ["trace": "abc"])
            try await publisher.publish("orders.eu.late", "not matched")
            try await publisher.publish("orders.us", "2")
            try await publisher.publish("orders.eu", "3", ack: true)
            let messages = try await within { () async throws -> [Message] in
                var messages: [Message] = []
                for try await case .message(let message) in subscription {
                    messages.append(message)
                    if messages.count == 3 { break }
                }
                return messages
            }
            #expect(messages.map { text($0.payload) } == ["1", "2", "3"])
            #expect(messages.map(\.subject) == ["orders.eu", "orders.us", "orders.eu"])
            #expect(messages[0].headers["trace"] == "abc")
            await subscriber.close()
            await publisher.close()
        }
    }

    @Test("a bad subject is refused before anything is sent")
    func badSubject() async throws {
        try await withTestServer { address in
            let client = try await connect(address)
            for subject in ["", "a..b", "orders.*", "has space"] {
                do {
                    try await client.publish(subject, "x")
                    Issue.record("published to '\(subject)'")
                } catch let error as SluiceError {
                    guard case .invalidArgument = error else {
                        Issue.record("expected invalidArgument, got \(error)")
                        continue
                    }
                }
            }
            await #expect(throws: SluiceError.self) { _ = try await client.subscribe("a.>.b") }
            try await client.ping()  // the connection is fine
            await client.close()
        }
    }

    @Test("a message over the server's frame limit is refused before it is sent")
    func tooLarge() async throws {
        try await withTestServer(configure: { $0.maxFrameSize = 1_024 }) { address in
            let client = try await connect(address)
            await #expect(throws: SluiceError.self) {
                try await client.publish("big", Payload([UInt8](repeating: 1, count: 2_000)))
            }
            try await client.publish("big", Payload([UInt8](repeating: 1, count: 900)), ack: true)
            await client.close()
        }
    }

    @Test("unsubscribe ends the sequence after what was buffered; later messages are not delivered")
    func unsubscribe() async throws {
        try await withTestServer { address in
            let client = try await connect(address)
            let subscription = try await client.subscribe("news")
            try await client.publish("news", "kept", ack: true)
            try await client.ping()
            try await within { try await client.unsubscribe(subscription) }
            try await client.publish("news", "after", ack: true)
            let seen = try await within { () async throws -> [String] in
                var seen: [String] = []
                for try await case .message(let message) in subscription { seen.append(text(message.payload)) }
                return seen
            }
            #expect(!seen.contains("after"))
            await client.close()
        }
    }

    @Test("a subscriber that does not read gets LAGGED with the exact number it missed")
    func lagged() async throws {
        let total = 3_000
        try await withTestServer(configure: {
            $0.subjectBuffer = 8
            $0.maxPendingBytes = 4_096
            $0.publishStall = .zero
        }) { address in
            let subscriber = try await connect(address, "slow")
            let publisher = try await connect(address, "fast")
            let subscription = try await subscriber.subscribe("ticks", bufferSize: 4)
            for index in 0..<total {
                try await publisher.publish("ticks", Payload("tick \(index) " + String(repeating: "x", count: 64)))
            }
            try await publisher.ping()
            // Only now start reading.
            let (messages, lagEvents, missed) = try await within(.seconds(30), "draining") {
                () async throws -> (Int, Int, UInt64) in
                var messages = 0
                var lagEvents = 0
                var missed: UInt64 = 0
                for try await event in subscription {
                    switch event {
                    case .message: messages += 1
                    case .lagged(let count):
                        lagEvents += 1
                        missed += count
                    }
                    if UInt64(messages) + missed == UInt64(total) { break }
                }
                return (messages, lagEvents, missed)
            }
            #expect(lagEvents >= 1)
            #expect(missed > 0)
            #expect(UInt64(messages) + missed == UInt64(total))
            await subscriber.close()
            await publisher.close()
        }
    }
}

@Suite("Queue groups through SluiceClient", .timeLimit(.minutes(1)))
struct QueueGroupTests {
    @Test("two members of a queue group share the messages round robin: each message reaches exactly one of them")
    func queueGroup() async throws {
        try await withTestServer { address in
            let client = try await connect(address)
            let first = try await client.subscribe("work", queueGroup: "g")
            let second = try await client.subscribe("work", queueGroup: "g")
            for index in 0..<10 { try await client.publish("work", Payload("\(index)")) }
            var received: [String] = []
            for sequence in [first, second] {
                received += try await within { () async throws -> [String] in
                    var payloads: [String] = []
                    for try await event in sequence {
                        guard case .message(let message) = event else { continue }
                        payloads.append(String(decoding: message.payload, as: UTF8.self))
                        if payloads.count == 5 { break }
                    }
                    return payloads
                }
            }
            #expect(received.sorted() == (0..<10).map { "\($0)" }.sorted())
            await client.close()
        }
    }
}
