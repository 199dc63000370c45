extension Frame {
    /// PUB: publish a message to every subscriber of a subject.
    ///
    /// Wire: `request_id u32, flags u8 (0x01 ACK_WANTED), subject str, headers, payload`. Without the ACK_WANTED
    /// flag the server sends no OK (the fast path) but still sends ERROR if the publish fails.
    public struct Publish: Hashable, Sendable {
        /// Echoed in OK or ERROR.
        public var requestID: UInt32
        /// Whether the server confirms with OK.
        public var ackWanted: Bool
        /// The subject: dot-separated tokens, no wildcards (``NameKind/subject``).
        public var subject: String
        /// Optional headers, passed through to subscribers.
        public var headers: Headers
        /// The message bytes.
        public var payload: Payload

        /// Creates a PUB.
        public init(
            requestID: UInt32 = 0,
            ackWanted: Bool = false,
            subject: String,
            headers: Headers = Headers(),
            payload: Payload
        ) {
            self.requestID = requestID
            self.ackWanted = ackWanted
            self.subject = subject
            self.headers = headers
            self.payload = payload
        }
    }

    /// SUB: subscribe to a subject pattern. Answered with OK (from then on every matching publish is delivered) or
    /// ERROR.
    ///
    /// Wire: `request_id u32, flags u8 (0x01 HAS_QUEUE_GROUP), subscription_id u32, pattern str,
    /// [queue_group str]`.
    public struct Subscribe: Hashable, Sendable {
        /// Echoed in OK or ERROR.
        public var requestID: UInt32
        /// Chosen by the client, unique among its live SUB, CONSUME and WATCH; MSG and LAGGED carry it.
        public var subscriptionID: UInt32
        /// The pattern: a subject whose tokens may be `*` (one token) or, last, `>` (one or more tokens).
        public var pattern: String
        /// Subscribers sharing a queue group on a pattern receive each message once per group, not once each.
        public var queueGroup: String?

        /// Creates a SUB.
        public init(requestID: UInt32, subscriptionID: UInt32, pattern: String, queueGroup: String? = nil) {
            self.requestID = requestID
            self.subscriptionID = subscriptionID
            self.pattern = pattern
            self.queueGroup = queueGroup
        }
    }

    /// UNSUB: end a subscription (SUB), a queue consumer (CONSUME) or a watch (WATCH).
    ///
    /// Wire: `request_id u32, subscription_id u32`.
    public struct Unsubscribe: Hashable, Sendable {
        /// Echoed in OK or ERROR.
        public var requestID: UInt32
        /// The subscription to end.
        public var subscriptionID: UInt32

        /// Creates an UNSUB.
        public init(requestID: UInt32, subscriptionID: UInt32) {
            self.requestID = requestID
            self.subscriptionID = subscriptionID
        }
    }

    /// MSG: a message delivered to a client.
    ///
    /// Wire: `subscription_id u32, flags u8, [id u64], subject str, headers, payload`, where flags are
    /// 0x01 REDELIVERED, 0x02 QUEUE, 0x04 REQUEST, in one of four combinations (none, QUEUE, QUEUE|REDELIVERED,
    /// REQUEST; anything else is ``ErrorCode/invalidFlags``), and `id` is present exactly when QUEUE or REQUEST
    /// is set.
    public struct Message: Hashable, Sendable {
        /// How the message reached the client, and what the client owes in return.
        public enum Delivery: Hashable, Sendable {
            /// A publish matching a SUB. Nothing to answer.
            case subject
            /// A queue message for a CONSUME: answer with ACK or NACK carrying `deliveryID`. `redelivered` says an
            /// earlier delivery of it was NACKed or its consumer left without ACK.
            case queue(deliveryID: UInt64, redelivered: Bool)
            /// A REQUEST to a responder's SUB: answer with REPLY carrying `replyID`.
            case request(replyID: UInt64)
        }

        /// The SUB or CONSUME this delivery belongs to.
        public var subscriptionID: UInt32
        /// Which of the three kinds of delivery this is.
        public var delivery: Delivery
        /// The subject it was published to (SUB, REQUEST) or the queue name (CONSUME).
        public var subject: String
        /// The publisher's headers.
        public var headers: Headers
        /// The publisher's bytes.
        public var payload: Payload

        /// Creates a MSG.
        public init(
            subscriptionID: UInt32,
            delivery: Delivery = .subject,
            subject: String,
            headers: Headers = Headers(),
            payload: Payload
        ) {
            self.subscriptionID = subscriptionID
            self.delivery = delivery
            self.subject = subject
            self.headers = headers
            self.payload = payload
        }
    }

    /// LAGGED: a subscription fell more than the subject's buffer behind and skipped messages; deliveries continue
    /// with the oldest message still buffered.
    ///
    /// Wire: `subscription_id u32, missed u64`.
    public struct Lagged: Hashable, Sendable {
        /// The subscription that fell behind.
        public var subscriptionID: UInt32
        /// Exactly how many messages it missed.
        public var missed: UInt64

        /// Creates a LAGGED.
        public init(subscriptionID: UInt32, missed: UInt64) {
            self.subscriptionID = subscriptionID
            self.missed = missed
        }
    }
}
