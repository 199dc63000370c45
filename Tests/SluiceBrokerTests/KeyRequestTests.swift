import SluiceIO
import SluiceWire
import Testing

@testable import SluiceBroker

@Suite("Keys and requests over real sockets")
struct KeyRequestTests {
    @Test("GET of a missing key is revision 0; SET then GET returns the value with its revision")
    func setGet() async throws {
        let server = try TestServer()
        let client = try await server.client()
        try await client.send(.get(Frame.GetKey(requestID: 1, key: "config.color")))
        #expect(
            try await client.next() == .value(Frame.Value(target: .get(requestID: 1), key: "config.color", revision: 0))
        )
        try await client.send(.set(Frame.SetKey(requestID: 2, ackWanted: true, key: "config.color", payload: "blue")))
        try await client.expectOK(2)
        try await client.send(.set(Frame.SetKey(key: "config.color", payload: "green")))
        try await client.send(.get(Frame.GetKey(requestID: 3, key: "config.color")))
        #expect(
            try await client.next()
                == .value(Frame.Value(target: .get(requestID: 3), key: "config.color", revision: 2, payload: "green"))
        )
        try await client.send(.set(Frame.SetKey(requestID: 4, key: "bad key", payload: "x")))
        try await client.expectError(4, .badName)
        await server.shutdown()
    }

    @Test("a watcher gets the current value at once, then newer ones; a slow watcher skips but ends on the newest")
    func watch() async throws {
        let server = try TestServer()
        let writer = try await server.client()
        try await writer.send(.set(Frame.SetKey(requestID: 1, ackWanted: true, key: "k", payload: "v0")))
        try await writer.expectOK(1)
        let watcher = try await server.client()
        try await watcher.send(.watch(Frame.WatchKey(requestID: 5, subscriptionID: 8, key: "k")))
        try await watcher.expectOK(5)
        #expect(
            try await watcher.next()
                == .value(Frame.Value(target: .watch(subscriptionID: 8), key: "k", revision: 1, payload: "v0"))
        )
        // 500 SETs in a burst: the watcher sees an increasing subsequence ending on the last.
        for index in 1...500 {
            try await writer.send(.set(Frame.SetKey(key: "k", payload: Payload("v\(index)"))))
        }
        var revisions: [UInt64] = []
        while revisions.last != 501 {
            guard case .value(let value) = try await watcher.next() else { Issue.record("expected VALUE"); return }
            revisions.append(value.revision)
            if value.revision == 501 { #expect(String(decoding: value.payload, as: UTF8.self) == "v500") }
        }
        #expect(revisions == revisions.sorted() && Set(revisions).count == revisions.count)
        #expect(try await watcher.nothingArrives())
        // UNSUB ends the watch.
        try await watcher.send(.unsub(Frame.Unsubscribe(requestID: 6, subscriptionID: 8)))
        try await watcher.expectOK(6)
        try await writer.send(.set(Frame.SetKey(requestID: 7, ackWanted: true, key: "k", payload: "after")))
        try await writer.expectOK(7)
        #expect(try await watcher.nothingArrives())
        await server.shutdown()
    }

    @Test("a REQUEST reaches one responder as MSG with a reply id; its REPLY comes back as RESPONSE")
    func requestReply() async throws {
        let server = try TestServer()
        let responder = try await server.client()
        try await responder.subscribe("math.double", id: 4)
        let requester = try await server.client()
        try await requester.send(.request(Frame.Request(requestID: 21, subject: "math.double", payload: "21")))
        let ask = try #require(try await responder.next().message)
        guard case .request(let replyID) = ask.delivery else { Issue.record("not a request: \(ask)"); return }
        #expect(ask.subscriptionID == 4 && ask.subject == "math.double" && ask.payload == Payload("21"))
        try await responder.send(.reply(Frame.Reply(requestID: 2, ackWanted: true, replyID: replyID, payload: "42")))
        try await responder.expectOK(2)
        #expect(try await requester.next() == .response(Frame.Response(requestID: 21, payload: "42")))
        // A second REPLY to the same id is too late.
        try await responder.send(.reply(Frame.Reply(requestID: 3, replyID: replyID, payload: "43")))
        try await responder.expectError(3, .unknownID)
        await server.shutdown()
    }

    @Test("NO_RESPONDERS at once when nobody serves the subject")
    func noResponders() async throws {
        let server = try TestServer()
        let client = try await server.client()
        try await client.send(
            .request(Frame.Request(requestID: 1, timeoutMilliseconds: 60_000, subject: "nobody.home", payload: "?"))
        )
        try await client.expectError(1, .noResponders)
        await server.shutdown()
    }

    @Test(
        "RESPONDER_GONE at once when the chosen responder disconnects or unsubscribes before replying",
        arguments: [true, false]
    )
    func responderGone(disconnects: Bool) async throws {
        let server = try TestServer()
        let responder = try await server.client()
        try await responder.subscribe("svc", id: 1)
        let requester = try await server.client()
        try await requester.send(
            .request(Frame.Request(requestID: 8, timeoutMilliseconds: 60_000, subject: "svc", payload: "?"))
        )
        _ = try await responder.next()
        if disconnects {
            responder.close()
        } else {
            try await responder.send(.unsub(Frame.Unsubscribe(requestID: 2, subscriptionID: 1)))
            try await responder.expectOK(2)
        }
        try await requester.expectError(8, .responderGone)
        await server.shutdown()
    }

    @Test("TIMEOUT at the requester's deadline; the late REPLY is UNKNOWN_ID")
    func timeout() async throws {
        let server = try TestServer()
        let responder = try await server.client()
        try await responder.subscribe("slow", id: 1)
        let requester = try await server.client()
        let clock = ContinuousClock()
        let start = clock.now
        try await requester.send(
            .request(Frame.Request(requestID: 3, timeoutMilliseconds: 150, subject: "slow", payload: "?"))
        )
        let ask = try #require(try await responder.next().message)
        try await requester.expectError(3, .timeout)
        #expect(clock.now - start >= .milliseconds(150))
        guard case .request(let replyID) = ask.delivery else { return }
        try await responder.send(.reply(Frame.Reply(requestID: 4, replyID: replyID, payload: "late")))
        try await responder.expectError(4, .unknownID)
        await server.shutdown()
    }

    @Test("a short timeout fires on time while a longer request waits, and the longer one can still be answered")
    func timeoutsInterleave() async throws {
        let server = try TestServer()
        let responder = try await server.client()
        try await responder.subscribe("slow", id: 1)
        let requester = try await server.client()
        // Given a request that may wait a minute
        try await requester.send(
            .request(Frame.Request(requestID: 1, timeoutMilliseconds: 60_000, subject: "slow", payload: "long"))
        )
        let long = try #require(try await responder.next().message)
        // When a request with a 100 ms timeout follows
        let clock = ContinuousClock()
        let start = clock.now
        try await requester.send(
            .request(Frame.Request(requestID: 2, timeoutMilliseconds: 100, subject: "slow", payload: "short"))
        )
        _ = try #require(try await responder.next().message)
        // Then it times out (not before its deadline, and not at the long one's)
        try await requester.expectError(2, .timeout)
        #expect(clock.now - start >= .milliseconds(100))
        #expect(clock.now - start < .seconds(30))
        // And the long one is still answered by its REPLY
        guard case .request(let replyID) = long.delivery else {
            Issue.record("not a request: \(long)")
            return
        }
        try await responder.send(.reply(Frame.Reply(requestID: 9, replyID: replyID, payload: "done")))
        guard case .response(let response) = try await requester.next() else {
            Issue.record("no RESPONSE")
            return
        }
        #expect(response.requestID == 1)
        #expect(response.payload == Payload("done"))
        await server.shutdown()
    }

    @Test("requests are spread over responders, and past max_inflight_requests the requester is not read")
    func inflightCap() async throws {
        let server = try TestServer { $0.maxInflightRequests = 2 }
        let responder = try await server.client()
        try await responder.subscribe("svc", id: 1)
        let requester = try await server.client()
        for id in 1...3 {
            try await requester.send(
                .request(
                    Frame.Request(requestID: UInt32(id), timeoutMilliseconds: 60_000, subject: "svc", payload: "?")
                )
            )
        }
        var asks: [UInt64] = []
        for _ in 0..<2 {
            guard case .request(let replyID) = try #require(try await responder.next().message).delivery else { return }
            asks.append(replyID)
        }
        #expect(try await responder.nothingArrives(), "the third request waits for a free slot")
        try await responder.send(.reply(Frame.Reply(replyID: asks[0], payload: "one")))
        #expect(try await requester.next().payloadText == "one")
        let third = try #require(try await responder.next().message)
        #expect(third.subject == "svc")
        await server.shutdown()
    }

    @Test(
        "requests to a responder that stops reading fill its socket; once it reads, every MSG arrives in order, whole",
        .timeLimit(.minutes(2))
    )
    func requestsToAStalledResponder() async throws {
        // A request's MSG is written at once by the requester's loop when the responder has no writer running
        // (`Session.writeNow`); a socket that takes only part of it hands the rest to the responder's own writer.
        let server = try TestServer()
        // Given a responder on a bare socket, which reads its WELCOME and OK and then nothing
        let responder = try await TCPStream.connect(to: server.address, on: testLoops.next())
        var encoder = FrameEncoder()
        try encoder.encode(.hello(Frame.Hello(clientName: "stalled")))
        try encoder.encode(.sub(Frame.Subscribe(requestID: 1, subscriptionID: 7, pattern: "svc")))
        try await responder.write(encoder.bytes)
        var decoder = FrameDecoder(maxFrameSize: 64 << 20)
        func nextFrame() async throws -> Frame {
            while true {
                if let frame = try decoder.next() { return frame }
                let bytes = try await responder.read()
                guard !bytes.isEmpty else { throw TimedOut(what: "a frame (connection ended)") }
                decoder.append(bytes)
            }
        }
        guard case .welcome = try await nextFrame() else { Issue.record("no WELCOME"); return }
        #expect(try await nextFrame() == .ok(requestID: 1))
        // When 40 requests of 128 KiB each (5 MiB, more than the loopback socket buffers hold) are sent to it
        let requester = try await server.client()
        let count = 40
        for index in 0..<count {
            var body = [UInt8](repeating: UInt8(index), count: 128 << 10)
            body[0] = 0xA5
            try await requester.send(
                .request(
                    Frame.Request(
                        requestID: UInt32(100 + index),
                        timeoutMilliseconds: 60_000,
                        subject: "svc",
                        payload: Payload(body)
                    )
                )
            )
        }
        try await Task.sleep(for: .milliseconds(300))  // the broker fills the socket meanwhile
        // Then, as it reads, each MSG arrives whole and in order; and each REPLY comes back as its RESPONSE
        for index in 0..<count {
            let frame = try await nextFrame()
            let ask = try #require(frame.message)
            guard case .request(let replyID) = ask.delivery else { Issue.record("not a request: \(ask)"); return }
            #expect(ask.payload.count == 128 << 10 && ask.payload.first == 0xA5 && ask.payload.last == UInt8(index))
            var reply = FrameEncoder()
            try reply.encode(.reply(Frame.Reply(replyID: replyID, payload: Payload("\(index)"))))
            try await responder.write(reply.bytes)
        }
        for index in 0..<count {
            #expect(
                try await requester.next()
                    == .response(Frame.Response(requestID: UInt32(100 + index), payload: Payload("\(index)")))
            )
        }
        responder.close()
        await server.shutdown()
    }
}
