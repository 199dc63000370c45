public import SluiceWire

/// A message delivered to a subscription: the subject it was published to, the publisher's headers and bytes.
///
/// The payload is a view into the client's read buffer (see `Payload`); call `payload.compacted()` before keeping
/// a small payload for long.
public struct Message: Hashable, Sendable {
    /// The subject it was published to (a concrete subject, even when the subscription used wildcards).
    public var subject: String
    /// The publisher's headers.
    public var headers: Headers
    /// The publisher's bytes.
    public var payload: Payload

    /// Creates a message.
    public init(subject: String, headers: Headers = Headers(), payload: Payload) {
        self.subject = subject
        self.headers = headers
        self.payload = payload
    }
}

/// What a ``Subscription`` yields: a message, or the news that messages were missed.
public enum SubscriptionEvent: Hashable, Sendable {
    /// The next message, in order per publisher.
    case message(Message)
    /// The subscription fell more than the server's subject buffer behind and skipped exactly this many messages;
    /// the messages that follow are the oldest the server still had.
    case lagged(UInt64)
}

/// A key's value as the server holds it: the headers and payload of the last SET, and how many SETs there were.
public struct KeyValue: Hashable, Sendable {
    /// The key.
    public var key: String
    /// How many times the key was SET; 0 means the key has no value (headers and payload are then empty).
    public var revision: UInt64
    /// The headers of the last SET.
    public var headers: Headers
    /// The payload of the last SET.
    public var payload: Payload

    /// Whether the key has a value (`revision > 0`).
    public var exists: Bool { self.revision > 0 }

    /// Creates a value.
    public init(key: String, revision: UInt64, headers: Headers = Headers(), payload: Payload = Payload()) {
        self.key = key
        self.revision = revision
        self.headers = headers
        self.payload = payload
    }
}

/// The answer to a request: the responder's headers and bytes. Also what a responder returns from
/// ``SluiceClient/serve(_:queueGroup:handler:)``.
public struct Response: Hashable, Sendable {
    /// The responder's headers.
    public var headers: Headers
    /// The responder's bytes.
    public var payload: Payload

    /// Creates a response.
    public init(_ payload: Payload, headers: Headers = Headers()) {
        self.headers = headers
        self.payload = payload
    }
}

/// One server counter from ``SluiceClient/stats()``.
public struct Statistic: Hashable, Sendable {
    /// The counter's name (`connections`, `messages_in`, …).
    public var name: String
    /// Its value.
    public var value: UInt64

    /// Creates a counter.
    public init(name: String, value: UInt64) {
        self.name = name
        self.value = value
    }
}

/// What the server said about itself in WELCOME.
public struct ServerInfo: Hashable, Sendable {
    /// The protocol version the server speaks.
    public var version: UInt16
    /// The largest frame the server accepts (its length field).
    public var maxFrameSize: Int
    /// How long the server lets a silent connection live; zero when it never closes one.
    public var idleTimeout: Duration
    /// REQUESTs one connection may have unanswered before the server stops reading it.
    public var maxInflightRequests: Int
    /// SUB, CONSUME and WATCH subscriptions one connection may hold.
    public var maxSubscriptions: Int
    /// The server's name and version (`sluiced 0.1.0`).
    public var serverName: String
}
