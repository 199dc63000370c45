import Glibc
import SluiceIO
import SluiceWire
import Testing

@testable import SluiceBroker

@Suite("Graceful shutdown")
struct ShutdownTests {
    @Test("shutdown flushes what is queued, sends GOODBYE last to every client, and returns")
    func goodbye() async throws {
        let server = try TestServer()
        let subscriber = try await server.client()
        try await subscriber.subscribe("s", id: 1)
        let other = try await server.client()
        try await other.send(.pub(Frame.Publish(requestID: 1, ackWanted: true, subject: "s", payload: "queued")))
        try await other.expectOK(1)
        await server.shutdown()
        let frames = try await subscriber.framesUntilClose()
        #expect(frames == [.msg(Frame.Message(subscriptionID: 1, subject: "s", payload: "queued")), .goodbye])
        #expect(try await other.framesUntilClose() == [.goodbye])
        // The listener is closed: nobody new gets in.
        await #expect(throws: (any Error).self) {
            let late = try await RawClient.connect(to: server.address)
            try await late.send(.hello(Frame.Hello(clientName: "late")))
            if try await late.nextOrEnd() == nil { throw TimedOut(what: "closed") }
        }
    }

    @Test("a client that does not read cannot hold shutdown past the grace period")
    func graceExpires() async throws {
        let server = try TestServer {
            $0.shutdownGrace = .milliseconds(300)
            $0.maxCredit = 10_000
            $0.queueCapacity = 10_000
            $0.maxPendingBytes = 64 << 20
        }
        let stuck = try await TCPStream.connect(to: server.address, on: testLoops.next())
        var encoder = FrameEncoder()
        try encoder.encode(.hello(Frame.Hello(clientName: "stuck")))
        try encoder.encode(.consume(Frame.Consume(requestID: 1, subscriptionID: 1, credit: 10_000, queue: "q")))
        try await stuck.write(encoder.bytes)
        let producer = try await server.client()
        let payload = Payload([UInt8](repeating: 1, count: 50_000))
        for _ in 0..<400 { try await producer.send(.push(Frame.Push(queue: "q", payload: payload))) }
        try await producer.send(.ping)
        #expect(try await producer.next() == .pong)
        let clock = ContinuousClock()
        let start = clock.now
        try await within(.seconds(10), "shutdown") { await server.shutdown() }
        #expect(clock.now - start < .seconds(5))
        stuck.close()
    }
}

/// `sluiced` as a child process, on a free port, with its standard error in a file.
final class DaemonProcess {
    let pid: pid_t
    private(set) var port: UInt16 = 0
    let logPath: String

    /// The built `sluiced` next to the test bundle (`swift test` builds it), or `$SLUICED`.
    static var binary: String {
        if let path = getenv("SLUICED") { return String(cString: path) }
        var buffer = [CChar](repeating: 0, count: 4_096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = String(decoding: buffer[0..<max(0, count)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var directory = exe
        while let slash = directory.lastIndex(of: "/") {
            directory = String(directory[..<slash])
            let candidate = directory + "/sluiced"
            if access(candidate, X_OK) == 0 { return candidate }
            if directory.hasSuffix("/debug") || directory.hasSuffix("/release") { break }
        }
        return directory + "/sluiced"
    }

    /// Starts `sluiced` and waits (without blocking a thread of the cooperative pool) for its `server.start` line.
    static func start(_ arguments: [String] = []) async throws -> DaemonProcess {
        let daemon = try DaemonProcess(arguments)
        for _ in 0..<1_000 {
            if let port = daemon.announcedPort() {
                daemon.port = port
                return daemon
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TimedOut(what: "sluiced to start; log: \(daemon.log)")
    }

    /// The port in the `server.start` line, once it is there.
    private func announcedPort() -> UInt16? {
        guard let line = Self.lines(self.logPath).first(where: { $0.contains("event=server.start") }),
            let listen = line.split(separator: " ").first(where: { $0.hasPrefix("listen=") }),
            let colon = listen.lastIndex(of: ":")
        else { return nil }
        return UInt16(listen[listen.index(after: colon)...])
    }

    private init(_ arguments: [String]) throws {
        let binary = Self.binary
        guard access(binary, X_OK) == 0 else {
            throw TimedOut(what: "the sluiced binary at \(binary): run `swift build --product sluiced` first")
        }
        self.logPath = "/tmp/sluiced-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 2, self.logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Generous timeouts: under a loaded test run a client may not get to send HELLO for seconds.
        let argv =
            [binary, "--port", "0", "--log-level", "debug", "--hello-timeout", "2m", "--idle-timeout", "2m"] + arguments
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, binary, &actions, nil, &cArguments, environ)
        guard status == 0 else { throw TimedOut(what: "posix_spawn: \(status)") }
        self.pid = pid
    }

    var address: SocketAddress { get throws { try SocketAddress(host: "127.0.0.1", port: self.port) } }

    var log: [String] { Self.lines(self.logPath) }

    static func lines(_ path: String) -> [String] {
        guard let file = fopen(path, "r") else { return [] }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    func signal(_ signal: Int32) { kill(self.pid, signal) }

    /// Waits for the process to exit; its exit status, or nil if it did not exit within `limit`.
    func waitForExit(within limit: Duration = .seconds(15)) async throws -> Int32? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            var status: Int32 = 0
            if waitpid(self.pid, &status, WNOHANG) == self.pid {
                // WIFEXITED / WEXITSTATUS, spelled out (the macros do not import).
                return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    deinit {
        var status: Int32 = 0
        if waitpid(self.pid, &status, WNOHANG) == 0 {
            kill(self.pid, SIGKILL)
            waitpid(self.pid, &status, 0)
        }
        unlink(self.logPath)
    }
}

@Suite("The sluiced binary, end to end", .serialized)
struct DaemonEndToEndTests {
    @Test(
        "SIGTERM: clients get GOODBYE, the daemon exits 0 and its last line counts the queue messages not acknowledged"
    )
    func sigterm() async throws {
        let daemon = try await DaemonProcess.start()
        let address = try daemon.address
        let producer = try await RawClient.connect(to: address)
        try await producer.send(.hello(Frame.Hello(clientName: "producer")))
        _ = try await producer.next()
        try await push(producer, "orders", (0..<10).map { "o\($0)" })
        try await push(producer, "audit", ["a"])
        let consumer = try await RawClient.connect(to: address)
        try await consumer.send(.hello(Frame.Hello(clientName: "consumer")))
        _ = try await consumer.next()
        try await consume(consumer, "orders", id: 1, credit: 4)
        // ACK three; the fourth stays unacknowledged.
        for _ in 0..<3 {
            let (id, _, _) = try await nextDelivery(consumer)
            try await consumer.send(.ack(Frame.Acknowledgement(requestID: 100, ackWanted: true, deliveryID: id)))
        }
        var acked = 0
        var held = 0
        while acked < 3 || held < 4 {
            let frame = try await consumer.next()
            if frame == .ok(requestID: 100) { acked += 1 } else if frame.message != nil { held += 1 }
        }

        daemon.signal(SIGTERM)
        #expect(try await producer.framesUntilClose().last == .goodbye)
        #expect(try await consumer.framesUntilClose().last == .goodbye)
        #expect(try await daemon.waitForExit() == 0)
        let last = try #require(daemon.log.last)
        #expect(last.contains("event=server.stopped"), "\(last)")
        #expect(last.contains("unacked=8"), "7 orders + 1 audit: \(last)")
        #expect(last.contains("unacked_by_queue=\"audit=1,orders=7\""), "\(last)")
        #expect(daemon.log.contains { $0.contains("event=conn.close") && $0.contains("reason=shutdown") })
    }

    @Test("a second signal exits at once")
    func secondSignal() async throws {
        let daemon = try await DaemonProcess.start(["--shutdown-grace", "1m"])
        // A client that never reads keeps the graceful shutdown waiting.
        let stuck = try await TCPStream.connect(to: try daemon.address, on: testLoops.next())
        var encoder = FrameEncoder()
        try encoder.encode(.hello(Frame.Hello(clientName: "stuck")))
        for index in 0..<2_000 {
            try encoder.encode(
                .sub(
                    Frame.Subscribe(
                        requestID: UInt32(index + 1),
                        subscriptionID: UInt32(index + 1),
                        pattern: "x.\(index)"
                    )
                )
            )
        }
        try await stuck.write(encoder.bytes)
        try await Task.sleep(for: .milliseconds(200))
        daemon.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(200))
        daemon.signal(SIGTERM)
        let status = try await daemon.waitForExit(within: .seconds(10))
        #expect(status != nil, "exited")
        stuck.close()
    }

    @Test("a subscriber that stops reading while 1 GB is published does not push the daemon's peak RSS past its bounds")
    func memoryBound() async throws {
        // Bounds: 64 buffered messages of 64 KiB per pattern (4 MiB) plus 4 MiB of outgoing bytes.
        let daemon = try await DaemonProcess.start([
            "--subject-buffer", "64", "--max-pending-bytes", "4MiB", "--log-level", "info",
        ])
        let address = try daemon.address
        let baseline = try #require(Self.peakRSS(daemon.pid))
        let stuck = try await TCPStream.connect(to: address, on: testLoops.next())
        var encoder = FrameEncoder()
        try encoder.encode(.hello(Frame.Hello(clientName: "stuck")))
        try encoder.encode(.sub(Frame.Subscribe(requestID: 1, subscriptionID: 1, pattern: "firehose")))
        try await stuck.write(encoder.bytes)
        let publisher = try await RawClient.connect(to: address)
        try await publisher.send(.hello(Frame.Hello(clientName: "publisher")))
        _ = try await publisher.next()
        try await Task.sleep(for: .milliseconds(100))  // the SUB is handled

        // 1 GiB in 16,384 PUBs of 64 KiB, written 64 frames (4 MiB) at a time.
        encoder.removeAll()
        let payload = Payload([UInt8](repeating: 0x5A, count: 65_536))
        for _ in 0..<64 { try encoder.encode(.pub(Frame.Publish(subject: "firehose", payload: payload))) }
        let chunk = encoder.bytes
        do {
            for _ in 0..<256 { try await publisher.stream.write(chunk) }
        } catch {
            Issue.record("publishing failed: \(error); daemon log: \(daemon.log.suffix(5))")
            throw error
        }
        try await publisher.send(
            .pub(Frame.Publish(requestID: 1, ackWanted: true, subject: "firehose", payload: "end"))
        )
        try await publisher.expectOK(1)

        let peak = try #require(Self.peakRSS(daemon.pid))
        let growth = peak - baseline
        print(
            "memoryBound: 1 GiB published to a stalled subscriber; sluiced peak RSS \(baseline >> 10) KiB -> \(peak >> 10) KiB"
        )
        // 8 MiB of configured buffers; allow for read buffers, allocator slack and the runtime: 48 MiB, far below 1 GiB.
        #expect(growth < 48 << 20, "peak RSS grew by \(growth >> 20) MiB (from \(baseline >> 20) MiB)")
        stuck.close()
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
    }

    /// VmHWM (peak resident set) of `pid`, in bytes.
    static func peakRSS(_ pid: pid_t) -> Int? {
        for line in DaemonProcess.lines("/proc/\(pid)/status") where line.hasPrefix("VmHWM:") {
            let digits = line.filter(\.isNumber)
            return Int(digits).map { $0 * 1_024 }
        }
        return nil
    }

    @Test("a bad flag exits 2 with one readable line")
    func badFlag() async throws {
        for arguments in [
            ["--port", "99999"], ["--nope"], ["--idle-timeout", "soon"], ["--log-level"], ["--spin", "1s"],
        ] {
            let binary = DaemonProcess.binary
            let logPath = "/tmp/sluiced-flag-\(getpid()).log"
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            var cArguments = ([binary] + arguments).map { strdup($0) } + [nil]
            var pid: pid_t = 0
            #expect(posix_spawn(&pid, binary, &actions, nil, &cArguments, environ) == 0)
            for pointer in cArguments { free(pointer) }
            posix_spawn_file_actions_destroy(&actions)
            var status: Int32 = 0
            while waitpid(pid, &status, WNOHANG) == 0 { try await Task.sleep(for: .milliseconds(5)) }
            #expect((status >> 8) & 0xff == 2, "\(arguments)")
            let lines = DaemonProcess.lines(logPath)
            #expect(lines.count == 1 && lines[0].hasPrefix("sluiced: "), "\(lines)")
            unlink(logPath)
        }
    }
}
