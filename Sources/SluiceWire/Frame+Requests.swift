extension Frame {
    /// REQUEST: ask one responder on a subject and wait for its answer.
    ///
    /// Wire: `request_id u32, timeout_ms u32, subject str, headers, payload`. The server picks one subscriber of
    /// the subject, delivers a MSG with a reply id, and answers the requester with RESPONSE, or with ERROR
    /// ``ErrorCode/noResponders`` (nobody subscribed), ``ErrorCode/responderGone`` (the responder left first) or
    /// ``ErrorCode/timeout``.
    public struct Request: Hashable, Sendable {
        /// Echoed in RESPONSE or ERROR.
        public var requestID: UInt32
        /// How long to wait for the answer; 0 means the server's default.
        public var timeoutMilliseconds: UInt32
        /// The subject (no wildcards).
        public var subject: String
        /// Passed through to the responder.
        public var headers: Headers
        /// The request bytes.
        public var payload: Payload

        /// Creates a REQUEST.
        public init(
            requestID: UInt32,
            timeoutMilliseconds: UInt32 = 0,
            subject: String,
            headers: Headers = Headers(),
            payload: Payload
        ) {
            self.requestID = requestID
            self.timeoutMilliseconds = timeoutMilliseconds
            self.subject = subject
            self.headers = headers
            self.payload = payload
        }
    }

    /// REPLY: a responder answers the request it got as MSG.
    ///
    /// Wire: `request_id u32, flags u8 (0x01 ACK_WANTED), reply_id u64, headers, payload`. A reply id the server no
    /// longer knows (the requester timed out or left) gets ERROR ``ErrorCode/unknownID``.
    public struct Reply: Hashable, Sendable {
        /// The responder's own id for this REPLY, echoed in OK or ERROR.
        public var requestID: UInt32
        /// Whether the server confirms with OK.
        public var ackWanted: Bool
        /// The `replyID` of the MSG being answered.
        public var replyID: UInt64
        /// Passed through to the requester.
        public var headers: Headers
        /// The answer bytes.
        public var payload: Payload

        /// Creates a REPLY.
        public init(
            requestID: UInt32 = 0,
            ackWanted: Bool = false,
            replyID: UInt64,
            headers: Headers = Headers(),
            payload: Payload
        ) {
            self.requestID = requestID
            self.ackWanted = ackWanted
            self.replyID = replyID
            self.headers = headers
            self.payload = payload
        }
    }

    /// RESPONSE: the responder's answer, delivered to the requester.
    ///
    /// Wire: `request_id u32, headers, payload`.
    public struct Response: Hashable, Sendable {
        /// The REQUEST's id.
        public var requestID: UInt32
        /// The responder's headers.
        public var headers: Headers
        /// The responder's bytes.
        public var payload: Payload

        /// Creates a RESPONSE.
        public init(requestID: UInt32, headers: Headers = Headers(), payload: Payload) {
            self.requestID = requestID
            self.headers = headers
            self.payload = payload
        }
    }
}
