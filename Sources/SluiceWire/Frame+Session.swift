extension Frame {
    /// The protocol version this module speaks, sent in HELLO and WELCOME.
    public static let protocolVersion: UInt16 = 1

    /// HELLO: the first frame a client sends. Anything else first is ``ErrorCode/helloRequired``.
    ///
    /// Wire: `version u16, flags u8 (0x01 HAS_TOKEN), client_name str, [token str]`.
    public struct Hello: Hashable, Sendable {
        /// The protocol version the client speaks (``Frame/protocolVersion``).
        public var version: UInt16
        /// A free-form name for logs (`"sluice-cli 0.1"`).
        public var clientName: String
        /// The shared secret, when the server requires one; nil sends no token field.
        public var token: String?

        /// Creates a HELLO.
        public init(version: UInt16 = Frame.protocolVersion, clientName: String, token: String? = nil) {
            self.version = version
            self.clientName = clientName
            self.token = token
        }
    }

    /// WELCOME: the server accepted HELLO and states its limits.
    ///
    /// Wire: `version u16, max_frame_size u32, idle_timeout_ms u32, max_inflight_requests u32,
    /// max_subscriptions u32, server_name str`.
    public struct Welcome: Hashable, Sendable {
        /// The protocol version the server will speak on this connection.
        public var version: UInt16
        /// The largest frame the server accepts (the length field's value).
        public var maxFrameSize: UInt32
        /// A connection silent for this long is closed; 0 means never. Clients PING at half of it.
        public var idleTimeoutMilliseconds: UInt32
        /// REQUESTs a connection may have waiting at once; more wait for a free slot.
        public var maxInflightRequests: UInt32
        /// SUB, CONSUME and WATCH subscriptions a connection may hold at once.
        public var maxSubscriptions: UInt32
        /// The server's software and version, for logs (`"sluiced 0.1.0"`).
        public var serverName: String

        /// Creates a WELCOME.
        public init(
            version: UInt16 = Frame.protocolVersion,
            maxFrameSize: UInt32,
            idleTimeoutMilliseconds: UInt32,
            maxInflightRequests: UInt32,
            maxSubscriptions: UInt32,
            serverName: String
        ) {
            self.version = version
            self.maxFrameSize = maxFrameSize
            self.idleTimeoutMilliseconds = idleTimeoutMilliseconds
            self.maxInflightRequests = maxInflightRequests
            self.maxSubscriptions = maxSubscriptions
            self.serverName = serverName
        }
    }

    /// ERROR: a request failed, or the connection is closing.
    ///
    /// Wire: `request_id u32, code u16, message str`. ``requestID`` is 0 when the error belongs to no request
    /// (a malformed frame, an idle timeout).
    public struct ErrorReport: Hashable, Sendable {
        /// The failed request's id, or 0.
        public var requestID: UInt32
        /// What went wrong; ``ErrorCode/closesConnection`` says whether the connection closes after this frame.
        public var code: ErrorCode
        /// A human-readable explanation, for logs only: match on ``code``.
        public var message: String

        /// Creates an ERROR.
        public init(requestID: UInt32, code: ErrorCode, message: String) {
            self.requestID = requestID
            self.code = code
            self.message = message
        }
    }

    /// STATS_REPLY: the server's counters, answering STATS.
    ///
    /// Wire: `request_id u32, count u16, count × (name str, value u64)`.
    public struct StatsReply: Hashable, Sendable {
        /// One named counter or gauge.
        public struct Entry: Hashable, Sendable {
            /// The counter's name (`"connections"`).
            public var name: String
            /// Its value.
            public var value: UInt64

            /// Creates an entry.
            public init(name: String, value: UInt64) {
                self.name = name
                self.value = value
            }
        }

        /// The STATS request's id.
        public var requestID: UInt32
        /// The counters, in the server's order.
        public var entries: [Entry]

        /// Creates a STATS_REPLY.
        public init(requestID: UInt32, entries: [Entry]) {
            self.requestID = requestID
            self.entries = entries
        }
    }
}
