/// The bits of the flags bytes, per frame. Every other bit is reserved: a decoder refuses it
/// (``ErrorCode/invalidFlags``), so encoding a decoded frame always gives back the same bytes.
enum WireFlags {
    /// PUB, PUSH, ACK, NACK, SET, REPLY: the server confirms with OK.
    static let ackWanted: UInt8 = 0x01
    /// PUSH: fail with QUEUE_FULL instead of waiting for room.
    static let noWait: UInt8 = 0x02
    /// HELLO: a token string follows the client name.
    static let hasToken: UInt8 = 0x01
    /// SUB: a queue-group string follows the pattern.
    static let hasQueueGroup: UInt8 = 0x01
    /// MSG: this queue message was delivered before.
    static let redelivered: UInt8 = 0x01
    /// MSG: a queue delivery; a delivery id follows.
    static let queue: UInt8 = 0x02
    /// MSG: a request to a responder; a reply id follows.
    static let request: UInt8 = 0x04
    /// VALUE: the id is a WATCH's subscription id (otherwise a GET's request id).
    static let watch: UInt8 = 0x01
}
