extension Frame {
    /// SET: store a key's value (headers and payload); watchers see it next.
    ///
    /// Wire: `request_id u32, flags u8 (0x01 ACK_WANTED), key str, headers, payload`.
    public struct SetKey: Hashable, Sendable {
        /// Echoed in OK or ERROR.
        public var requestID: UInt32
        /// Whether the server confirms with OK.
        public var ackWanted: Bool
        /// The key name (``NameKind/key``).
        public var key: String
        /// Stored with the value.
        public var headers: Headers
        /// The value.
        public var payload: Payload

        /// Creates a SET.
        public init(
            requestID: UInt32 = 0,
            ackWanted: Bool = false,
            key: String,
            headers: Headers = Headers(),
            payload: Payload
        ) {
            self.requestID = requestID
            self.ackWanted = ackWanted
            self.key = key
            self.headers = headers
            self.payload = payload
        }
    }

    /// GET: read a key's current value once; answered with VALUE (same request id) or ERROR.
    ///
    /// Wire: `request_id u32, key str`.
    public struct GetKey: Hashable, Sendable {
        /// Echoed in VALUE or ERROR.
        public var requestID: UInt32
        /// The key name.
        public var key: String

        /// Creates a GET.
        public init(requestID: UInt32, key: String) {
            self.requestID = requestID
            self.key = key
        }
    }

    /// WATCH: follow a key. Answered with OK, then a VALUE with the current value at once, then a VALUE after
    /// changes; a slow watcher may skip intermediate values but always ends on the newest.
    ///
    /// Wire: `request_id u32, subscription_id u32, key str`. UNSUB ends the watch.
    public struct WatchKey: Hashable, Sendable {
        /// Echoed in OK or ERROR.
        public var requestID: UInt32
        /// Chosen by the client; the VALUE frames of this watch carry it.
        public var subscriptionID: UInt32
        /// The key name.
        public var key: String

        /// Creates a WATCH.
        public init(requestID: UInt32, subscriptionID: UInt32, key: String) {
            self.requestID = requestID
            self.subscriptionID = subscriptionID
            self.key = key
        }
    }

    /// VALUE: a key's value, answering a GET or delivered to a WATCH.
    ///
    /// Wire: `id u32, flags u8 (0x01 WATCH), revision u64, key str, headers, payload`: `id` is the WATCH's
    /// subscription id when the flag is set, the GET's request id otherwise. Revision 0 means the key has no value
    /// (headers and payload are then empty); every SET makes it 1 higher.
    public struct Value: Hashable, Sendable {
        /// Which request this VALUE answers.
        public enum Target: Hashable, Sendable {
            /// The answer to the GET with this request id.
            case get(requestID: UInt32)
            /// A value for the WATCH with this subscription id.
            case watch(subscriptionID: UInt32)
        }

        /// The GET or WATCH this answers.
        public var target: Target
        /// The key name.
        public var key: String
        /// How many times the key has been set; 0 means it has no value.
        public var revision: UInt64
        /// The headers stored with the value.
        public var headers: Headers
        /// The value.
        public var payload: Payload

        /// Creates a VALUE.
        public init(
            target: Target,
            key: String,
            revision: UInt64,
            headers: Headers = Headers(),
            payload: Payload = Payload()
        ) {
            self.target = target
            self.key = key
            self.revision = revision
            self.headers = headers
            self.payload = payload
        }
    }
}
