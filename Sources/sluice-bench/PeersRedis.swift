import Glibc

/// Redis (RESP2, redis-server 7.0) for the load engine. Commands are RESP arrays of bulk strings; replies are
/// scanned for what the engine needs: pub/sub deliveries (`*3 message channel payload`), list pops
/// (`*2 key payload`), and plain replies (`+PONG`, `:n`, the `subscribe` confirmation) as acknowledgements.
struct RedisPeerClient: PeerClient {
    var broker: Broker { .redis }

    func topic(_ name: String) -> String { name }

    /// A command as a RESP array of bulk strings.
    static func command(_ parts: [[UInt8]]) -> [UInt8] {
        var bytes = Array("*\(parts.count)\r\n".utf8)
        for part in parts {
            bytes += Array("$\(part.count)\r\n".utf8)
            bytes += part
            bytes += [13, 10]
        }
        return bytes
    }

    static func command(_ words: String...) -> [UInt8] { command(words.map { Array($0.utf8) }) }

    func handshake(_ fd: Int32, _ reader: inout PeerReader, name: String) throws {
        try peerSend(fd, Self.command("PING"))
        try awaitAcknowledgements(self, fd, &reader, what: "PING")
    }

    func subscribe(_ fd: Int32, _ reader: inout PeerReader, topic: String, id: UInt32) throws {
        try peerSend(fd, Self.command("SUBSCRIBE", topic))
        try awaitAcknowledgements(self, fd, &reader, what: "SUBSCRIBE")
    }

    func publish(topic: String, payload: [UInt8]) -> [UInt8] {
        Self.command([Array("PUBLISH".utf8), Array(topic.utf8), payload])
    }

    func delivery(topic: String, payload: [UInt8]) -> [UInt8] {
        Self.command([Array("message".utf8), Array(topic.utf8), payload])
    }

    func pong() -> [UInt8] { [] }  // a Redis server never pings its clients

    /// The decimal integer in `bytes[start..<end]` (an optional leading `-`).
    @inline(__always)
    private static func integer(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Int {
        var value = 0
        var negative = false
        for index in start..<end {
            let byte = bytes[index]
            if byte == 45 { negative = true } else { value = value * 10 + Int(byte &- 48) }
        }
        return negative ? -value : value
    }

    /// One reply element starting at `at`: where it ends (nil if incomplete), its type byte, its bulk size (-1
    /// for nil or a non-bulk) and where its bulk bytes start.
    private static func element(
        _ bytes: UnsafeRawBufferPointer,
        at: Int
    ) -> (end: Int, type: UInt8, size: Int, start: Int)? {
        guard at < bytes.count, let base = bytes.baseAddress,
            let newline = memchr(base + at, 10, bytes.count - at)
        else { return nil }
        let lineEnd = base.distance(to: UnsafeRawPointer(newline))
        let type = bytes[at]
        guard type == UInt8(ascii: "$") else { return (lineEnd + 1, type, -1, 0) }
        let size = integer(bytes, at + 1, lineEnd - 1)
        guard size >= 0 else { return (lineEnd + 1, type, -1, 0) }
        let end = lineEnd + 1 + size + 2
        return end <= bytes.count ? (end, type, size, lineEnd + 1) : nil
    }

    func scan(_ bytes: UnsafeRawBufferPointer, _ handle: (PeerEvent) -> Void) -> Int {
        var offset = 0
        scanning: while offset < bytes.count {
            if bytes[offset] != UInt8(ascii: "*") {
                guard let value = Self.element(bytes, at: offset) else { break }
                handle(PeerEvent(kind: value.type == UInt8(ascii: "-") ? .error : .acknowledged))
                offset = value.end
                continue
            }
            guard let base = bytes.baseAddress, let newline = memchr(base + offset, 10, bytes.count - offset) else {
                break
            }
            let lineEnd = base.distance(to: UnsafeRawPointer(newline))
            let count = Self.integer(bytes, offset + 1, lineEnd - 1)
            var at = lineEnd + 1
            var first = (size: -1, start: 0)
            var last = -1
            for index in 0..<max(count, 0) {
                guard let value = Self.element(bytes, at: at) else { break scanning }
                if index == 0 { first = (value.size, value.start) }
                last = value.size
                at = value.end
            }
            offset = at
            let isMessage =
                count == 3 && first.size == 7
                && memcmp(base + first.start, "message", 7) == 0
            if isMessage || count == 2 {
                // A pub/sub delivery, or a BRPOP answer (key, value).
                handle(PeerEvent(kind: .message, payloadCount: last))
            } else if count > 0 {
                handle(PeerEvent(kind: .acknowledged))  // subscribe confirmations and the like
            }
        }
        return offset
    }

    // MARK: Request/reply

    var requestReplyMethod: String {
        "lists: the requester pipelines LPUSH rr:req + BRPOP rr:rep; the responder BRPOPs rr:req and pipelines "
            + "LPUSH rr:rep + its next BRPOP"
    }

    func prepareResponder(_ fd: Int32, _ reader: inout PeerReader) throws {
        try peerSend(fd, Self.command("BRPOP", "rr:req", "0"))
    }

    func prepareRequester(_ fd: Int32, _ reader: inout PeerReader) throws {}

    func request(payload: [UInt8]) -> [UInt8] {
        Self.command([Array("LPUSH".utf8), Array("rr:req".utf8), payload]) + Self.command("BRPOP", "rr:rep", "0")
    }

    func replyTemplate(payload: [UInt8]) -> [UInt8] {
        Self.command([Array("LPUSH".utf8), Array("rr:rep".utf8), payload]) + Self.command("BRPOP", "rr:req", "0")
    }

    func appendReply(to event: PeerEvent, in bytes: UnsafeRawBufferPointer, template: [UInt8], into out: inout [UInt8])
    {
        out += template
    }

    // MARK: Work queue

    var workQueueMethod: String? {
        "LPUSH bench:work; each consumer keeps `window` BRPOPs pipelined (no acknowledgements in Redis lists)"
    }

    /// `BRPOP bench:work 0`, encoded once.
    private static let pop = command("BRPOP", "bench:work", "0")

    func prepareConsumer(_ fd: Int32, _ reader: inout PeerReader, window: Int) throws {
        try peerSend(fd, Array([[UInt8]](repeating: Self.pop, count: window).joined()))
    }

    func push(payload: [UInt8]) -> [UInt8] {
        Self.command([Array("LPUSH".utf8), Array("bench:work".utf8), payload])
    }

    func appendSettle(_ event: PeerEvent, into out: inout [UInt8]) { out += Self.pop }
}
