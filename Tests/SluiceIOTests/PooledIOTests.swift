import Glibc
import Testing

@testable import SluiceIO

/// What a frame decoder looks like to `read(_:)`: a noncopyable value the caller owns and mutates from `body`.
struct ByteCollector: ~Copyable {
    private(set) var bytes: [UInt8] = []
    private(set) var ended = false
    private(set) var chunks = 0

    mutating func append(_ chunk: UnsafeRawBufferPointer) {
        self.chunks += 1
        if chunk.isEmpty { self.ended = true }
        self.bytes.append(contentsOf: chunk)
    }
}

/// A reader isolated to an actor: `read(_:)` runs on the caller's isolation, so `body` may touch actor state.
actor CountingSession {
    private(set) var total = 0

    func drain(_ stream: TCPStream, until count: Int) async throws -> [UInt8] {
        var decoder = ByteCollector()
        while decoder.bytes.count < count && !decoder.ended {
            try await stream.read {
                decoder.append($0)
                self.total += $0.count
            }
        }
        return decoder.bytes
    }
}

/// A connected pair on one loop: `client` connected, `server` accepted.
func withConnectedPair(_ body: (TCPStream, TCPStream, EventLoop) async throws -> Void) async throws {
    let loop = try EventLoop(name: "pair")
    defer { loop.shutdown() }
    let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0), on: loop)
    defer { listener.close() }
    let accepted = Task { try await listener.accept() }
    let client = try await TCPStream.connect(to: listener.localAddress, on: loop)
    let server = try await accepted.value
    try await body(client, server, loop)
}

/// `count` bytes whose values depend on `seed` and position (period 251, a prime, so a shift by anything but a
/// multiple of it shows). Built by copying one block: per-element loops are slow in debug builds.
func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    let block = (0..<251).map { UInt8(truncatingIfNeeded: $0 &* 31) &+ seed }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count + 251)
    while bytes.count < count { bytes.append(contentsOf: block) }
    bytes.removeLast(bytes.count - count)
    return bytes
}

/// `memcmp` equality: `==` on multi-megabyte arrays goes element by element in debug builds.
func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    guard !a.isEmpty else { return true }
    return a.withUnsafeBytes { a in b.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 } }
}

@Suite("Pooled reads and vectored writes over loopback")
struct PooledIOTests {
    @Test("a pooled read feeds a noncopyable local decoder, and the end of stream arrives as an empty buffer")
    func noncopyableDecoderAndEnd() async throws {
        try await withEchoServer { address, loop in
            let client = try await TCPStream.connect(to: address, on: loop)
            let message = pattern(200_000, seed: 3)
            try await client.write(message)
            try client.shutdown(.write)
            var decoder = ByteCollector()
            while !decoder.ended {
                try await client.read { decoder.append($0) }
            }
            #expect(sameBytes(decoder.bytes, message))
            #expect(decoder.chunks >= 2, "at least one data chunk and the empty one")
        }
    }

    @Test("the end of stream sent right behind the last bytes is seen after the short read that takes them")
    func endRightBehindData() async throws {
        try await withConnectedPair { client, server, _ in
            try await client.write(Array("bye".utf8))
            try client.shutdown(.write)
            var collector = ByteCollector()
            while !collector.ended {
                try await server.read { collector.append($0) }
            }
            #expect(collector.bytes == Array("bye".utf8))
        }
    }

    @Test("a pooled read returns what body returns, and body runs exactly once per read")
    func bodyResult() async throws {
        try await withConnectedPair { client, server, _ in
            try await client.write(Array("abc".utf8))
            var calls = 0
            var received: [UInt8] = []
            while received.count < 3 {
                let count = try await server.read { bytes in
                    calls += 1
                    received += bytes
                    return bytes.count
                }
                #expect(count > 0)
            }
            #expect(received == Array("abc".utf8))
            #expect(calls >= 1 && calls <= 3)
        }
    }

    @Test("a pooled read called from an actor may mutate actor state and a noncopyable local in body")
    func readFromActor() async throws {
        try await withConnectedPair { client, server, _ in
            let session = CountingSession()
            try await client.write(pattern(100_000, seed: 1))
            #expect(try await session.drain(server, until: 100_000) == pattern(100_000, seed: 1))
            #expect(await session.total == 100_000)
        }
    }

    @Test("what body throws comes out of the read unchanged")
    func bodyThrows() async throws {
        struct Malformed: Error, Equatable {}
        try await withConnectedPair { client, server, _ in
            try await client.write(Array("x".utf8))
            await #expect(throws: Malformed()) {
                try await server.read { (_) throws(Malformed) -> Void in throw Malformed() }
            }
        }
    }

    @Test("pooled reads from tasks on the global executor and on the loop see only their own bytes")
    func readsOnManyThreads() async throws {
        try await withEchoServer { address, loop in
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<20 {
                    let onLoop = index.isMultiple(of: 2)
                    let work: @Sendable () async throws -> Bool = {
                        let client = try await TCPStream.connect(to: address, on: loop)
                        let message = pattern(5000 + index * 997, seed: UInt8(index))
                        for _ in 0..<10 {
                            try await client.write(message)
                            var collector = ByteCollector()
                            while collector.bytes.count < message.count && !collector.ended {
                                try await client.read { collector.append($0) }
                            }
                            guard collector.bytes == message else { return false }
                        }
                        return true
                    }
                    if onLoop {
                        group.addTask(executorPreference: loop, operation: work)
                    } else {
                        group.addTask(operation: work)
                    }
                }
                for try await ok in group { #expect(ok) }
            }
        }
    }

    @Test("a vectored write larger than the socket buffers completes through partial sendmsg calls, in order")
    func vectoredPartialWrites() async throws {
        try await withConnectedPair { client, server, _ in
            // Eight 1 MiB buffers (and empty ones between) cannot fit the kernel's buffers while nobody reads, so
            // sendmsg writes part, the write waits, and resumes mid-buffer.
            var buffers: [[UInt8]] = []
            for index in 0..<8 {
                buffers.append(pattern(1 << 20, seed: UInt8(index)))
                buffers.append([])
            }
            let expected = Array(buffers.joined())
            let writer = Task { try await client.write(buffers) }
            var collector = ByteCollector()
            while collector.bytes.count < expected.count {
                try await server.read { collector.append($0) }
            }
            try await writer.value
            #expect(collector.bytes.count == expected.count)
            #expect(sameBytes(collector.bytes, expected))
        }
    }

    @Test("more buffers than one sendmsg takes are written in order across calls")
    func manySmallBuffers() async throws {
        try await withConnectedPair { client, server, _ in
            let buffers = (0..<1000).map { pattern($0 % 37, seed: UInt8(truncatingIfNeeded: $0)) }
            let expected = Array(buffers.joined())
            try await client.write(buffers)
            var collector = ByteCollector()
            while collector.bytes.count < expected.count {
                try await server.read { collector.append($0) }
            }
            #expect(collector.bytes == expected)
        }
    }

    @Test("slices and single buffers are OutboundBytes too")
    func slicesAndSingleBuffers() async throws {
        try await withConnectedPair { client, server, _ in
            let bytes = pattern(1000, seed: 9)
            try await client.write(bytes[100..<600])
            try await client.write([bytes[600..<700], bytes[700..<1000]])
            var collector = ByteCollector()
            while collector.bytes.count < 900 {
                try await server.read { collector.append($0) }
            }
            #expect(collector.bytes == Array(bytes[100...]))
        }
    }

    @Test("a pooled read cancelled while waiting throws CancellationError, never calls body, and the stream works")
    func cancelPooledRead() async throws {
        try await withEchoServer { address, loop in
            let client = try await TCPStream.connect(to: address, on: loop)
            let reader = Task {
                try await client.read { _ -> Bool in
                    Issue.record("body called for a read that had nothing to read")
                    return true
                }
            }
            await Task.yield()
            reader.cancel()
            await #expect(throws: CancellationError.self) { try await reader.value }
            try await client.write([Array("still ".utf8), Array("works".utf8)])
            var collector = ByteCollector()
            while collector.bytes.count < 11 {
                try await client.read { collector.append($0) }
            }
            #expect(collector.bytes == Array("still works".utf8))
        }
    }

    @Test("a vectored write cancelled while the peer's buffers are full throws CancellationError, stream usable")
    func cancelVectoredWrite() async throws {
        try await withConnectedPair { client, server, _ in
            let writer = Task {
                try await client.write([[UInt8]](repeating: [UInt8](repeating: 7, count: 1 << 20), count: 64))
            }
            // It has certainly started once the server sees bytes.
            _ = try await server.read { $0.count }
            writer.cancel()
            await #expect(throws: CancellationError.self) { try await writer.value }
            try await server.write([Array("pi".utf8), Array("ng".utf8)])
            var collector = ByteCollector()
            while collector.bytes.count < 4 {
                try await client.read { collector.append($0) }
            }
            #expect(collector.bytes == Array("ping".utf8))
        }
    }

    @Test("tryWrite takes what fits, returns 0 once the send buffer is full, and never waits")
    func tryWriteFillsThenReturnsZero() async throws {
        try await withConnectedPair { client, server, _ in
            let chunk = pattern(1 << 20, seed: 5)
            var total = 0
            var sawFull = false
            for _ in 0..<256 {
                let written = try chunk.withUnsafeBytes { bytes throws(IOError) in try client.tryWrite(bytes) }
                total += written
                if written == 0 {
                    sawFull = true
                    break
                }
            }
            #expect(sawFull, "nobody reads, so the buffers fill within 256 MiB")
            #expect(total > 0)
            // Everything it reported written arrives, and a blocking write continues where it stopped.
            let writer = Task { try await client.write(Array("tail".utf8)) }
            var received = 0
            var tail: [UInt8] = []
            while received < total + 4 {
                try await server.read { bytes in
                    received += bytes.count
                    tail = Array((tail + bytes).suffix(4))
                }
            }
            try await writer.value
            #expect(tail == Array("tail".utf8))
        }
    }

    @Test("writing to a closed stream fails with EBADF")
    func writeAfterClose() async throws {
        try await withConnectedPair { client, _, _ in
            client.close()
            await #expect(throws: IOError.self) { try await client.write([Array("x".utf8)]) }
            await #expect(throws: IOError.self) { try await client.read { $0.count } }
        }
    }
}
