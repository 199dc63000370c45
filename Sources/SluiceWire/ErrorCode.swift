/// A stable error number carried by an ERROR frame, with a name.
///
/// Codes below 100 are **connection errors**: the frame stream is broken or the peer may not go on, so the sender
/// of the ERROR closes the connection after it. Codes from 100 up are **request errors**: one request failed, its
/// request id is in the ERROR frame, and the connection stays open. ``closesConnection`` applies that rule, so a
/// client handles a code it does not know yet the right way.
///
/// A struct with static members rather than an enum: a new code never breaks a client's `switch`, and the numbers
/// live in this one file, mirrored by the table in `docs/PROTOCOL.md` (a test compares the two).
///
/// ## Examples
///
/// ```swift
/// if error.code == .queueFull { retryLater() }
/// if error.code.closesConnection { reconnect() }
/// print(ErrorCode(rawValue: 103))  // QUEUE_FULL (103)
/// ```
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The number on the wire (a big-endian `u16` in the ERROR frame).
    public let rawValue: UInt16

    /// Wraps a number, known or not.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    // MARK: Connection errors (1–99): the connection is closed after the ERROR.

    /// The announced frame length is over the receiver's maximum frame size. Rejected from the 4 length bytes alone,
    /// before anything of that size is allocated.
    public static let frameTooLarge = ErrorCode(rawValue: 1)
    /// The opcode byte names no frame.
    public static let unknownOpcode = ErrorCode(rawValue: 2)
    /// The frame ends inside a fixed-size field (an integer, a flags byte, a string's 2-byte length), or has no
    /// opcode at all (announced length 0).
    public static let truncatedField = ErrorCode(rawValue: 3)
    /// A string field is not valid UTF-8.
    public static let invalidUTF8 = ErrorCode(rawValue: 4)
    /// A string length or a header or statistics count announces more bytes than are left in the frame.
    public static let lengthOverrun = ErrorCode(rawValue: 5)
    /// Bytes are left over after the last field of a frame that has no payload.
    public static let trailingBytes = ErrorCode(rawValue: 6)
    /// A flags byte has a reserved bit set, or a combination of bits that means nothing.
    public static let invalidFlags = ErrorCode(rawValue: 7)
    /// The first frame of a connection was not HELLO.
    public static let helloRequired = ErrorCode(rawValue: 10)
    /// The server does not speak the protocol version HELLO asked for.
    public static let unsupportedVersion = ErrorCode(rawValue: 11)
    /// HELLO's token is missing or wrong.
    public static let authenticationFailed = ErrorCode(rawValue: 12)
    /// A well-formed frame that this side never accepts here: a server frame sent by a client, or a second HELLO.
    public static let unexpectedFrame = ErrorCode(rawValue: 13)
    /// The peer sent nothing, not even PONG, for longer than the idle timeout.
    public static let idleTimeout = ErrorCode(rawValue: 14)
    /// The client fell so far behind reading that the server stopped buffering for it.
    public static let slowConsumer = ErrorCode(rawValue: 15)
    /// The server is at its connection limit.
    public static let tooManyConnections = ErrorCode(rawValue: 16)
    /// The server is shutting down and takes no new connections.
    public static let shuttingDown = ErrorCode(rawValue: 17)

    // MARK: Request errors (100–199): the request failed, the connection stays open.

    /// A subject or subscription pattern breaks the name grammar (see ``NameKind``).
    public static let badSubject = ErrorCode(rawValue: 100)
    /// A queue, key or queue-group name breaks the name grammar.
    public static let badName = ErrorCode(rawValue: 101)
    /// The connection may not do this.
    public static let notPermitted = ErrorCode(rawValue: 102)
    /// PUSH with the no-wait flag found the queue full.
    public static let queueFull = ErrorCode(rawValue: 103)
    /// REQUEST found nobody serving the subject.
    public static let noResponders = ErrorCode(rawValue: 104)
    /// The responder chosen for a REQUEST left before replying.
    public static let responderGone = ErrorCode(rawValue: 105)
    /// No RESPONSE arrived before the REQUEST's timeout.
    public static let timeout = ErrorCode(rawValue: 106)
    /// The connection has as many subscriptions (SUB, CONSUME, WATCH) as the server allows.
    public static let tooManySubscriptions = ErrorCode(rawValue: 107)
    /// A subscription id, delivery id or reply id the server does not know (or no longer knows).
    public static let unknownID = ErrorCode(rawValue: 108)
    /// SUB, CONSUME or WATCH with a subscription id that is already in use on this connection.
    public static let duplicateID = ErrorCode(rawValue: 109)
    /// SET, WATCH, PUSH or CONSUME would create a key or a queue past the server's limit on their number.
    public static let limitReached = ErrorCode(rawValue: 110)

    /// Every code this version defines, in number order.
    public static let allKnown: [ErrorCode] = [
        .frameTooLarge, .unknownOpcode, .truncatedField, .invalidUTF8, .lengthOverrun, .trailingBytes,
        .invalidFlags, .helloRequired, .unsupportedVersion, .authenticationFailed, .unexpectedFrame, .idleTimeout,
        .slowConsumer, .tooManyConnections, .shuttingDown, .badSubject, .badName, .notPermitted, .queueFull,
        .noResponders, .responderGone, .timeout, .tooManySubscriptions, .unknownID, .duplicateID,
        .limitReached,
    ]

    /// Whether the side that sends this ERROR closes the connection after it: true for codes below 100.
    public var closesConnection: Bool { self.rawValue < 100 }

    /// The protocol name (`FRAME_TOO_LARGE`), or nil for a number this version does not define.
    public var name: String? {
        switch self.rawValue {
        case 1: "FRAME_TOO_LARGE"
        case 2: "UNKNOWN_OPCODE"
        case 3: "TRUNCATED_FIELD"
        case 4: "INVALID_UTF8"
        case 5: "LENGTH_OVERRUN"
        case 6: "TRAILING_BYTES"
        case 7: "INVALID_FLAGS"
        case 10: "HELLO_REQUIRED"
        case 11: "UNSUPPORTED_VERSION"
        case 12: "AUTHENTICATION_FAILED"
        case 13: "UNEXPECTED_FRAME"
        case 14: "IDLE_TIMEOUT"
        case 15: "SLOW_CONSUMER"
        case 16: "TOO_MANY_CONNECTIONS"
        case 17: "SHUTTING_DOWN"
        case 100: "BAD_SUBJECT"
        case 101: "BAD_NAME"
        case 102: "NOT_PERMITTED"
        case 103: "QUEUE_FULL"
        case 104: "NO_RESPONDERS"
        case 105: "RESPONDER_GONE"
        case 106: "TIMEOUT"
        case 107: "TOO_MANY_SUBSCRIPTIONS"
        case 108: "UNKNOWN_ID"
        case 109: "DUPLICATE_ID"
        case 110: "LIMIT_REACHED"
        default: nil
        }
    }

    /// `QUEUE_FULL (103)`, or `ERROR_300 (300)` for an unknown number.
    public var description: String { "\(self.name ?? "ERROR_\(self.rawValue)") (\(self.rawValue))" }
}
