import SluiceIO
import SluiceWire
import Testing

@testable import SluiceBroker

/// The ERROR a connection ended with, after reading everything the server sent.
func closingError(_ client: RawClient) async throws -> Frame.ErrorReport? {
    let frames = try await client.framesUntilClose()
    guard case .error(let report) = frames.last else {
        Issue.record("expected a closing ERROR, got \(frames)")
        return nil
    }
    return report
}

/// A counter from STATS.
func stat(_ name: String, from client: RawClient) async throws -> UInt64? {
    let id = client.nextID()
    try await client.send(.stats(requestID: id))
    while true {
        if case .statsReply(let reply) = try await client.next(), reply.requestID == id {
            return reply.entries.first { $0.name == name }?.value
        }
    }
}

@Suite("Handshake, limits and bad input")
struct LimitTests {
    @Test("a first frame other than HELLO is HELLO_REQUIRED and a close")
    func helloRequired() async throws {
        let server = try TestServer()
        let client = try await RawClient.connect(to: server.address)
        try await client.send(.ping)
        #expect(try await closingError(client)?.code == .helloRequired)
        await server.shutdown()
    }

    @Test("an unsupported version is UNSUPPORTED_VERSION; a missing or wrong token is AUTHENTICATION_FAILED")
    func refusedHello() async throws {
        let server = try TestServer { $0.token = "s3cret" }
        let old = try await RawClient.connect(to: server.address)
        try await old.send(.hello(Frame.Hello(version: 2, clientName: "future", token: "s3cret")))
        #expect(try await closingError(old)?.code == .unsupportedVersion)
        for token in [nil, "wrong"] {
            let client = try await RawClient.connect(to: server.address)
            try await client.send(.hello(Frame.Hello(clientName: "x", token: token)))
            #expect(try await closingError(client)?.code == .authenticationFailed)
        }
        let good = try await server.client(token: "s3cret")
        try await good.send(.ping)
        #expect(try await good.next() == .pong)
        await server.shutdown()
    }

    @Test("frames sent right after HELLO are handled in order once the handshake succeeds")
    func pipelinedAfterHello() async throws {
        let server = try TestServer()
        let client = try await RawClient.connect(to: server.address)
        try await client.send(
            .hello(Frame.Hello(clientName: "eager")),
            .sub(Frame.Subscribe(requestID: 1, subscriptionID: 1, pattern: "x")),
            .pub(Frame.Publish(subject: "x", payload: "self")),
            .ping
        )
        guard case .welcome(let welcome) = try await client.next() else { Issue.record("no WELCOME"); return }
        #expect(welcome.maxFrameSize == 1 << 20 && welcome.version == 1)
        #expect(try await client.next() == .ok(requestID: 1))
        var rest = [try await client.next(), try await client.next()]
        rest.sort { a, _ in a == .pong }
        #expect(rest[0] == .pong && rest[1].payloadText == "self")
        await server.shutdown()
    }

    @Test("the client past max connections gets TOO_MANY_CONNECTIONS and a close; a slot frees when a client leaves")
    func maxConnections() async throws {
        let server = try TestServer { $0.maxConnections = 2 }
        let first = try await server.client()
        let second = try await server.client()
        let third = try await RawClient.connect(to: server.address)
        try await third.send(.hello(Frame.Hello(clientName: "third")))
        #expect(try await closingError(third)?.code == .tooManyConnections)
        #expect(try await stat("connections_refused", from: second) == 1)
        first.close()
        // Once the first is gone (its session ends asynchronously), a new client gets in.
        var admitted = false
        for _ in 0..<100 where !admitted {
            let next = try await RawClient.connect(to: server.address)
            try await next.send(.hello(Frame.Hello(clientName: "fourth")))
            if case .welcome = try await next.next() {
                admitted = true
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(admitted)
        await server.shutdown()
    }

    @Test("an announced length over the max frame size is FRAME_TOO_LARGE and a close; other clients are unaffected")
    func frameTooLarge() async throws {
        let server = try TestServer { $0.maxFrameSize = 1_024 }
        let bystander = try await server.client()
        try await bystander.subscribe("still.here", id: 1)
        let client = try await server.client()
        // A header announcing 1 GiB, and nothing else: the server must not wait for (or allocate) it.
        try await client.sendRaw([0x40, 0x00, 0x00, 0x00, 0x10])
        let report = try await closingError(client)
        #expect(report?.code == .frameTooLarge)
        #expect(report?.requestID == 0)
        try await bystander.send(.pub(Frame.Publish(subject: "still.here", payload: "yes")))
        #expect(try await bystander.next().payloadText == "yes")
        await server.shutdown()
    }

    @Test("bad input of every kind closes only its own connection with the matching ERROR; the server stays up")
    func badInput() async throws {
        let server = try TestServer()
        let bystander = try await server.client()
        let cases: [(String, [UInt8], ErrorCode)] = [
            ("unknown opcode", [0, 0, 0, 1, 0xEE], .unknownOpcode),
            ("zero length", [0, 0, 0, 0], .truncatedField),
            ("truncated PUB", [0, 0, 0, 3, 0x10, 0, 0], .truncatedField),
            ("subject overruns", [0, 0, 0, 8, 0x10, 0, 0, 0, 1, 0, 0, 0xFF], .lengthOverrun),
            ("bad UTF-8 subject", [0, 0, 0, 11, 0x10, 0, 0, 0, 1, 0, 0, 2, 0xC3, 0x28, 0], .invalidUTF8),
            ("reserved flag", [0, 0, 0, 10, 0x10, 0, 0, 0, 1, 0x80, 0, 1, 0x61, 0, 0], .invalidFlags),
            ("PING with a body", [0, 0, 0, 2, 0x03, 0x00], .trailingBytes),
        ]
        for (name, bytes, code) in cases {
            let client = try await server.client(name: name)
            try await client.sendRaw(bytes)
            #expect(try await closingError(client)?.code == code, "\(name)")
        }
        // Frames only a server sends, and a second HELLO.
        for frame: Frame in [
            .msg(Frame.Message(subscriptionID: 1, subject: "x", payload: "y")), .ok(requestID: 1),
            .hello(Frame.Hello(clientName: "again")),
        ] {
            let client = try await server.client()
            try await client.send(frame)
            #expect(try await closingError(client)?.code == .unexpectedFrame, "\(frame.opcode)")
        }
        // Random garbage from many connections at once.
        var generator = SplitMix64(seed: 42)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                let bytes = (0..<Int(generator.next() % 512 + 1)).map { _ in UInt8(truncatingIfNeeded: generator.next())
                }
                group.addTask {
                    let client = try await server.client()
                    try? await client.sendRaw(bytes)
                    client.close()
                }
            }
            try await group.waitForAll()
        }
        try await bystander.send(.ping)
        #expect(try await bystander.next() == .pong)
        #expect(try await stat("protocol_errors", from: bystander) ?? 0 >= 7)
        await server.shutdown()
    }

    @Test("SUB, CONSUME and WATCH past max subscriptions are TOO_MANY_SUBSCRIPTIONS")
    func maxSubscriptions() async throws {
        let server = try TestServer { $0.maxSubscriptions = 2 }
        let client = try await server.client()
        try await client.subscribe("a", id: 1)
        try await client.send(.watch(Frame.WatchKey(requestID: 2, subscriptionID: 2, key: "k")))
        try await client.expectOK(2)
        _ = try await client.next()  // the watch's current VALUE
        try await client.send(.sub(Frame.Subscribe(requestID: 3, subscriptionID: 3, pattern: "b")))
        try await client.expectError(3, .tooManySubscriptions)
        try await client.send(.consume(Frame.Consume(requestID: 4, subscriptionID: 4, credit: 1, queue: "q")))
        try await client.expectError(4, .tooManySubscriptions)
        await server.shutdown()
    }

    @Test("SET and WATCH of a new key past max keys, PUSH and CONSUME of a new queue past max queues are LIMIT_REACHED")
    func maxKeysAndQueues() async throws {
        let server = try TestServer {
            $0.maxKeys = 2
            $0.maxQueues = 1
        }
        let client = try await server.client()
        func set(_ id: UInt32, _ key: String) async throws {
            try await client.send(.set(Frame.SetKey(requestID: id, ackWanted: true, key: key, payload: "v")))
        }
        try await set(1, "a")
        try await client.expectOK(1)
        try await set(2, "b")
        try await client.expectOK(2)
        // A GET of a missing key does not create it
        try await client.send(.get(Frame.GetKey(requestID: 3, key: "missing")))
        #expect(try await client.next() == .value(Frame.Value(target: .get(requestID: 3), key: "missing", revision: 0)))
        try await set(4, "c")
        try await client.expectError(4, .limitReached)
        try await client.send(.watch(Frame.WatchKey(requestID: 5, subscriptionID: 5, key: "d")))
        try await client.expectError(5, .limitReached)
        // Existing keys still take new values and watchers
        try await set(6, "a")
        try await client.expectOK(6)
        try await client.send(.watch(Frame.WatchKey(requestID: 7, subscriptionID: 7, key: "b")))
        try await client.expectOK(7)
        _ = try await client.next()  // the watch's current VALUE
        // Queues: the first is created, a second is refused, the first still works
        try await client.send(.push(Frame.Push(requestID: 8, ackWanted: true, queue: "q1", payload: "m1")))
        try await client.expectOK(8)
        try await client.send(.push(Frame.Push(requestID: 9, ackWanted: true, queue: "q2", payload: "m2")))
        try await client.expectError(9, .limitReached)
        try await client.send(.consume(Frame.Consume(requestID: 10, subscriptionID: 10, credit: 1, queue: "q3")))
        try await client.expectError(10, .limitReached)
        try await client.send(.consume(Frame.Consume(requestID: 11, subscriptionID: 11, credit: 1, queue: "q1")))
        try await client.expectOK(11)
        #expect(try await client.next().payloadText == "m1")
        // The connection stayed open throughout
        try await client.send(.ping)
        #expect(try await client.next() == .pong)
        await server.shutdown()
    }

    @Test(
        "a silent client is PINGed at half the idle timeout; one that answers stays, one that does not is closed with IDLE_TIMEOUT"
    )
    func idleTimeout() async throws {
        let server = try TestServer(ownLoop: true) { $0.idleTimeout = .seconds(2) }
        let silent = try await server.client()
        // The lively client answers every PING from an event loop of its own: the shared loops and the cooperative
        // pool may be busy with other tests (under ThreadSanitizer, for seconds) for longer than the timeout.
        // (Shut down only after the client is closed, at the end: closing a stream deregisters it from its loop.)
        let livelyLoop = try EventLoop(name: "lively")
        let lively = try await RawClient.connect(to: server.address, on: livelyLoop)
        try await lively.send(.hello(Frame.Hello(clientName: "lively")))
        guard case .welcome = try await lively.next() else {
            Issue.record("no WELCOME")
            return
        }
        let answering = Task(executorPreference: livelyLoop) {
            while let frame = try? await lively.nextOrEnd(within: .seconds(5)) {
                if frame == .ping { try? await lively.send(.pong) }
            }
        }
        #expect(try await silent.next() == .ping)
        #expect(try await closingError(silent)?.code == .idleTimeout)
        try await Task.sleep(for: .seconds(3))
        try await lively.send(.stats(requestID: 1))
        answering.cancel()
        lively.close()
        await server.shutdown()
        livelyLoop.shutdown()
    }

    @Test("a connection that sends no HELLO in time is closed")
    func helloTimeout() async throws {
        let server = try TestServer { $0.helloTimeout = .milliseconds(200) }
        let client = try await RawClient.connect(to: server.address)
        let report = try await closingError(client)
        #expect(report?.code == .idleTimeout)
        await server.shutdown()
    }

    @Test(
        "a consumer that stops reading is closed as SLOW_CONSUMER once its outgoing bytes pass the limit; its messages go back"
    )
    func slowConsumer() async throws {
        let server = try TestServer {
            $0.maxPendingBytes = 64 * 1_024
            $0.maxCredit = 10_000
            $0.queueCapacity = 10_000
        }
        // A consumer that never reads: a raw socket, not a RawClient (whose reader always reads).
        let stuck = try await TCPStream.connect(to: server.address, on: testLoops.next())
        var encoder = FrameEncoder()
        try encoder.encode(.hello(Frame.Hello(clientName: "stuck")))
        try encoder.encode(.consume(Frame.Consume(requestID: 1, subscriptionID: 1, credit: 10_000, queue: "big")))
        try await stuck.write(encoder.bytes)
        let producer = try await server.client()
        let payload = Payload([UInt8](repeating: 7, count: 60_000))
        for _ in 0..<1_000 {
            try await producer.send(.push(Frame.Push(queue: "big", payload: payload)))
        }
        var slow: UInt64 = 0
        for _ in 0..<200 where slow == 0 {
            slow = try await stat("slow_consumers", from: producer) ?? 0
            if slow == 0 { try await Task.sleep(for: .milliseconds(25)) }
        }
        #expect(slow == 1)
        // Nothing was lost: every message is still counted in the queue.
        var depth: UInt64 = 0
        for _ in 0..<200 where depth != 1_000 {
            depth = try await stat("queue_depth", from: producer) ?? 0
            if depth != 1_000 { try await Task.sleep(for: .milliseconds(25)) }
        }
        #expect(depth == 1_000)
        stuck.close()
        await server.shutdown()
    }
}

/// A small deterministic generator for test inputs.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
