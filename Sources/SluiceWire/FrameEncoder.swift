/// Appends frames to a growable byte buffer, ready for one write.
///
/// Encode every frame that is ready, write ``bytes`` once, then ``removeAll(keepingCapacity:)`` and reuse the
/// buffer: after the first few frames the encoder allocates nothing.
///
/// ```swift
/// var encoder = FrameEncoder()
/// for frame in ready { try encoder.encode(frame) }
/// try socket.write(encoder.bytes)
/// encoder.removeAll()
/// ```
///
/// To send a large payload without copying it into the buffer, ``encodeExceptPayload(_:)`` writes the frame up to
/// its payload and hands the payload back, for a vectored write (`writev`) of both.
///
/// ## Errors
///
/// ``FrameEncodingError`` when a frame cannot be represented: a string over 65,535 UTF-8 bytes, more than 65,535
/// headers or statistics, or a frame over 4 GiB. The buffer is then left exactly as it was before the call.
public struct FrameEncoder: Sendable {
    /// The encoded frames, back to back.
    public private(set) var bytes: [UInt8]

    /// Creates an empty encoder with room for `capacity` bytes.
    public init(reservingCapacity capacity: Int = 4096) {
        self.bytes = []
        self.bytes.reserveCapacity(capacity)
    }

    /// Number of bytes encoded.
    public var count: Int { self.bytes.count }

    /// Whether nothing is encoded.
    public var isEmpty: Bool { self.bytes.isEmpty }

    /// Forgets the encoded bytes, keeping the memory for the next batch unless told otherwise.
    public mutating func removeAll(keepingCapacity: Bool = true) {
        self.bytes.removeAll(keepingCapacity: keepingCapacity)
    }

    /// Appends `frame`.
    ///
    /// ## Errors
    ///
    /// ``FrameEncodingError`` if the frame cannot be represented; nothing is appended then.
    public mutating func encode(_ frame: Frame) throws(FrameEncodingError) {
        _ = try self.encode(frame, includingPayload: true)
    }

    /// Appends `frame` up to, not including, its payload, and returns the payload: write ``bytes`` and then the
    /// payload's bytes, and the peer receives exactly what ``encode(_:)`` would have produced. For frames without a
    /// payload this is ``encode(_:)`` and returns an empty payload.
    ///
    /// ## Errors
    ///
    /// ``FrameEncodingError`` if the frame cannot be represented; nothing is appended then.
    public mutating func encodeExceptPayload(_ frame: Frame) throws(FrameEncodingError) -> Payload {
        try self.encode(frame, includingPayload: false)
    }

    private mutating func encode(_ frame: Frame, includingPayload: Bool) throws(FrameEncodingError) -> Payload {
        let start = self.bytes.count
        do throws(FrameEncodingError) {
            self.appendU32(0)  // the length, patched below
            self.appendU8(frame.opcode.rawValue)
            let payload = try self.appendFields(of: frame) ?? Payload()
            let length = self.bytes.count - start - 4 + payload.count
            guard length <= Int(UInt32.max) else { throw FrameEncodingError.frameTooLarge(byteCount: length) }
            if includingPayload && !payload.isEmpty {
                payload.withUnsafeBytes { self.bytes.append(contentsOf: $0) }
            }
            self.bytes.withUnsafeMutableBytes {
                $0.storeBytes(of: UInt32(length).bigEndian, toByteOffset: start, as: UInt32.self)
            }
            return includingPayload ? Payload() : payload
        } catch {
            self.bytes.removeSubrange(start...)
            throw error
        }
    }

    // MARK: Fields

    mutating func appendU8(_ value: UInt8) { self.bytes.append(value) }

    mutating func appendU16(_ value: UInt16) {
        withUnsafeBytes(of: value.bigEndian) { self.bytes.append(contentsOf: $0) }
    }

    mutating func appendU32(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { self.bytes.append(contentsOf: $0) }
    }

    mutating func appendU64(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { self.bytes.append(contentsOf: $0) }
    }

    /// A 2-byte length and the UTF-8 bytes.
    mutating func appendString(_ string: String, field: StaticString) throws(FrameEncodingError) {
        let count = string.utf8.count
        guard count <= Int(UInt16.max) else {
            throw FrameEncodingError.stringTooLong(field: "\(field)", byteCount: count)
        }
        self.appendU16(UInt16(count))
        self.bytes.append(contentsOf: string.utf8)
    }

    /// A 2-byte count and the name–value pairs.
    mutating func appendHeaders(_ headers: Headers) throws(FrameEncodingError) {
        guard headers.count <= Int(UInt16.max) else {
            throw FrameEncodingError.tooManyEntries(field: "headers", count: headers.count)
        }
        self.appendU16(UInt16(headers.count))
        for field in headers.fields {
            try self.appendString(field.name, field: "header_name")
            try self.appendString(field.value, field: "header_value")
        }
    }
}

/// A frame that cannot be put on the wire.
public enum FrameEncodingError: Error, Hashable, Sendable {
    /// A string field is longer than its 2-byte length can say (65,535 UTF-8 bytes).
    case stringTooLong(field: String, byteCount: Int)
    /// More headers or statistics entries than a 2-byte count can say.
    case tooManyEntries(field: String, count: Int)
    /// The frame is longer than a 4-byte length can say.
    case frameTooLarge(byteCount: Int)
}
