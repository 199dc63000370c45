/// One frame of the Sluice protocol, in either direction.
///
/// On the wire every frame is a 4-byte big-endian length of what follows, a 1-byte ``Opcode``, then the frame's
/// fields; `docs/PROTOCOL.md` shows each one byte by byte. ``FrameDecoder`` turns bytes into frames and
/// ``FrameEncoder`` turns frames into bytes; encoding a decoded frame gives back exactly the bytes it came from.
///
/// Frames with more than one field carry a struct named for what they do (``Publish``, ``Message``, …), so code
/// reads `frame.subject` rather than a tuple position. A ``Payload`` decoded from the wire is a view into the read
/// buffer, not a copy.
///
/// Which side may send what: ``Opcode/sender``. The four delivery kinds and their frames:
///
/// | kind | client sends | server sends |
/// |---|---|---|
/// | subjects (pub/sub) | ``pub(_:)``, ``sub(_:)``, ``unsub(_:)`` | ``msg(_:)``, ``lagged(_:)`` |
/// | queues (work) | ``push(_:)``, ``consume(_:)``, ``ack(_:)``, ``nack(_:)`` | ``msg(_:)`` |
/// | keys (latest value) | ``set(_:)``, ``get(_:)``, ``watch(_:)`` | ``value(_:)`` |
/// | requests | ``request(_:)``, ``reply(_:)`` | ``msg(_:)`` to the responder, ``response(_:)`` |
///
/// ## Examples
///
/// ```swift
/// var encoder = FrameEncoder()
/// try encoder.encode(.pub(.init(requestID: 1, subject: "orders.eu.created", payload: "{}")))
/// try encoder.encode(.ping)
/// try encoder.withUnsafeBytes { try socket.write($0) }   // both frames, one write
/// ```
public enum Frame: Hashable, Sendable {
    // Session
    /// HELLO: the client's first frame.
    case hello(Hello)
    /// WELCOME: the server accepts HELLO.
    case welcome(Welcome)
    /// PING: answered with PONG. Either side may send it.
    case ping
    /// PONG: the answer to PING.
    case pong
    /// OK: the request with this id succeeded.
    case ok(requestID: UInt32)
    /// ERROR: a request failed (code 100 and up), or the connection closes (codes below 100).
    case error(ErrorReport)
    /// GOODBYE: the sender sends nothing after this; either side may send it.
    case goodbye
    /// STATS: the client asks for the server's counters.
    case stats(requestID: UInt32)
    /// STATS_REPLY: the server's counters.
    case statsReply(StatsReply)

    // Subjects
    /// PUB: publish to a subject.
    case pub(Publish)
    /// SUB: subscribe to a pattern.
    case sub(Subscribe)
    /// UNSUB: end a subscription, a queue consumer or a watch.
    case unsub(Unsubscribe)
    /// MSG: a delivery to a subscription, a queue consumer or a responder.
    case msg(Message)
    /// LAGGED: a subscription missed messages because it fell behind.
    case lagged(Lagged)

    // Queues
    /// PUSH: put a message on a work queue.
    case push(Push)
    /// CONSUME: take messages from a work queue.
    case consume(Consume)
    /// ACK: a queue delivery was processed.
    case ack(Acknowledgement)
    /// NACK: a queue delivery was not processed; deliver it again.
    case nack(Acknowledgement)

    // Keys
    /// SET: store a key's value.
    case set(SetKey)
    /// GET: read a key's value once.
    case get(GetKey)
    /// WATCH: follow a key's value.
    case watch(WatchKey)
    /// VALUE: a key's value, for GET or WATCH.
    case value(Value)

    // Requests
    /// REQUEST: ask one responder.
    case request(Request)
    /// REPLY: a responder's answer.
    case reply(Reply)
    /// RESPONSE: the answer, delivered to the requester.
    case response(Response)

    /// The opcode this frame is sent with.
    public var opcode: Opcode {
        switch self {
        case .hello: .hello
        case .welcome: .welcome
        case .ping: .ping
        case .pong: .pong
        case .ok: .ok
        case .error: .error
        case .goodbye: .goodbye
        case .stats: .stats
        case .statsReply: .statsReply
        case .pub: .pub
        case .sub: .sub
        case .unsub: .unsub
        case .msg: .msg
        case .lagged: .lagged
        case .push: .push
        case .consume: .consume
        case .ack: .ack
        case .nack: .nack
        case .set: .set
        case .get: .get
        case .watch: .watch
        case .value: .value
        case .request: .request
        case .reply: .reply
        case .response: .response
        }
    }

    /// The request id, for frames that carry one (every client request, and OK, ERROR, STATS_REPLY, RESPONSE and a
    /// VALUE answering GET).
    public var requestID: UInt32? {
        switch self {
        case .ok(let id), .stats(let id): id
        case .error(let frame): frame.requestID
        case .statsReply(let frame): frame.requestID
        case .pub(let frame): frame.requestID
        case .sub(let frame): frame.requestID
        case .unsub(let frame): frame.requestID
        case .push(let frame): frame.requestID
        case .consume(let frame): frame.requestID
        case .ack(let frame), .nack(let frame): frame.requestID
        case .set(let frame): frame.requestID
        case .get(let frame): frame.requestID
        case .watch(let frame): frame.requestID
        case .value(let frame):
            if case .get(let id) = frame.target { id } else { nil }
        case .request(let frame): frame.requestID
        case .reply(let frame): frame.requestID
        case .response(let frame): frame.requestID
        case .hello, .welcome, .ping, .pong, .goodbye, .msg, .lagged: nil
        }
    }
}
