import SluiceBroker
import SluiceChannels
import SluiceClient
import SluiceIO
import SluiceWire
import Testing

/// Runs a real broker in-process on 127.0.0.1, port 0, for the duration of `body`, then shuts it down.
func withTestServer<Result>(
    configure: (inout Configuration) -> Void = { _ in },
    _ body: (SocketAddress) async throws -> Result
) async throws -> Result {
    let (server, group) = try startTestServer(configure: configure)
    let result: Swift.Result<Result, any Error>
    do {
        result = .success(try await body(server.address))
    } catch {
        result = .failure(error)
    }
    await server.shutdown()
    group.shutdown()
    return try result.get()
}

/// A stopper for a test server, for tests that shut the broker down in the middle.
final class ServerHandle: Sendable {
    let address: SocketAddress
    let stop: Watch<Bool>.Sender
    let server: Task<Void, Never>

    init(address: SocketAddress, stop: Watch<Bool>.Sender, server: Task<Void, Never>) {
        self.address = address
        self.stop = stop
        self.server = server
    }

    func shutdown() async {
        self.stop.send(true)
        await self.server.value
    }
}

/// Starts a broker the test stops itself.
func startTestServer(configure: (inout Configuration) -> Void = { _ in }) throws -> (ServerHandle, EventLoopGroup) {
    let group = try EventLoopGroup(count: 1, name: "test-broker")
    let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0), on: group.loops[0])
    var configuration = Configuration()
    configuration.shutdownGrace = .seconds(2)
    // The cooperative pool is shared with hundreds of other tests: a client may not get to send anything for
    // seconds, which must not look like a dead client.
    configuration.helloTimeout = .seconds(120)
    configuration.idleTimeout = .seconds(120)
    configure(&configuration)
    let (stop, stopped) = Watch<Bool>.channel(false)
    let settings = configuration
    let server = Task(executorPreference: group.loops[0]) {
        await Server.run(
            listener: listener,
            configuration: settings,
            shutdown: stopped,
            loops: group,
            log: Log(level: .off)
        )
    }
    return (ServerHandle(address: listener.localAddress, stop: stop, server: server), group)
}

struct TimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out: \(self.what)" }
}

/// Runs `body`, failing with ``TimedOut`` if it takes longer than `limit` (the body is cancelled then).
func within<Result: Sendable>(
    _ limit: Duration = .seconds(10),
    _ what: String = "operation",
    _ body: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    try await withThrowingTaskGroup(of: Result?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TimedOut(what: what) }
        return value
    }
}

/// The payload as text.
func text(_ payload: Payload) -> String { String(decoding: payload, as: UTF8.self) }

/// Connects a client to `address` with a name for the server's logs.
func connect(_ address: SocketAddress, _ name: String = "test", token: String? = nil) async throws -> SluiceClient {
    try await within(.seconds(10), "connect") { try await SluiceClient.connect(to: address, name: name, token: token) }
}
