import Glibc
import SluiceWire

/// Sluice's own protocol for the load engine. Every frame it sends is built with SluiceWire's `FrameEncoder`
/// (once, up front: the hot loops send pre-encoded bytes, and ACK and REPLY patch the id into a pre-encoded
/// template). Incoming frames are scanned by hand for the length, the opcode and the few fields the engine needs,
/// as a C client would: `FrameDecoder` builds a `Frame` with a `String` subject per message, which measures the
/// decoder rather than the broker (the engine's ceiling row shows what the scanner costs).
struct SluicePeerClient: PeerClient {
    var broker: Broker { .sluice }

    /// Encodes `frames` back to back.
    static func encode(_ frames: [Frame]) -> [UInt8] {
        var encoder = FrameEncoder()
        for frame in frames {
            do {
                try encoder.encode(frame)
            } catch {
                preconditionFailure("the benchmark's frames are always encodable: \(error)")
            }
        }
        return encoder.bytes
    }

    func topic(_ name: String) -> String { name }

    func handshake(_ fd: Int32, _ reader: inout PeerReader, name: String) throws {
        try peerSend(fd, Self.encode([.hello(.init(clientName: name))]))
        try awaitAcknowledgements(self, fd, &reader, what: "HELLO")
    }

    func subscribe(_ fd: Int32, _ reader: inout PeerReader, topic: String, id: UInt32) throws {
        try peerSend(fd, Self.encode([.sub(.init(requestID: id, subscriptionID: id, pattern: topic))]))
        try awaitAcknowledgements(self, fd, &reader, what: "SUB")
    }

    func publish(topic: String, payload: [UInt8]) -> [UInt8] {
        Self.encode([.pub(.init(subject: topic, payload: Payload(payload)))])
    }

    func delivery(topic: String, payload: [UInt8]) -> [UInt8] {
        Self.encode([.msg(.init(subscriptionID: 1, subject: topic, payload: Payload(payload)))])
    }

    func pong() -> [UInt8] { Self.encode([.pong]) }

    @inline(__always)
    private static func u16(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> Int {
        Int(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    @inline(__always)
    private static func u32(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> Int {
        Int(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
    }

    @inline(__always)
    private static func u64(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// Skips a header block at `offset`; returns the offset after it.
    private static func skipHeaders(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> Int {
        var at = offset + 2
        for _ in 0..<u16(bytes, offset) * 2 { at += 2 + u16(bytes, at) }
        return at
    }

    func scan(_ bytes: UnsafeRawBufferPointer, _ handle: (PeerEvent) -> Void) -> Int {
        var offset = 0
        while bytes.count - offset >= 5 {
            let length = Self.u32(bytes, offset)
            let end = offset + 4 + length
            guard end <= bytes.count else { break }
            let body = offset + 5
            switch bytes[offset + 4] {
            case Opcode.msg.rawValue:
                let flags = bytes[body + 4]
                var at = body + 5
                var id: UInt64 = 0
                if flags & 0x06 != 0 {
                    id = Self.u64(bytes, at)
                    at += 8
                }
                at += 2 + Self.u16(bytes, at)
                at = Self.skipHeaders(bytes, at)
                handle(PeerEvent(kind: .message, payloadCount: end - at, id: id))
            case Opcode.response.rawValue:
                let at = Self.skipHeaders(bytes, body + 4)
                handle(PeerEvent(kind: .message, payloadCount: end - at))
            case Opcode.lagged.rawValue:
                handle(PeerEvent(kind: .lagged, id: Self.u64(bytes, body + 4)))
            case Opcode.welcome.rawValue, Opcode.ok.rawValue, Opcode.pong.rawValue:
                handle(PeerEvent(kind: .acknowledged))
            case Opcode.ping.rawValue:
                handle(PeerEvent(kind: .ping))
            case Opcode.error.rawValue, Opcode.goodbye.rawValue:
                handle(PeerEvent(kind: .error))
            default:
                break
            }
            offset = end
        }
        return offset
    }

    // MARK: Request/reply

    var requestReplyMethod: String { "REQUEST → responder's SUB gets MSG with a reply id → REPLY → RESPONSE" }

    func prepareResponder(_ fd: Int32, _ reader: inout PeerReader) throws {
        try self.subscribe(fd, &reader, topic: "bench.rr", id: 1)
    }

    func prepareRequester(_ fd: Int32, _ reader: inout PeerReader) throws {}

    func request(payload: [UInt8]) -> [UInt8] {
        // One request in flight, so one request id serves them all (ids need only differ among unanswered ones).
        Self.encode([.request(.init(requestID: 1, subject: "bench.rr", payload: Payload(payload)))])
    }

    func replyTemplate(payload: [UInt8]) -> [UInt8] {
        Self.encode([.reply(.init(replyID: 0, payload: Payload(payload)))])
    }

    func appendReply(to event: PeerEvent, in bytes: UnsafeRawBufferPointer, template: [UInt8], into out: inout [UInt8])
    {
        // REPLY: length 4, opcode 1, request_id 4, flags 1, then reply_id at offset 10.
        let start = out.count
        out += template
        Self.patch(&out, at: start + 10, event.id)
    }

    /// Stores `value` big-endian at `offset` of `bytes`.
    private static func patch(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64) {
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self) }
    }

    // MARK: Work queue

    var workQueueMethod: String? { "PUSH → CONSUME (credit = window) → MSG → ACK" }

    func prepareConsumer(_ fd: Int32, _ reader: inout PeerReader, window: Int) throws {
        let consume = Frame.consume(.init(requestID: 1, subscriptionID: 1, credit: UInt32(window), queue: "bench.work"))
        try peerSend(fd, Self.encode([consume]))
        try awaitAcknowledgements(self, fd, &reader, what: "CONSUME")
    }

    func push(payload: [UInt8]) -> [UInt8] {
        Self.encode([.push(.init(queue: "bench.work", payload: Payload(payload)))])
    }

    /// ACK without an answer, pre-encoded: length 4, opcode 1, request_id 4, flags 1, delivery_id at offset 10.
    private static let ackTemplate = encode([.ack(.init(deliveryID: 0))])

    func appendSettle(_ event: PeerEvent, into out: inout [UInt8]) {
        let start = out.count
        out += Self.ackTemplate
        Self.patch(&out, at: start + 10, event.id)
    }
}
