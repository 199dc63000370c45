import Glibc
import SluiceChannels
import SluiceIO
import SluiceWire
import Synchronization
import Testing

@testable import SluiceBroker

/// A test gave up waiting.
struct TimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(self.what)" }
}

/// Runs `body`, throwing ``TimedOut`` if it takes longer than `limit`.
func within<Result: Sendable>(
    _ limit: Duration = .seconds(10),
    _ what: String,
    _ body: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    try await withThrowingTaskGroup(of: Result?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let result = first else { throw TimedOut(what: what) }
        return result
    }
}

/// One event loop shared by every broker test: the server's and the clients' sockets all live on it.
let testLoops: EventLoopGroup = {
    do { return try EventLoopGroup(count: 2, name: "broker-test") } catch { fatalError("event loops: \(error)") }
}()

/// A broker on 127.0.0.1 and a free port, run in-process through ``Server/run(listener:configuration:shutdown:loops:log:)``.
final class TestServer: Sendable {
    let address: SocketAddress
    private let stop: Watch<Bool>.Sender
    private let task: Task<Void, Never>
    private let ownLoops: EventLoopGroup?

    /// - Parameter ownLoop: serve from an event loop of its own instead of the shared test loops, for tests whose
    ///   assertions depend on the server's timers firing on time while other tests load the shared ones.
    init(ownLoop: Bool = false, _ configure: (inout Configuration) -> Void = { _ in }) throws {
        var configuration = Configuration()
        configuration.shutdownGrace = .seconds(2)
        // Test bodies share the cooperative pool with hundreds of other tests (stress tests, TSan): a client may not
        // get to send HELLO, or anything, for seconds. Tests of these timeouts set them themselves.
        configuration.helloTimeout = .seconds(120)
        configuration.idleTimeout = .seconds(120)
        configure(&configuration)
        self.ownLoops = ownLoop ? try EventLoopGroup(count: 1, name: "broker-test-own") : nil
        let loops = self.ownLoops ?? testLoops
        let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0), on: loops.loops[0])
        self.address = listener.localAddress
        let (stop, stopped) = Watch<Bool>.channel(false)
        self.stop = stop
        let level: Log.Level = getenv("SLUICE_TEST_LOG") != nil ? .debug : .off
        let configured = configuration
        self.task = Task(executorPreference: listener.loop) {
            await Server.run(
                listener: listener,
                configuration: configured,
                shutdown: stopped,
                loops: loops,
                log: Log(level: level)
            )
        }
    }

    /// Starts the graceful shutdown and waits for the server to return.
    func shutdown() async {
        self.stop.send(true)
        await self.task.value
        self.ownLoops?.shutdown()
    }

    /// Connects a raw client and completes the handshake.
    func client(name: String = "test", token: String? = nil) async throws -> RawClient {
        let client = try await RawClient.connect(to: self.address)
        try await client.send(.hello(Frame.Hello(clientName: name, token: token)))
        let welcome = try await client.next()
        guard case .welcome = welcome else {
            Issue.record("expected WELCOME, got \(welcome)")
            throw TimedOut(what: "WELCOME")
        }
        return client
    }
}

/// A client speaking raw frames over a real socket: tests see exactly what the server sends.
final class RawClient: Sendable {
    let stream: TCPStream
    /// Frames as they arrive, and the end: nil once the server closed (or a decode error).
    private let frames: MPSC<Frame?>.Receiver
    private let reader: Task<Void, Never>
    private let requestIDs = Atomic<UInt32>(0)

    private init(stream: TCPStream) {
        self.stream = stream
        let (sender, receiver) = MPSC<Frame?>.unboundedChannel()
        self.frames = receiver
        self.reader = Task(executorPreference: stream.loop) {
            var decoder = FrameDecoder(maxFrameSize: 64 << 20)
            while let bytes = try? await stream.read(), !bytes.isEmpty {
                decoder.append(bytes)
                do {
                    while let frame = try decoder.next() { _ = sender.trySend(frame) }
                } catch {
                    break
                }
            }
            _ = sender.trySend(nil)
        }
    }

    deinit {
        self.reader.cancel()
        self.stream.close()
    }

    static func connect(to address: SocketAddress, on loop: EventLoop? = nil) async throws -> RawClient {
        RawClient(stream: try await TCPStream.connect(to: address, on: loop ?? testLoops.next()))
    }

    /// A fresh request id.
    func nextID() -> UInt32 { self.requestIDs.wrappingAdd(1, ordering: .relaxed).newValue }

    func send(_ frames: Frame...) async throws {
        var encoder = FrameEncoder()
        for frame in frames { try encoder.encode(frame) }
        try await self.stream.write(encoder.bytes)
    }

    func sendRaw(_ bytes: [UInt8]) async throws {
        try await self.stream.write(bytes)
    }

    /// The next frame; fails the test when the connection ends first or nothing comes within `limit`.
    func next(within limit: Duration = .seconds(10)) async throws -> Frame {
        guard let frame = try await self.nextOrEnd(within: limit) else {
            throw TimedOut(what: "a frame (connection ended)")
        }
        return frame
    }

    /// The next frame, or nil once the connection has ended.
    func nextOrEnd(within limit: Duration = .seconds(10)) async throws -> Frame? {
        let frames = self.frames
        let received: Frame?? = try await within(limit, "a frame") { try await frames.recv() }
        return received ?? nil
    }

    /// Whether a frame arrives within `limit` (for "nothing more is sent" checks; keep the limit short).
    func nothingArrives(within limit: Duration = .milliseconds(200)) async throws -> Bool {
        do {
            let frame = try await self.nextOrEnd(within: limit)
            if let frame { Issue.record("unexpected frame \(frame)") }
            return frame == nil
        } catch is TimedOut {
            return true
        }
    }

    /// Reads until the server closes; returns the frames that came first.
    func framesUntilClose(within limit: Duration = .seconds(10)) async throws -> [Frame] {
        var frames: [Frame] = []
        while let frame = try await self.nextOrEnd(within: limit) { frames.append(frame) }
        return frames
    }

    // Shorthands.

    func subscribe(_ pattern: String, id: UInt32) async throws {
        let request = self.nextID()
        try await self.send(.sub(Frame.Subscribe(requestID: request, subscriptionID: id, pattern: pattern)))
        try await self.expectOK(request)
    }

    func expectOK(_ requestID: UInt32) async throws {
        let frame = try await self.next()
        #expect(frame == .ok(requestID: requestID), "expected OK \(requestID)")
    }

    func expectError(_ requestID: UInt32, _ code: ErrorCode) async throws {
        let frame = try await self.next()
        guard case .error(let report) = frame else {
            Issue.record("expected ERROR \(code), got \(frame)")
            return
        }
        #expect(report.requestID == requestID)
        #expect(report.code == code, "\(report.message)")
    }

    func close() {
        self.stream.close()
    }
}

extension Frame {
    /// The MSG inside, or nil.
    var message: Frame.Message? {
        if case .msg(let message) = self { return message }
        return nil
    }

    var payloadText: String? {
        switch self {
        case .msg(let message): String(decoding: message.payload, as: UTF8.self)
        case .value(let value): String(decoding: value.payload, as: UTF8.self)
        case .response(let response): String(decoding: response.payload, as: UTF8.self)
        default: nil
        }
    }
}

/// A value tasks share in tests.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Locked<Value>
    init(_ value: Value) { self.mutex = Locked(value) }
    func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result { self.mutex.withLock { body(&$0) } }
}
