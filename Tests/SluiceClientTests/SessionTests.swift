import SluiceBroker
import SluiceClient
import SluiceIO
import SluiceWire
import Testing

@Suite("SluiceClient: connecting, ping, stats, closing", .timeLimit(.minutes(1)))
struct SessionTests {
    @Test("connect completes the handshake and reports the server's limits")
    func handshake() async throws {
        try await withTestServer(configure: { $0.maxFrameSize = 65_536 }) { address in
            let client = try await connect(address)
            #expect(client.server.maxFrameSize == 65_536)
            #expect(client.server.serverName.hasPrefix("sluiced"))
            try await within { try await client.ping() }
            await client.close()
        }
    }

    @Test("connect with a host:port string")
    func connectByString() async throws {
        try await withTestServer { address in
            let client = try await SluiceClient.connect(to: "127.0.0.1:\(address.port)")
            try await client.ping()
            await client.close()
        }
    }

    @Test("a bad address string is an invalid argument")
    func badAddress() async throws {
        await #expect(throws: SluiceError.self) { _ = try await SluiceClient.connect(to: "nowhere") }
        await #expect(throws: SluiceError.self) { _ = try await SluiceClient.connect(to: "example.com:7420") }
    }

    @Test("connecting where nobody listens throws cannotConnect")
    func refused() async throws {
        // Bind a port, then close it: nothing listens there afterwards.
        let loop = try EventLoop(name: "probe")
        defer { loop.shutdown() }
        let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0), on: loop)
        let address = listener.localAddress
        listener.close()
        do {
            _ = try await SluiceClient.connect(to: address)
            Issue.record("connected to a closed port")
        } catch let error as SluiceError {
            guard case .cannotConnect(let text) = error else {
                Issue.record("expected cannotConnect, got \(error)")
                return
            }
            #expect(text.contains("refused"))
        }
    }

    @Test("a wrong token is refused with AUTHENTICATION_FAILED; the right one is accepted")
    func token() async throws {
        try await withTestServer(configure: { $0.token = "s3cret" }) { address in
            do {
                _ = try await connect(address, token: "wrong")
                Issue.record("a wrong token was accepted")
            } catch let error as SluiceError {
                #expect(error.code == .authenticationFailed)
            }
            let client = try await connect(address, token: "s3cret")
            try await client.ping()
            await client.close()
        }
    }

    @Test("stats lists the server's counters")
    func stats() async throws {
        try await withTestServer { address in
            let client = try await connect(address)
            let counters = try await within { try await client.stats() }
            #expect(!counters.isEmpty)
            #expect(counters.allSatisfy { !$0.name.isEmpty })
            await client.close()
        }
    }

    @Test("after close, calls fail with connectionClosed(closedByClient) and subscriptions end normally")
    func close() async throws {
        try await withTestServer { address in
            let client = try await connect(address)
            let subscription = try await client.subscribe("a.b")
            try await client.publish("a.b", "before close", ack: true)
            try await within { await client.close() }
            let received = try await within { () async throws -> [String] in
                var received: [String] = []
                for try await case .message(let message) in subscription { received.append(text(message.payload)) }
                return received
            }
            #expect(received == ["before close"])
            do {
                try await client.publish("a.b", "after close")
                Issue.record("publish after close succeeded")
            } catch let error as SluiceError {
                #expect(error == .connectionClosed(.closedByClient))
            }
        }
    }

    @Test("a server shutdown fails waiting calls and ends subscriptions with GOODBYE")
    func serverShutdown() async throws {
        let (server, group) = try startTestServer(configure: { $0.queueCapacity = 1 })
        defer { group.shutdown() }
        let client = try await connect(server.address)
        let subscription = try await client.subscribe("x")
        try await client.push("full", "fills the queue", ack: true)
        // The queue is full: the server stops reading this connection, so this call waits until the end.
        let pending = Task { try await client.push("full", "waits", ack: true) }
        await server.shutdown()
        await #expect(throws: SluiceError.connectionClosed(.goodbye)) {
            try await within { try await pending.value }
        }
        await #expect(throws: SluiceError.connectionClosed(.goodbye)) {
            try await within { for try await _ in subscription {} }
        }
        await #expect(throws: SluiceError.connectionClosed(.goodbye)) { try await client.ping() }
        await client.close()
    }
}
