import SluiceIO
import SluiceWire
import Testing

@testable import SluiceBroker

@Suite("Subjects: PUB, SUB, UNSUB over real sockets")
struct PubSubTests {
    @Test("a subscriber receives every message published after its SUB's OK, in publish order, byte for byte")
    func ordering() async throws {
        let server = try TestServer()
        let subscriber = try await server.client()
        let publisher = try await server.client()
        try await subscriber.subscribe("orders.created", id: 7)

        // When 200 messages are published without acknowledgement, then one with.
        for index in 0..<200 {
            try await publisher.send(.pub(Frame.Publish(subject: "orders.created", payload: Payload("m\(index)"))))
        }
        try await publisher.send(
            .pub(Frame.Publish(requestID: 9, ackWanted: true, subject: "orders.created", payload: "end"))
        )
        try await publisher.expectOK(9)

        // Then they arrive in order with the subscription id and subject.
        for index in 0..<200 {
            let frame = try await subscriber.next()
            #expect(
                frame
                    == .msg(Frame.Message(subscriptionID: 7, subject: "orders.created", payload: Payload("m\(index)")))
            )
        }
        #expect(try await subscriber.next().payloadText == "end")
        await server.shutdown()
    }

    @Test("wildcards: * matches one token, > one or more, and headers pass through")
    func wildcards() async throws {
        let server = try TestServer()
        let client = try await server.client()
        try await client.subscribe("orders.*", id: 1)
        try await client.subscribe("orders.>", id: 2)
        try await client.subscribe("orders.eu.created", id: 3)

        var headers = Headers()
        headers.append(name: "trace", value: "abc")
        try await client.send(.pub(Frame.Publish(subject: "orders.eu.created", headers: headers, payload: "a")))
        try await client.send(.pub(Frame.Publish(subject: "orders.new", payload: "b")))
        try await client.send(.pub(Frame.Publish(subject: "orders", payload: "c")))  // matches nothing
        try await client.send(.pub(Frame.Publish(requestID: 5, ackWanted: true, subject: "other", payload: "d")))

        // The OK and the MSGs come from different tasks, so they may interleave; each subscription's MSGs are in order.
        var seen: [UInt32: [String]] = [:]
        var acknowledged = false
        for _ in 0..<5 {
            let frame = try await client.next()
            if frame == .ok(requestID: 5) {
                acknowledged = true
                continue
            }
            let message = try #require(frame.message)
            seen[message.subscriptionID, default: []].append(String(decoding: message.payload, as: UTF8.self))
            if message.payload == Payload("a") { #expect(message.headers["trace"] == "abc") }
        }
        #expect(acknowledged)
        #expect(seen[1] == ["b"])
        #expect(seen[2] == ["a", "b"])
        #expect(seen[3] == ["a"])
        #expect(try await client.nothingArrives())
        await server.shutdown()
    }

    @Test("one publish reaches every subscriber of every connection, sharing one stored payload")
    func fanOut() async throws {
        let server = try TestServer()
        var subscribers: [RawClient] = []
        for _ in 0..<5 {
            let client = try await server.client()
            try await client.subscribe("news", id: 1)
            subscribers.append(client)
        }
        let publisher = try await server.client()
        try await publisher.send(.pub(Frame.Publish(subject: "news", payload: "hello")))
        for client in subscribers {
            #expect(try await client.next().payloadText == "hello")
        }
        await server.shutdown()
    }

    @Test("UNSUB is answered OK and no MSG for it follows; an unknown id is UNKNOWN_ID")
    func unsubscribe() async throws {
        let server = try TestServer()
        let client = try await server.client()
        try await client.subscribe("a", id: 1)
        try await client.send(.pub(Frame.Publish(subject: "a", payload: "before")))
        try await client.send(.unsub(Frame.Unsubscribe(requestID: 50, subscriptionID: 1)))
        // MSG for it may arrive before the OK, never after.
        var frame = try await client.next()
        if frame.message != nil { frame = try await client.next() }
        #expect(frame == .ok(requestID: 50))
        try await client.send(.pub(Frame.Publish(requestID: 51, ackWanted: true, subject: "a", payload: "after")))
        try await client.expectOK(51)
        #expect(try await client.nothingArrives())

        try await client.send(.unsub(Frame.Unsubscribe(requestID: 52, subscriptionID: 1)))
        try await client.expectError(52, .unknownID)
        await server.shutdown()
    }

    @Test("a pattern without subscribers is forgotten: the table does not grow with subjects")
    func forgetsSubjects() async throws {
        let server = try TestServer()
        let client = try await server.client()
        for index in 0..<50 {
            try await client.subscribe("s.\(index)", id: UInt32(index + 1))
        }
        try await client.send(.stats(requestID: 900))
        guard case .statsReply(let before) = try await client.next() else { Issue.record("no STATS_REPLY"); return }
        #expect(before.entries.first { $0.name == "subjects" }?.value == 50)
        for index in 0..<50 {
            let request = client.nextID()
            try await client.send(.unsub(Frame.Unsubscribe(requestID: request, subscriptionID: UInt32(index + 1))))
            try await client.expectOK(request)
        }
        for index in 0..<1_000 {
            try await client.send(.pub(Frame.Publish(subject: "nobody.\(index)", payload: "x")))
        }
        try await client.send(.stats(requestID: 901))
        guard case .statsReply(let after) = try await client.next() else { Issue.record("no STATS_REPLY"); return }
        #expect(after.entries.first { $0.name == "subjects" }?.value == 0)
        #expect(after.entries.first { $0.name == "published" }?.value == 1_000)
        await server.shutdown()
    }

    @Test("bad subjects and patterns get BAD_SUBJECT with the request id and the connection stays open")
    func badSubjects() async throws {
        let server = try TestServer()
        let client = try await server.client()
        try await client.send(.pub(Frame.Publish(requestID: 1, subject: "a..b", payload: "x")))
        try await client.expectError(1, .badSubject)
        try await client.send(.pub(Frame.Publish(requestID: 2, subject: "a.*", payload: "x")))
        try await client.expectError(2, .badSubject)
        // The reader remembers the last valid subject; a different one is still checked, the empty one included
        try await client.send(
            .pub(Frame.Publish(subject: "a.b", payload: "x")),
            .pub(Frame.Publish(requestID: 6, subject: "", payload: "x")),
            .pub(Frame.Publish(subject: "a.b", payload: "x")),
            .pub(Frame.Publish(requestID: 7, subject: "a.b.", payload: "x"))
        )
        try await client.expectError(6, .badSubject)
        try await client.expectError(7, .badSubject)
        try await client.send(.sub(Frame.Subscribe(requestID: 3, subscriptionID: 1, pattern: "a.>.b")))
        try await client.expectError(3, .badSubject)
        try await client.send(.sub(Frame.Subscribe(requestID: 4, subscriptionID: 1, pattern: "")))
        try await client.expectError(4, .badSubject)
        try await client.subscribe("ok", id: 1)
        try await client.send(.sub(Frame.Subscribe(requestID: 5, subscriptionID: 1, pattern: "other")))
        try await client.expectError(5, .duplicateID)
        try await client.send(.ping)
        #expect(try await client.next() == .pong)
        await server.shutdown()
    }

    /// A server with a subject buffer of 8 and an outbox of 4 KiB (the subjects' half, 2 KiB, holds one large frame
    /// at a time), a raw subscriber to `t` (subscription 1) that has read its WELCOME and OK and nothing else, and a
    /// publisher.
    static func slowSubscriber(publishStall: Duration) async throws -> (TestServer, RawClient, RawClient) {
        let server = try TestServer {
            $0.subjectBuffer = 8
            $0.maxPendingBytes = 4_096
            $0.publishStall = publishStall
        }
        let subscriber = try await RawClient.connect(to: server.address)
        try await subscriber.send(.hello(Frame.Hello(clientName: "slow")))
        let publisher = try await server.client()
        #expect(try await subscriber.next() != .ping)  // WELCOME
        try await subscriber.subscribe("t", id: 1)
        return (server, subscriber, publisher)
    }

    @Test("a subscriber that falls more than the buffer behind gets one LAGGED with the exact count, then continues")
    func lagged() async throws {
        // Given a buffer of 8, an outbox so small that the subscriber's forwarder must wait, and no pause for the
        // publisher (see `publisherStall` for the pause).
        let (server, subscriber, publisher) = try await Self.slowSubscriber(publishStall: .zero)

        // When the publisher sends 2,000 messages of 100 KB each while the subscriber does not read (its socket
        // buffers fill, so the forwarder stops pulling from the subject's buffer).
        let big = Payload([UInt8](repeating: 0x61, count: 100_000))
        let total = 2_000
        for index in 0..<total {
            var headers = Headers()
            headers.append(name: "n", value: "\(index)")
            try await publisher.send(.pub(Frame.Publish(subject: "t", headers: headers, payload: big)))
        }
        try await publisher.send(.pub(Frame.Publish(requestID: 77, ackWanted: true, subject: "t", payload: "last")))
        try await publisher.expectOK(77)

        // Then reading now yields messages in order, LAGGED counts that add up exactly to what is missing, and the
        // last message.
        var received = 0
        var missed: UInt64 = 0
        var lastIndex = -1
        var sawLast = false
        while !sawLast {
            let frame = try await subscriber.next()
            switch frame {
            case .msg(let message):
                if message.payload == Payload("last") {
                    sawLast = true
                } else {
                    let index = Int(message.headers["n"] ?? "") ?? -1
                    #expect(index > lastIndex, "messages in order")
                    lastIndex = index
                    received += 1
                }
            case .lagged(let lag):
                #expect(lag.subscriptionID == 1)
                missed += lag.missed
            default:
                Issue.record("unexpected \(frame)")
            }
        }
        #expect(missed > 0, "the subscriber lagged")
        #expect(received + Int(missed) == total, "received \(received) + missed \(missed) == \(total)")
        await server.shutdown()
    }

    @Test("a publisher is paused while a subscriber is far behind, so a burst reaches a late reader whole")
    func publisherStall() async throws {
        // Given a buffer of 8, an outbox that holds one large frame, and a generous pause.
        let (server, subscriber, publisher) = try await Self.slowSubscriber(publishStall: .seconds(60))

        // When a publisher sends 300 messages of 100 KB (far more than the socket buffers, the outbox and the
        // subject buffer hold) while the subscriber reads nothing for a while
        let big = Payload([UInt8](repeating: 0x61, count: 100_000))
        let total = 300
        let publishing = Task {
            for index in 0..<total {
                var headers = Headers()
                headers.append(name: "n", value: "\(index)")
                try await publisher.send(.pub(Frame.Publish(subject: "t", headers: headers, payload: big)))
            }
            try await publisher.send(.pub(Frame.Publish(requestID: 77, ackWanted: true, subject: "t", payload: "end")))
            try await publisher.expectOK(77)
        }
        try await Task.sleep(for: .milliseconds(300))

        // Then the subscriber, reading now, gets every message in order and no LAGGED
        var received = 0
        while true {
            let frame = try await subscriber.next()
            guard case .msg(let message) = frame else {
                Issue.record("expected only MSG frames, got \(frame)")
                break
            }
            if message.payload == Payload("end") { break }
            #expect(Int(message.headers["n"] ?? "") == received, "messages in order, none missing")
            received += 1
        }
        #expect(received == total)
        try await publishing.value
        // And STATS shows the pause
        try await publisher.send(.stats(requestID: 900))
        guard case .statsReply(let stats) = try await publisher.next() else {
            Issue.record("no STATS_REPLY")
            return
        }
        #expect((stats.entries.first { $0.name == "publisher_stalls" }?.value ?? 0) >= 1)
        #expect(stats.entries.first { $0.name == "lagged" }?.value == 0)
        await server.shutdown()
    }

    @Test("queue group members share a pattern's messages: each once per group, round robin, beside plain subscribers")
    func queueGroups() async throws {
        let server = try TestServer()
        var members: [RawClient] = []
        for _ in 0..<3 {
            let client = try await server.client()
            let request = client.nextID()
            try await client.send(
                .sub(Frame.Subscribe(requestID: request, subscriptionID: 5, pattern: "jobs.*", queueGroup: "workers"))
            )
            try await client.expectOK(request)
            members.append(client)
        }
        let watcher = try await server.client()
        try await watcher.subscribe("jobs.>", id: 1)
        let publisher = try await server.client()
        for index in 0..<30 {
            try await publisher.send(.pub(Frame.Publish(subject: "jobs.j\(index)", payload: Payload("\(index)"))))
        }
        var shared: [String] = []
        for member in members {
            for _ in 0..<10 {
                let message = try #require(try await member.next().message)
                #expect(message.subscriptionID == 5)
                shared.append(String(decoding: message.payload, as: UTF8.self))
            }
            #expect(try await member.nothingArrives(within: .milliseconds(50)))
        }
        #expect(shared.sorted() == (0..<30).map { "\($0)" }.sorted(), "each message once across the group")
        for index in 0..<30 { #expect(try await watcher.next().payloadText == "\(index)") }

        // After a member's UNSUB is answered it gets nothing more; the others share everything.
        try await members[0].send(.unsub(Frame.Unsubscribe(requestID: 90, subscriptionID: 5)))
        try await members[0].expectOK(90)
        for index in 0..<10 {
            try await publisher.send(.pub(Frame.Publish(subject: "jobs.k\(index)", payload: "k")))
        }
        var rest = 0
        for member in members[1...] {
            for _ in 0..<5 { if try await member.next().message != nil { rest += 1 } }
        }
        #expect(rest == 10)
        #expect(try await members[0].nothingArrives())
        try await members[0].send(
            .sub(Frame.Subscribe(requestID: 91, subscriptionID: 6, pattern: "x", queueGroup: "bad group"))
        )
        try await members[0].expectError(91, .badName)
        await server.shutdown()
    }
}
