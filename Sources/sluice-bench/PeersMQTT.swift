import Glibc

/// MQTT 3.1.1 at QoS 0 (Mosquitto 2.0) for the load engine: CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH. Topics
/// use `/` where the other brokers use `.`.
struct MQTTPeerClient: PeerClient {
    var broker: Broker { .mosquitto }

    func topic(_ name: String) -> String { String(name.map { $0 == "." ? "/" : $0 }) }

    /// A packet: the fixed header byte, the remaining length as a variable-length integer, the rest.
    static func packet(_ header: UInt8, _ rest: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = [header]
        var length = rest.count
        repeat {
            var digit = UInt8(length % 128)
            length /= 128
            if length > 0 { digit |= 0x80 }
            bytes.append(digit)
        } while length > 0
        return bytes + rest
    }

    /// A UTF-8 string with its 2-byte length.
    static func string(_ text: String) -> [UInt8] {
        let utf8 = Array(text.utf8)
        return [UInt8(utf8.count >> 8), UInt8(utf8.count & 0xff)] + utf8
    }

    func handshake(_ fd: Int32, _ reader: inout PeerReader, name: String) throws {
        // Protocol "MQTT" level 4, flags 0x02 (clean session), keep-alive 600 s (no pings during a run).
        let connect = Self.string("MQTT") + [4, 0x02, 0x02, 0x58] + Self.string(name)
        try peerSend(fd, Self.packet(0x10, connect))
        try awaitAcknowledgements(self, fd, &reader, what: "CONNECT")
    }

    func subscribe(_ fd: Int32, _ reader: inout PeerReader, topic: String, id: UInt32) throws {
        let body = [UInt8(id >> 8 & 0xff), UInt8(id & 0xff)] + Self.string(topic) + [0]
        try peerSend(fd, Self.packet(0x82, body))
        try awaitAcknowledgements(self, fd, &reader, what: "SUBSCRIBE")
    }

    func publish(topic: String, payload: [UInt8]) -> [UInt8] { Self.packet(0x30, Self.string(topic) + payload) }

    func delivery(topic: String, payload: [UInt8]) -> [UInt8] { self.publish(topic: topic, payload: payload) }

    func pong() -> [UInt8] { [0xd0, 0] }

    func scan(_ bytes: UnsafeRawBufferPointer, _ handle: (PeerEvent) -> Void) -> Int {
        var offset = 0
        while bytes.count - offset >= 2 {
            var length = 0
            var multiplier = 1
            var at = offset + 1
            var complete = false
            while at < bytes.count && at < offset + 5 {
                let digit = bytes[at]
                at += 1
                length += Int(digit & 0x7f) * multiplier
                multiplier *= 128
                if digit & 0x80 == 0 {
                    complete = true
                    break
                }
            }
            guard complete, at + length <= bytes.count else { break }
            let header = bytes[offset]
            switch header >> 4 {
            case 3:  // PUBLISH: topic, a packet id when QoS > 0, payload
                let topicLength = Int(bytes[at]) << 8 | Int(bytes[at + 1])
                let packetID = header & 0x06 != 0 ? 2 : 0
                handle(PeerEvent(kind: .message, payloadCount: length - 2 - topicLength - packetID))
            case 2:  // CONNACK: return code 0 is accepted
                handle(PeerEvent(kind: bytes[at + 1] == 0 ? .acknowledged : .error))
            case 9:  // SUBACK: 0x80 is a refusal
                handle(PeerEvent(kind: bytes[at + length - 1] == 0x80 ? .error : .acknowledged))
            case 12:  // PINGREQ
                handle(PeerEvent(kind: .ping))
            case 13:  // PINGRESP
                handle(PeerEvent(kind: .acknowledged))
            default:
                break
            }
            offset = at + length
        }
        return offset
    }

    // MARK: Request/reply

    var requestReplyMethod: String { "QoS 0 PUBLISH to bench/rr/req; the responder PUBLISHes to bench/rr/rep" }

    func prepareResponder(_ fd: Int32, _ reader: inout PeerReader) throws {
        try self.subscribe(fd, &reader, topic: "bench/rr/req", id: 1)
    }

    func prepareRequester(_ fd: Int32, _ reader: inout PeerReader) throws {
        try self.subscribe(fd, &reader, topic: "bench/rr/rep", id: 1)
    }

    func request(payload: [UInt8]) -> [UInt8] { self.publish(topic: "bench/rr/req", payload: payload) }

    func replyTemplate(payload: [UInt8]) -> [UInt8] { self.publish(topic: "bench/rr/rep", payload: payload) }

    func appendReply(to event: PeerEvent, in bytes: UnsafeRawBufferPointer, template: [UInt8], into out: inout [UInt8])
    {
        out += template
    }

    // MARK: Work queue

    var workQueueMethod: String? { nil }

    func prepareConsumer(_ fd: Int32, _ reader: inout PeerReader, window: Int) throws {
        throw BenchmarkFailure(description: "MQTT has no work queue")
    }

    func push(payload: [UInt8]) -> [UInt8] { [] }

    func appendSettle(_ event: PeerEvent, into out: inout [UInt8]) {}
}
