import Glibc

/// Core NATS (the text protocol of nats-server 2.9) for the load engine: `CONNECT` with verbose off, so a PUB is
/// answered with nothing, `PING`/`PONG` as the confirmation barrier, `MSG subject sid [reply] size` deliveries.
struct NATSPeerClient: PeerClient {
    var broker: Broker { .nats }

    func topic(_ name: String) -> String { name }

    func handshake(_ fd: Int32, _ reader: inout PeerReader, name: String) throws {
        let connect =
            #"CONNECT {"verbose":false,"pedantic":false,"name":"\#(name)","lang":"swift","version":"0","#
            + #""protocol":1}"# + "\r\nPING\r\n"
        try peerSend(fd, Array(connect.utf8))
        try awaitAcknowledgements(self, fd, &reader, what: "CONNECT")
    }

    func subscribe(_ fd: Int32, _ reader: inout PeerReader, topic: String, id: UInt32) throws {
        try peerSend(fd, Array("SUB \(topic) \(id)\r\nPING\r\n".utf8))
        try awaitAcknowledgements(self, fd, &reader, what: "SUB")
    }

    func publish(topic: String, payload: [UInt8]) -> [UInt8] {
        Array("PUB \(topic) \(payload.count)\r\n".utf8) + payload + [13, 10]
    }

    func delivery(topic: String, payload: [UInt8]) -> [UInt8] {
        Array("MSG \(topic) 1 \(payload.count)\r\n".utf8) + payload + [13, 10]
    }

    func pong() -> [UInt8] { Array("PONG\r\n".utf8) }

    /// Whether `bytes[at...]` starts with `prefix` (ASCII, upper case as the server sends it).
    @inline(__always)
    private static func starts(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ prefix: StaticString) -> Bool {
        guard bytes.count - at >= prefix.utf8CodeUnitCount else { return false }
        return memcmp(bytes.baseAddress! + at, prefix.utf8Start, prefix.utf8CodeUnitCount) == 0
    }

    func scan(_ bytes: UnsafeRawBufferPointer, _ handle: (PeerEvent) -> Void) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        var offset = 0
        while offset < bytes.count {
            guard let newline = memchr(base + offset, 10, bytes.count - offset) else { break }
            let lineEnd = base.distance(to: UnsafeRawPointer(newline))  // index of "\n"; "\r" precedes it
            if Self.starts(bytes, offset, "MSG ") {
                // MSG <subject> <sid> [reply-to] <#bytes>: the size is the last token, the reply the third of four.
                // No array per message: remember the third token and the last one.
                var count = 0
                var third = (start: 0, end: 0)
                var last = (start: 0, end: 0)
                var at = offset + 4
                while at < lineEnd - 1 {
                    while at < lineEnd - 1 && bytes[at] == 32 { at += 1 }
                    let start = at
                    while at < lineEnd - 1 && bytes[at] != 32 { at += 1 }
                    guard at > start else { continue }
                    count += 1
                    if count == 3 { third = (start, at) }
                    last = (start, at)
                }
                var size = 0
                for index in last.start..<last.end { size = size * 10 + Int(bytes[index] &- 48) }
                let end = lineEnd + 1 + size + 2
                guard end <= bytes.count else { break }
                var event = PeerEvent(kind: .message, payloadCount: size)
                if count == 4 {
                    event.replyOffset = third.start
                    event.replyCount = third.end - third.start
                }
                handle(event)
                offset = end
                continue
            }
            if Self.starts(bytes, offset, "PING") {
                handle(PeerEvent(kind: .ping))
            } else if Self.starts(bytes, offset, "PONG") || Self.starts(bytes, offset, "+OK") {
                handle(PeerEvent(kind: .acknowledged))
            } else if Self.starts(bytes, offset, "-ERR") {
                handle(PeerEvent(kind: .error))
            }
            // INFO and anything else: nothing to do.
            offset = lineEnd + 1
        }
        return offset
    }

    // MARK: Request/reply

    var requestReplyMethod: String { "PUB with an inbox reply subject; the responder PUBs to that subject" }

    func prepareResponder(_ fd: Int32, _ reader: inout PeerReader) throws {
        try self.subscribe(fd, &reader, topic: "bench.rr", id: 1)
    }

    func prepareRequester(_ fd: Int32, _ reader: inout PeerReader) throws {
        try self.subscribe(fd, &reader, topic: "_INBOX.bench.1", id: 1)
    }

    func request(payload: [UInt8]) -> [UInt8] {
        Array("PUB bench.rr _INBOX.bench.1 \(payload.count)\r\n".utf8) + payload + [13, 10]
    }

    func replyTemplate(payload: [UInt8]) -> [UInt8] { Array(" \(payload.count)\r\n".utf8) + payload + [13, 10] }

    func appendReply(to event: PeerEvent, in bytes: UnsafeRawBufferPointer, template: [UInt8], into out: inout [UInt8])
    {
        out += Array("PUB ".utf8)
        out += UnsafeRawBufferPointer(rebasing: bytes[event.replyOffset..<event.replyOffset + event.replyCount])
        out += template
    }

    // MARK: Work queue

    var workQueueMethod: String? { nil }

    func prepareConsumer(_ fd: Int32, _ reader: inout PeerReader, window: Int) throws {
        throw BenchmarkFailure(description: "core NATS has no work queue with acknowledgements")
    }

    func push(payload: [UInt8]) -> [UInt8] { [] }

    func appendSettle(_ event: PeerEvent, into out: inout [UInt8]) {}
}
