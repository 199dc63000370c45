extension Frame {
    /// PUSH: put a message on a work queue; exactly one consumer will get it.
    ///
    /// Wire: `request_id u32, flags u8 (0x01 ACK_WANTED, 0x02 NO_WAIT), queue str, headers, payload`. When the
    /// queue is full the server stops reading the connection until there is room (TCP pushes back on the
    /// producer); with NO_WAIT it answers ``ErrorCode/queueFull`` at once instead.
    public struct Push: Hashable, Sendable {
        /// Echoed in OK or ERROR.
        public var requestID: UInt32
        /// Whether the server confirms with OK once the message is queued.
        public var ackWanted: Bool
        /// Fail with QUEUE_FULL rather than wait for room.
        public var noWait: Bool
        /// The queue name (``NameKind/queue``).
        public var queue: String
        /// Optional headers, passed through to the consumer.
        public var headers: Headers
        /// The message bytes.
        public var payload: Payload

        /// Creates a PUSH.
        public init(
            requestID: UInt32 = 0,
            ackWanted: Bool = false,
            noWait: Bool = false,
            queue: String,
            headers: Headers = Headers(),
            payload: Payload
        ) {
            self.requestID = requestID
            self.ackWanted = ackWanted
            self.noWait = noWait
            self.queue = queue
            self.headers = headers
            self.payload = payload
        }
    }

    /// CONSUME: take messages from a queue, holding at most `credit` unacknowledged at a time.
    ///
    /// Wire: `request_id u32, subscription_id u32, credit u32, queue str`. CONSUME again with the same
    /// subscription id and queue changes the credit (0 pauses); UNSUB ends the consumer, and its unacknowledged
    /// messages are delivered again to others.
    public struct Consume: Hashable, Sendable {
        /// Echoed in OK or ERROR.
        public var requestID: UInt32
        /// Chosen by the client; MSG deliveries for this consumer carry it.
        public var subscriptionID: UInt32
        /// Unacknowledged messages this consumer may hold at once.
        public var credit: UInt32
        /// The queue name.
        public var queue: String

        /// Creates a CONSUME.
        public init(requestID: UInt32, subscriptionID: UInt32, credit: UInt32, queue: String) {
            self.requestID = requestID
            self.subscriptionID = subscriptionID
            self.credit = credit
            self.queue = queue
        }
    }

    /// ACK or NACK: settle one queue delivery.
    ///
    /// Wire (both): `request_id u32, flags u8 (0x01 ACK_WANTED), delivery_id u64`. ACK removes the message; NACK
    /// puts it back to be delivered again, marked redelivered. Either frees one unit of the consumer's credit.
    public struct Acknowledgement: Hashable, Sendable {
        /// Echoed in OK or ERROR.
        public var requestID: UInt32
        /// Whether the server confirms with OK.
        public var ackWanted: Bool
        /// The `deliveryID` of the MSG being settled.
        public var deliveryID: UInt64

        /// Creates an ACK or NACK body.
        public init(requestID: UInt32 = 0, ackWanted: Bool = false, deliveryID: UInt64) {
            self.requestID = requestID
            self.ackWanted = ackWanted
            self.deliveryID = deliveryID
        }
    }
}
