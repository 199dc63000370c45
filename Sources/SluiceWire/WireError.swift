/// The decoder met bytes that are not a valid frame.
///
/// Every `WireError` is a connection error (its ``code`` is below 100): answer with an ERROR frame carrying the
/// code and close. The decoder stays failed; see ``FrameDecoder/next()``.
///
/// Like nats-server's `protoSnippet`, the error says where it happened and shows the bytes, so a log line is
/// enough to find the fault in a capture:
///
/// ```text
/// LENGTH_OVERRUN (5) at byte 10 (frame at 0, opcode 0x10): subject length 256 overruns the frame (2 bytes left)
/// [01 00 61 62]
/// ```
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why decoding failed: one of the connection-error codes 1–7.
    public let code: ErrorCode
    /// Stream offset of the offending byte: bytes fed to the decoder before it, counted from the first `append`.
    public let offset: Int
    /// Stream offset of the first length byte of the frame the error is in.
    public let frameOffset: Int
    /// The opcode byte of that frame, or nil when the frame was rejected before its opcode (``ErrorCode/frameTooLarge``,
    /// or an announced length of 0).
    public let opcode: UInt8?
    /// A short human explanation, such as `"subject length 256 overruns the frame (2 bytes left)"`.
    public let detail: String
    /// Up to 16 bytes from ``offset`` on, in hex (`"01 2c 6f 72"`), for logs.
    public let snippet: String

    /// Creates an error; the decoder is the only producer outside tests.
    public init(
        code: ErrorCode,
        offset: Int,
        frameOffset: Int,
        opcode: UInt8?,
        detail: String,
        snippet: String
    ) {
        self.code = code
        self.offset = offset
        self.frameOffset = frameOffset
        self.opcode = opcode
        self.detail = detail
        self.snippet = snippet
    }

    /// The one-line form shown above: code, offsets, opcode, detail and snippet.
    public var description: String {
        var text = "\(self.code) at byte \(self.offset) (frame at \(self.frameOffset)"
        if let opcode = self.opcode { text += ", opcode \(Hex.byte(opcode))" }
        text += "): \(self.detail) [\(self.snippet)]"
        return text
    }
}

/// Hex helpers for diagnostics. Not on any hot path.
enum Hex {
    private static let digits: [Character] = Array("0123456789abcdef")

    /// `0x1f`.
    static func byte(_ value: UInt8) -> String {
        "0x" + String(self.digits[Int(value >> 4)]) + String(self.digits[Int(value & 0x0f)])
    }

    /// Space-separated lower-case hex of `bytes`: `"00 0a ff"`.
    static func spaced(_ bytes: UnsafeRawBufferPointer) -> String {
        var text = ""
        text.reserveCapacity(bytes.count * 3)
        for (index, value) in bytes.enumerated() {
            if index > 0 { text.append(" ") }
            text.append(self.digits[Int(value >> 4)])
            text.append(self.digits[Int(value & 0x0f)])
        }
        return text
    }
}
