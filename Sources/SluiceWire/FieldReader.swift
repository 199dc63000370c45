/// Reads the fields of one complete frame, front to back, from the decoder's buffer.
///
/// Every read checks the bytes left in the frame first, so no field can read past the frame, whatever its length
/// fields say. Failures become a ``WireError`` naming the field, with stream offsets and a hex snippet.
struct FieldReader {
    /// The buffer's first byte; valid while the decoder holds `storage`.
    let base: UnsafeRawPointer
    /// Buffer index of the next unread byte of the frame.
    private(set) var position: Int
    /// Buffer index one past the frame's last byte.
    let end: Int
    /// Buffer index of the frame's first length byte.
    let frameStart: Int
    /// Stream offset of `frameStart`.
    let frameOffset: Int
    /// The frame's opcode byte.
    let opcode: UInt8

    /// Bytes of the frame not read yet.
    var remaining: Int { self.end - self.position }

    /// A reader over the fields of the frame at `frameStart`, positioned after the opcode.
    init(base: UnsafeRawPointer, frameStart: Int, length: Int, frameOffset: Int) {
        self.base = base
        self.frameStart = frameStart
        self.end = frameStart + 4 + length
        self.position = frameStart + 5
        self.frameOffset = frameOffset
        self.opcode = base.load(fromByteOffset: frameStart + 4, as: UInt8.self)
    }

    /// An error at buffer index `index` (clamped to the frame), with up to 16 bytes from there as the snippet.
    func error(_ code: ErrorCode, at index: Int, _ detail: String) -> WireError {
        let index = min(max(index, self.frameStart), self.end)
        let shown = UnsafeRawBufferPointer(start: self.base + index, count: min(16, self.end - index))
        return WireError(
            code: code,
            offset: self.frameOffset + (index - self.frameStart),
            frameOffset: self.frameOffset,
            opcode: self.opcode,
            detail: detail,
            snippet: shown.isEmpty ? "(end of frame)" : Hex.spaced(shown)
        )
    }

    /// Throws ``ErrorCode/truncatedField`` unless `count` more bytes are left for `field`.
    private func need(_ count: Int, for field: StaticString) throws(WireError) {
        guard self.remaining >= count else {
            throw self.error(
                .truncatedField,
                at: self.position,
                "frame ends inside \(field) (needs \(count) bytes, \(self.remaining) left)"
            )
        }
    }

    mutating func u8(_ field: StaticString) throws(WireError) -> UInt8 {
        try self.need(1, for: field)
        defer { self.position += 1 }
        return self.base.load(fromByteOffset: self.position, as: UInt8.self)
    }

    mutating func u16(_ field: StaticString) throws(WireError) -> UInt16 {
        try self.need(2, for: field)
        defer { self.position += 2 }
        return UInt16(bigEndian: self.base.loadUnaligned(fromByteOffset: self.position, as: UInt16.self))
    }

    mutating func u32(_ field: StaticString) throws(WireError) -> UInt32 {
        try self.need(4, for: field)
        defer { self.position += 4 }
        return UInt32(bigEndian: self.base.loadUnaligned(fromByteOffset: self.position, as: UInt32.self))
    }

    mutating func u64(_ field: StaticString) throws(WireError) -> UInt64 {
        try self.need(8, for: field)
        defer { self.position += 8 }
        return UInt64(bigEndian: self.base.loadUnaligned(fromByteOffset: self.position, as: UInt64.self))
    }

    /// A flags byte: ``ErrorCode/invalidFlags`` if any bit outside `allowed` is set.
    mutating func flags(_ field: StaticString, allowed: UInt8) throws(WireError) -> UInt8 {
        let flags = try self.u8(field)
        guard flags & ~allowed == 0 else {
            throw self.error(
                .invalidFlags,
                at: self.position - 1,
                "\(field) \(Hex.byte(flags)) sets reserved bits \(Hex.byte(flags & ~allowed))"
            )
        }
        return flags
    }

    /// A string: 2-byte length, then that many bytes of valid UTF-8.
    mutating func string(_ field: StaticString) throws(WireError) -> String {
        let lengthAt = self.position
        let count = Int(try self.u16(field))
        guard count <= self.remaining else {
            throw self.error(
                .lengthOverrun,
                at: lengthAt,
                "\(field) length \(count) overruns the frame (\(self.remaining) bytes left)"
            )
        }
        let bytes = UnsafeRawBufferPointer(start: self.base + self.position, count: count)
        guard let string = String(validating: bytes, as: UTF8.self) else {
            let bad = UTF8Check.firstInvalidIndex(bytes) ?? 0
            throw self.error(.invalidUTF8, at: self.position + bad, "\(field) is not valid UTF-8 at its byte \(bad)")
        }
        self.position += count
        return string
    }

    /// A header block: 2-byte count, then that many (name, value) string pairs.
    mutating func headers() throws(WireError) -> Headers {
        let countAt = self.position
        let count = Int(try self.u16("header_count"))
        if count == 0 { return Headers() }
        // Each pair takes at least its two 2-byte lengths: refuse a count the frame cannot hold before reserving.
        guard count * 4 <= self.remaining else {
            throw self.error(
                .lengthOverrun,
                at: countAt,
                "header_count \(count) needs at least \(count * 4) bytes, \(self.remaining) left"
            )
        }
        var fields: [Headers.Field] = []
        fields.reserveCapacity(count)
        for _ in 0..<count {
            let name = try self.string("header_name")
            let value = try self.string("header_value")
            fields.append(Headers.Field(name: name, value: value))
        }
        return Headers(fields)
    }

    /// The rest of the frame as a view into `storage`: no copy.
    mutating func payload(in storage: ByteStorage) -> Payload {
        defer { self.position = self.end }
        return Payload(storage: storage, start: self.position, count: self.remaining)
    }

    /// ``ErrorCode/trailingBytes`` unless every byte of the frame was read.
    func finish() throws(WireError) {
        guard self.remaining == 0 else {
            throw self.error(
                .trailingBytes,
                at: self.position,
                "\(self.remaining) bytes after the last field"
            )
        }
    }
}

/// Finds where UTF-8 goes wrong, for the error offset. Only runs after the standard library has refused a string.
enum UTF8Check {
    /// Index of the first byte that starts an invalid sequence, or nil if `bytes` is valid UTF-8.
    static func firstInvalidIndex(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var index = 0
        while index < bytes.count {
            let lead = bytes[index]
            let length: Int
            var lower: UInt8 = 0x80
            var upper: UInt8 = 0xBF
            switch lead {
            case 0x00...0x7F: length = 1
            case 0xC2...0xDF: length = 2
            case 0xE0: (length, lower) = (3, 0xA0)  // no overlong 3-byte forms
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: (length, upper) = (3, 0x9F)  // no UTF-16 surrogates
            case 0xF0: (length, lower) = (4, 0x90)  // no overlong 4-byte forms
            case 0xF1...0xF3: length = 4
            case 0xF4: (length, upper) = (4, 0x8F)  // nothing above U+10FFFF
            default: return index
            }
            guard index + length <= bytes.count else { return index }
            for continuation in 1..<max(length, 1) {
                let byte = bytes[index + continuation]
                let (low, high) = continuation == 1 ? (lower, upper) : (UInt8(0x80), UInt8(0xBF))
                guard byte >= low && byte <= high else { return index }
            }
            index += length
        }
        return nil
    }
}
