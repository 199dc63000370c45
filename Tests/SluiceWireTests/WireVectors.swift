import FoundationEssentials
import SluiceWire
import Testing

/// `Tests/Fixtures/wire-vectors.json`: the hex vectors shared by these tests, `docs/PROTOCOL.md` and the Python
/// client's tests. Loaded once, relative to this file.
struct WireVectors: Decodable {
    let frames: [FrameVector]
    let errors: [ErrorVector]

    static let fixtureDirectory: String = {
        let path = "\(#filePath)"
        let testsDirectory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast(2)
        return testsDirectory.joined(separator: "/") + "/Fixtures"
    }()

    static let repositoryRoot: String = {
        let path = "\(#filePath)"
        return path.split(separator: "/", omittingEmptySubsequences: false).dropLast(3).joined(separator: "/")
    }()

    static let shared: WireVectors = {
        let url = URL(fileURLWithPath: fixtureDirectory + "/wire-vectors.json")
        do {
            let data = try Data(contentsOf: url)
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(WireVectors.self, from: data)
        } catch {
            fatalError("cannot load \(url.path): \(error)")
        }
    }()
}

/// One valid frame: its bytes and its fields.
struct FrameVector: Decodable, CustomTestStringConvertible {
    let name: String
    let hex: String
    let frame: FrameFields

    var bytes: [UInt8] { HexText.bytes(self.hex) }
    var testDescription: String { self.name }
}

/// Bytes a decoder must refuse.
struct ErrorVector: Decodable, CustomTestStringConvertible {
    let name: String
    let hex: String
    let maxFrameSize: Int
    let framesBefore: [FrameFields]
    let code: UInt16
    let error: String
    let offset: Int

    var bytes: [UInt8] { HexText.bytes(self.hex) }
    var testDescription: String { self.name }
}

/// The decoded fields of a vector, in the JSON's snake_case names. Only the fields of `type` are present.
struct FrameFields: Decodable {
    let type: String
    var version: UInt16?
    var clientName: String?
    var token: String?
    var maxFrameSize: UInt32?
    var idleTimeoutMs: UInt32?
    var maxInflightRequests: UInt32?
    var maxSubscriptions: UInt32?
    var serverName: String?
    var requestId: UInt32?
    var code: UInt16?
    var message: String?
    var entries: [StatEntry]?
    var ackWanted: Bool?
    var noWait: Bool?
    var subject: String?
    var pattern: String?
    var queueGroup: String?
    var subscriptionId: UInt32?
    var delivery: String?
    var deliveryId: UInt64?
    var redelivered: Bool?
    var replyId: UInt64?
    var missed: UInt64?
    var queue: String?
    var credit: UInt32?
    var key: String?
    var target: String?
    var revision: UInt64?
    var timeoutMs: UInt32?
    var headers: [[String]]?
    var payload: String?

    /// `["connections", 2]`.
    struct StatEntry: Decodable {
        let name: String
        let value: UInt64

        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            self.name = try container.decode(String.self)
            self.value = try container.decode(UInt64.self)
        }
    }

    private func need<T>(_ value: T?, _ field: String) throws -> T {
        guard let value else { throw VectorError.missingField(self.type, field) }
        return value
    }

    private var decodedHeaders: Headers {
        Headers((self.headers ?? []).map { Headers.Field(name: $0[0], value: $0[1]) })
    }

    private var decodedPayload: Payload { Payload(HexText.bytes(self.payload ?? "")) }

    /// The ``Frame`` these fields describe.
    func makeFrame() throws -> Frame {
        switch self.type {
        case "HELLO":
            return .hello(
                .init(
                    version: try need(version, "version"),
                    clientName: try need(clientName, "client_name"),
                    token: token
                )
            )
        case "WELCOME":
            return .welcome(
                .init(
                    version: try need(version, "version"),
                    maxFrameSize: try need(maxFrameSize, "max_frame_size"),
                    idleTimeoutMilliseconds: try need(idleTimeoutMs, "idle_timeout_ms"),
                    maxInflightRequests: try need(maxInflightRequests, "max_inflight_requests"),
                    maxSubscriptions: try need(maxSubscriptions, "max_subscriptions"),
                    serverName: try need(serverName, "server_name")
                )
            )
        case "PING": return .ping
        case "PONG": return .pong
        case "GOODBYE": return .goodbye
        case "OK": return .ok(requestID: try need(requestId, "request_id"))
        case "STATS": return .stats(requestID: try need(requestId, "request_id"))
        case "ERROR":
            return .error(
                .init(
                    requestID: try need(requestId, "request_id"),
                    code: ErrorCode(rawValue: try need(code, "code")),
                    message: try need(message, "message")
                )
            )
        case "STATS_REPLY":
            let entries = try need(entries, "entries").map { Frame.StatsReply.Entry(name: $0.name, value: $0.value) }
            return .statsReply(.init(requestID: try need(requestId, "request_id"), entries: entries))
        case "PUB":
            return .pub(
                .init(
                    requestID: try need(requestId, "request_id"),
                    ackWanted: try need(ackWanted, "ack_wanted"),
                    subject: try need(subject, "subject"),
                    headers: decodedHeaders,
                    payload: decodedPayload
                )
            )
        case "SUB":
            return .sub(
                .init(
                    requestID: try need(requestId, "request_id"),
                    subscriptionID: try need(subscriptionId, "subscription_id"),
                    pattern: try need(pattern, "pattern"),
                    queueGroup: queueGroup
                )
            )
        case "UNSUB":
            return .unsub(
                .init(
                    requestID: try need(requestId, "request_id"),
                    subscriptionID: try need(subscriptionId, "subscription_id")
                )
            )
        case "MSG":
            let kind: Frame.Message.Delivery
            switch try need(delivery, "delivery") {
            case "subject": kind = .subject
            case "queue":
                kind = .queue(
                    deliveryID: try need(deliveryId, "delivery_id"),
                    redelivered: try need(redelivered, "redelivered")
                )
            case "request": kind = .request(replyID: try need(replyId, "reply_id"))
            case let other: throw VectorError.badValue("delivery", other)
            }
            return .msg(
                .init(
                    subscriptionID: try need(subscriptionId, "subscription_id"),
                    delivery: kind,
                    subject: try need(subject, "subject"),
                    headers: decodedHeaders,
                    payload: decodedPayload
                )
            )
        case "LAGGED":
            return .lagged(
                .init(subscriptionID: try need(subscriptionId, "subscription_id"), missed: try need(missed, "missed"))
            )
        case "PUSH":
            return .push(
                .init(
                    requestID: try need(requestId, "request_id"),
                    ackWanted: try need(ackWanted, "ack_wanted"),
                    noWait: try need(noWait, "no_wait"),
                    queue: try need(queue, "queue"),
                    headers: decodedHeaders,
                    payload: decodedPayload
                )
            )
        case "CONSUME":
            return .consume(
                .init(
                    requestID: try need(requestId, "request_id"),
                    subscriptionID: try need(subscriptionId, "subscription_id"),
                    credit: try need(credit, "credit"),
                    queue: try need(queue, "queue")
                )
            )
        case "ACK", "NACK":
            let body = Frame.Acknowledgement(
                requestID: try need(requestId, "request_id"),
                ackWanted: try need(ackWanted, "ack_wanted"),
                deliveryID: try need(deliveryId, "delivery_id")
            )
            return self.type == "ACK" ? .ack(body) : .nack(body)
        case "SET":
            return .set(
                .init(
                    requestID: try need(requestId, "request_id"),
                    ackWanted: try need(ackWanted, "ack_wanted"),
                    key: try need(key, "key"),
                    headers: decodedHeaders,
                    payload: decodedPayload
                )
            )
        case "GET":
            return .get(.init(requestID: try need(requestId, "request_id"), key: try need(key, "key")))
        case "WATCH":
            return .watch(
                .init(
                    requestID: try need(requestId, "request_id"),
                    subscriptionID: try need(subscriptionId, "subscription_id"),
                    key: try need(key, "key")
                )
            )
        case "VALUE":
            let valueTarget: Frame.Value.Target
            switch try need(target, "target") {
            case "get": valueTarget = .get(requestID: try need(requestId, "request_id"))
            case "watch": valueTarget = .watch(subscriptionID: try need(subscriptionId, "subscription_id"))
            case let other: throw VectorError.badValue("target", other)
            }
            return .value(
                .init(
                    target: valueTarget,
                    key: try need(key, "key"),
                    revision: try need(revision, "revision"),
                    headers: decodedHeaders,
                    payload: decodedPayload
                )
            )
        case "REQUEST":
            return .request(
                .init(
                    requestID: try need(requestId, "request_id"),
                    timeoutMilliseconds: try need(timeoutMs, "timeout_ms"),
                    subject: try need(subject, "subject"),
                    headers: decodedHeaders,
                    payload: decodedPayload
                )
            )
        case "REPLY":
            return .reply(
                .init(
                    requestID: try need(requestId, "request_id"),
                    ackWanted: try need(ackWanted, "ack_wanted"),
                    replyID: try need(replyId, "reply_id"),
                    headers: decodedHeaders,
                    payload: decodedPayload
                )
            )
        case "RESPONSE":
            return .response(
                .init(requestID: try need(requestId, "request_id"), headers: decodedHeaders, payload: decodedPayload)
            )
        default:
            throw VectorError.badValue("type", self.type)
        }
    }
}

enum VectorError: Error {
    case missingField(String, String)
    case badValue(String, String)
}

/// Hex text to bytes and back, for fixtures and messages.
enum HexText {
    static func bytes(_ text: String) -> [UInt8] {
        let digits = Array(text.utf8)
        precondition(digits.count % 2 == 0, "odd hex length in \(text)")
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(value(digits[$0]) << 4 | value(digits[$0 + 1])) }
    }

    static func string(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    private static func value(_ digit: UInt8) -> UInt8 {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: preconditionFailure("not a hex digit: \(digit)")
        }
    }
}
