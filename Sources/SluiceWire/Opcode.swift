/// The byte after a frame's length that says which frame it is.
///
/// Numbers are grouped by area: `0x0_` session, `0x1_` subjects, `0x2_` queues, `0x3_` keys, `0x4_` requests.
/// Any other byte is ``ErrorCode/unknownOpcode``. `docs/PROTOCOL.md` lists the same table.
public struct Opcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The byte on the wire.
    public let rawValue: UInt8

    /// Wraps a byte, known or not.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Which side of a connection may send a frame.
    public enum Sender: Hashable, Sendable {
        /// Only clients send it; a server never does.
        case client
        /// Only the server sends it; a client sending it gets ``ErrorCode/unexpectedFrame``.
        case server
        /// Either side.
        case either
    }

    /// HELLO: the client opens the connection (version, name, optional token).
    public static let hello = Opcode(rawValue: 0x01)
    /// WELCOME: the server accepts the connection (version, limits, server name).
    public static let welcome = Opcode(rawValue: 0x02)
    /// PING: are you there? Answered with PONG.
    public static let ping = Opcode(rawValue: 0x03)
    /// PONG: the answer to PING.
    public static let pong = Opcode(rawValue: 0x04)
    /// OK: the request with this id succeeded.
    public static let ok = Opcode(rawValue: 0x05)
    /// ERROR: a request failed, or the connection is about to close (request id, code, message).
    public static let error = Opcode(rawValue: 0x06)
    /// GOODBYE: the sender will send nothing more and closes once the other side is done.
    public static let goodbye = Opcode(rawValue: 0x07)
    /// STATS: the client asks for the server's counters.
    public static let stats = Opcode(rawValue: 0x08)
    /// STATS_REPLY: the server's counters, answering STATS.
    public static let statsReply = Opcode(rawValue: 0x09)
    /// PUB: publish a message to a subject.
    public static let pub = Opcode(rawValue: 0x10)
    /// SUB: subscribe to a subject pattern, optionally in a queue group.
    public static let sub = Opcode(rawValue: 0x11)
    /// UNSUB: end a subscription, a queue consumer or a watch.
    public static let unsub = Opcode(rawValue: 0x12)
    /// MSG: a message delivered to a subscription, a queue consumer or a responder.
    public static let msg = Opcode(rawValue: 0x13)
    /// LAGGED: a subscription fell behind and missed this many messages.
    public static let lagged = Opcode(rawValue: 0x14)
    /// PUSH: put a message on a work queue.
    public static let push = Opcode(rawValue: 0x20)
    /// CONSUME: take messages from a work queue, at most `credit` unacknowledged at a time.
    public static let consume = Opcode(rawValue: 0x21)
    /// ACK: a queue message was processed.
    public static let ack = Opcode(rawValue: 0x22)
    /// NACK: a queue message was not processed; deliver it again.
    public static let nack = Opcode(rawValue: 0x23)
    /// SET: store a key's value.
    public static let set = Opcode(rawValue: 0x30)
    /// GET: read a key's current value once.
    public static let get = Opcode(rawValue: 0x31)
    /// WATCH: receive a key's current value, then every newer one.
    public static let watch = Opcode(rawValue: 0x32)
    /// VALUE: a key's value, answering GET or WATCH.
    public static let value = Opcode(rawValue: 0x33)
    /// REQUEST: ask one responder on a subject, with a timeout.
    public static let request = Opcode(rawValue: 0x40)
    /// REPLY: a responder answers a request it received as MSG.
    public static let reply = Opcode(rawValue: 0x41)
    /// RESPONSE: the answer to the requester's REQUEST.
    public static let response = Opcode(rawValue: 0x42)

    /// Every opcode this version defines, in number order.
    public static let allKnown: [Opcode] = [
        .hello, .welcome, .ping, .pong, .ok, .error, .goodbye, .stats, .statsReply, .pub, .sub, .unsub, .msg,
        .lagged, .push, .consume, .ack, .nack, .set, .get, .watch, .value, .request, .reply, .response,
    ]

    /// The protocol name (`PUB`), or nil for a byte this version does not define.
    public var name: String? { Self.table[Int(self.rawValue)]?.name }

    /// Who may send this frame, or nil for an unknown opcode. A broker answers a frame from the wrong side with
    /// ``ErrorCode/unexpectedFrame``.
    public var sender: Sender? { Self.table[Int(self.rawValue)]?.sender }

    /// `PUB (0x10)`.
    public var description: String { "\(self.name ?? "UNKNOWN") (\(Hex.byte(self.rawValue)))" }

    /// Name and sender per byte value, indexed by the raw value.
    private static let table: [(name: String, sender: Sender)?] = {
        var table: [(name: String, sender: Sender)?] = Array(repeating: nil, count: 256)
        let entries: [(Opcode, String, Sender)] = [
            (.hello, "HELLO", .client), (.welcome, "WELCOME", .server), (.ping, "PING", .either),
            (.pong, "PONG", .either), (.ok, "OK", .server), (.error, "ERROR", .server),
            (.goodbye, "GOODBYE", .either), (.stats, "STATS", .client), (.statsReply, "STATS_REPLY", .server),
            (.pub, "PUB", .client), (.sub, "SUB", .client), (.unsub, "UNSUB", .client), (.msg, "MSG", .server),
            (.lagged, "LAGGED", .server), (.push, "PUSH", .client), (.consume, "CONSUME", .client),
            (.ack, "ACK", .client), (.nack, "NACK", .client), (.set, "SET", .client), (.get, "GET", .client),
            (.watch, "WATCH", .client), (.value, "VALUE", .server), (.request, "REQUEST", .client),
            (.reply, "REPLY", .client), (.response, "RESPONSE", .server),
        ]
        for (opcode, name, sender) in entries { table[Int(opcode.rawValue)] = (name, sender) }
        return table
    }()
}
