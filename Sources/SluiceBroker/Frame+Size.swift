import SluiceIO
import SluiceWire

extension Frame {
    /// Roughly the bytes this frame takes on the wire: exact for payloads, subjects and headers, a fixed allowance
    /// for the rest. The outbox charges it until the frame is written.
    var estimatedSize: Int {
        switch self {
        case .msg(let message):
            32 + message.subject.utf8.count + message.headers.estimatedSize + message.payload.count
        case .value(let value):
            32 + value.key.utf8.count + value.headers.estimatedSize + value.payload.count
        case .response(let response):
            16 + response.headers.estimatedSize + response.payload.count
        case .error(let report):
            16 + report.message.utf8.count
        case .statsReply(let reply):
            16 + reply.entries.reduce(0) { $0 + 10 + $1.name.utf8.count }
        case .welcome(let welcome):
            32 + welcome.serverName.utf8.count
        default:
            16
        }
    }
}

extension Headers {
    /// Bytes on the wire.
    var estimatedSize: Int {
        self.fields.reduce(2) { $0 + 4 + $1.name.utf8.count + $1.value.utf8.count }
    }
}

/// Encoded frames as the socket writes them: the encoder's buffer, handed over without a copy.
///
/// A wrapper rather than a conformance of `Payload` itself, so that no two modules of the package declare the same
/// conformance.
struct EncodedFrames: OutboundBytes {
    let payload: Payload

    var count: Int { self.payload.count }

    func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try self.payload.withUnsafeBytes(body)
    }
}
