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
