import Glibc
import Testing

@testable import SluiceIO

/// Runs an echo server on a fresh loop (port 0) for the duration of `body`.
func withEchoServer(
    host: String = "127.0.0.1",
    loop: EventLoop? = nil,
    _ body: (SocketAddress, EventLoop) async throws -> Void
) async throws {
    let loop = try loop ?? EventLoop(name: "test-loop")
    defer { loop.shutdown() }
    let listener = try TCPListener(bind: SocketAddress(host: host, port: 0), on: loop)
    let server = Task(executorPreference: loop) {
        await withDiscardingTaskGroup { group in
            while let stream = try? await listener.accept() {
                group.addTask {
                    while let bytes = try? await stream.read(), !bytes.isEmpty {
                        guard (try? await stream.write(bytes)) != nil else { return }
                    }
                    try? stream.shutdown(.write)
                }
            }
        }
    }
    defer {
        listener.close()
        server.cancel()
    }
    try await body(listener.localAddress, loop)
}

/// Reads until `count` bytes arrived (or the end).
func readExactly(_ count: Int, from stream: TCPStream) async throws -> [UInt8] {
    var received: [UInt8] = []
    while received.count < count {
        let bytes = try await stream.read()
        if bytes.isEmpty { break }
        received += bytes
    }
    return received
}

struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The descriptors an epoll descriptor of this process watches, from `/proc/self/fdinfo` (`tfd:` lines).
func watchedDescriptors(ofEpoll epoll: Int32) -> Set<Int32> {
    let fd = open("/proc/self/fdinfo/\(epoll)", O_RDONLY)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(fd, &chunk, chunk.count)
        guard count > 0 else { break }
        bytes += chunk[0..<count]
    }
    var watched: Set<Int32> = []
    for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("tfd:") {
        if let number = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap({
            Int32($0)
        }) {
            watched.insert(number)
        }
    }
    return watched
}

@Suite("TCP over loopback", .timeLimit(.minutes(2)))
struct TCPTests {
    @Test("a stream closed after its loop shut down deregisters from the loop's own epoll descriptor")
    func closeAfterShutdown() async throws {
        let loop = try EventLoop(name: "test-loop")
        let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0), on: loop)
        let client = try await TCPStream.connect(to: listener.localAddress, on: loop)
        #expect(watchedDescriptors(ofEpoll: loop.epoll).contains(client.fd))
        loop.shutdown()
        // Give the loop's thread time to leave its run loop. It used to close its epoll descriptor there, so a later
        // deregistration hit a closed descriptor (EBADF, which SluiceIO traps on as a bug) or, once the number was
        // reused, somebody else's descriptor. The descriptor now lives as long as the loop object.
        try await Task.sleep(for: .milliseconds(200))
        #expect(watchedDescriptors(ofEpoll: loop.epoll).contains(client.fd), "still the loop's epoll, still watching")
        client.close()
        #expect(!watchedDescriptors(ofEpoll: loop.epoll).contains(client.fd))
        listener.close()
        #expect(throws: IOError.self) { try client.descriptor("read") }
    }

    @Test("a message sent to an echo server comes back unchanged")
    func echo() async throws {
        try await withEchoServer { address, loop in
            let client = try await TCPStream.connect(to: address, on: loop)
            try await client.write(Array("hello, sluice".utf8))
            #expect(try await readExactly(13, from: client) == Array("hello, sluice".utf8))
        }
    }

    @Test("10 MB written in random chunk sizes echo back intact, in order")
    func tenMegabytes() async throws {
        try await withEchoServer { address, loop in
            let client = try await TCPStream.connect(to: address, on: loop)
            var random = SplitMix64(state: 42)
            let total = 10 * 1024 * 1024
            let payload = (0..<total).map { _ in UInt8.random(in: 0...255, using: &random) }
            let writer = Task {
                var offset = 0
                var random = SplitMix64(state: 7)
                while offset < total {
                    let size = min(Int.random(in: 1...100_000, using: &random), total - offset)
                    try await client.write(Array(payload[offset..<(offset + size)]))
                    offset += size
                }
            }
            let received = try await readExactly(total, from: client)
            try await writer.value
            #expect(received.count == total)
            #expect(received == payload)
        }
    }

    @Test("fifty connections echo concurrently, each getting only its own bytes")
    func manyConnections() async throws {
        try await withEchoServer { address, loop in
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        let client = try await TCPStream.connect(to: address, on: loop)
                        let message = Array("connection \(index) says hello".utf8)
                        for _ in 0..<20 {
                            try await client.write(message)
                            guard try await readExactly(message.count, from: client) == message else { return false }
                        }
                        return true
                    }
                }
                for try await ok in group { #expect(ok) }
            }
        }
    }

    @Test("a read cancelled while waiting throws CancellationError and the stream stays usable")
    func cancelDuringRead() async throws {
        try await withEchoServer { address, loop in
            let client = try await TCPStream.connect(to: address, on: loop)
            let reader = Task { try await client.read() }
            // Nothing was sent, so the read can only be waiting (or about to); cancel it either way.
            await Task.yield()
            reader.cancel()
            await #expect(throws: CancellationError.self) { try await reader.value }
            try await client.write(Array("still works".utf8))
            #expect(try await readExactly(11, from: client) == Array("still works".utf8))
        }
    }

    @Test("a write cancelled while the peer's buffers are full throws CancellationError and the stream stays usable")
    func cancelDuringWrite() async throws {
        let loop = try EventLoop(name: "cancel-write")
        defer { loop.shutdown() }
        let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0), on: loop)
        let accepted = Task { try await listener.accept() }
        let client = try await TCPStream.connect(to: listener.localAddress, on: loop)
        let server = try await accepted.value
        // Given a peer that reads nothing, a 64 MiB write fills both kernel buffers and has to wait
        let writer = Task { try await client.write([UInt8](repeating: 7, count: 64 * 1024 * 1024)) }
        // When it is cancelled (after it has certainly started: the server sees bytes arrive)
        _ = try await server.read()
        writer.cancel()
        // Then it stops with CancellationError
        await #expect(throws: CancellationError.self) { try await writer.value }
        // And the stream still works in both directions
        try await server.write(Array("ping".utf8))
        var received: [UInt8] = []
        while received.count < 4 { received += try await client.read() }
        #expect(received == Array("ping".utf8))
    }

    @Test("a read cancelled before it starts waiting throws CancellationError")
    func cancelBeforeRead() async throws {
        try await withEchoServer { address, loop in
            let client = try await TCPStream.connect(to: address, on: loop)
            let reader = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await client.read()
            }
            await #expect(throws: CancellationError.self) { try await reader.value }
        }
    }

    @Test("a read in a cancellation scope, cancelled while waiting, throws CancellationError; the stream stays usable")
    func cancelReadInScope() async throws {
        try await withEchoServer { address, loop in
            let client = try await TCPStream.connect(to: address, on: loop)
            // Given a read loop under one handler that has already waited (and been woken) several times
            let rounds = Task(executorPreference: loop) { () async throws -> Int in
                try await client.withCancellationHandler(for: .read) {
                    var round = 0
                    while true {
                        try await client.write(Array("round \(round % 10)".utf8))
                        #expect(try await readExactly(7, from: client) == Array("round \(round % 10)".utf8))
                        round += 1
                        if round == 50 {
                            // When the next read waits for bytes that never come, and the task is cancelled
                            _ = try await client.read()
                            Issue.record("a read that had nothing to read returned")
                        }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(100))
            rounds.cancel()
            // Then the waiting read ends with CancellationError
            await #expect(throws: CancellationError.self) { try await rounds.value }
            // And the stream still works, in and out of a new scope
            try await client.write(Array("still works".utf8))
            #expect(try await readExactly(11, from: client) == Array("still works".utf8))
            let again = try await client.withCancellationHandler(for: .read) { () async throws -> [UInt8] in
                try await client.write(Array("again".utf8))
                return try await readExactly(5, from: client)
            }
            #expect(again == Array("again".utf8))
        }
    }

    @Test("in a cancellation scope, every read after the task is cancelled throws at once")
    func readsAfterCancelInScope() async throws {
        try await withEchoServer { address, loop in
            let client = try await TCPStream.connect(to: address, on: loop)
            let reader = Task { () async throws -> Int in
                try await client.withCancellationHandler(for: .read) { () async throws -> Int in
                    withUnsafeCurrentTask { $0?.cancel() }
                    var failures = 0
                    for _ in 0..<3 {
                        do {
                            _ = try await client.read()
                        } catch is CancellationError {
                            failures += 1
                        }
                    }
                    return failures
                }
            }
            #expect(try await reader.value == 3)
        }
    }

    @Test("a write in a cancellation scope, cancelled while the peer's buffers are full, throws CancellationError")
    func cancelWriteInScope() async throws {
        try await withConnectedPair { client, server, _ in
            let writer = Task {
                try await client.withCancellationHandler(for: .write) {
                    try await client.write([UInt8](repeating: 7, count: 64 * 1024 * 1024))
                }
            }
            _ = try await server.read()  // the write has certainly started
            writer.cancel()
            await #expect(throws: CancellationError.self) { try await writer.value }
            try await server.write(Array("ping".utf8))
            #expect(try await readExactly(4, from: client) == Array("ping".utf8))
        }
    }

    @Test("after the client half-closes, the server sees the end and can still answer")
    func halfClose() async throws {
        try await withEchoServer { address, loop in
            let client = try await TCPStream.connect(to: address, on: loop)
            try await client.write(Array("last words".utf8))
            try client.shutdown(.write)
            // The echo server writes back what it read, then sees the end and closes its side.
            #expect(try await readExactly(10, from: client) == Array("last words".utf8))
            #expect(try await client.read() == [])
        }
    }

    @Test("a peer that resets the connection makes reads fail with ECONNRESET")
    func peerReset() async throws {
        let loop = try EventLoop(name: "reset")
        defer { loop.shutdown() }
        let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0), on: loop)
        let accepted = Task { try await listener.accept() }
        // A plain blocking client: SO_LINGER with a zero timeout turns its close into a reset.
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(client) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = listener.localAddress.port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        let server = try await accepted.value
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        _ = dup2(open("/dev/null", O_RDONLY), client)  // closes the socket (a reset), keeps the number for defer
        await #expect(throws: IOError.self) {
            do {
                _ = try await server.read()
                _ = try await server.read()
            } catch let error as IOError {
                #expect(error.errno == ECONNRESET)
                throw error
            }
        }
    }

    @Test("closing a stream ends a read that is waiting on it with EBADF")
    func closeWakesReader() async throws {
        try await withEchoServer { address, loop in
            let client = try await TCPStream.connect(to: address, on: loop)
            let reader = Task { try await client.read() }
            await Task.yield()
            client.close()
            await #expect(throws: IOError(errno: EBADF, operation: "wait for read")) {
                do { _ = try await reader.value } catch let error as IOError where error.operation == "read" {
                    throw IOError(errno: error.errno, operation: "wait for read")  // closed before it waited
                }
            }
        }
    }

    @Test("IPv6 loopback works the same way")
    func ipv6() async throws {
        try await withEchoServer(host: "::1") { address, loop in
            #expect(address.description.hasPrefix("[::1]:"))
            let client = try await TCPStream.connect(to: address, on: loop)
            try await client.write(Array("six".utf8))
            #expect(try await readExactly(3, from: client) == Array("six".utf8))
        }
    }

    @Test("connecting where nobody listens fails with ECONNREFUSED")
    func refused() async throws {
        let loop = try EventLoop(name: "refused")
        defer { loop.shutdown() }
        // Bind, learn the port, close: nothing listens there now.
        let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0), on: loop)
        let address = listener.localAddress
        listener.close()
        await #expect(throws: IOError.self) {
            do { _ = try await TCPStream.connect(to: address, on: loop) } catch let error as IOError {
                #expect(error.errno == ECONNREFUSED)
                throw error
            }
        }
    }
}
