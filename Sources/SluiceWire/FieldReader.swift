/// Reads the fields of one complete frame, front to back, from the decoder's buffer.
///
/// Every read checks the bytes left in the frame first, so no field can read past the frame, whatever its length
/// fields say. Failures become a ``WireError`` naming the field, with stream offsets and a hex snippet.
struct FieldReader {
    /// The decoder's buffer. Not retained: the decoder holds it for the reader's whole (one-call) life, and a
    /// retain/release pair here was 10% of decoding a small PUB. Payloads cut from it retain it themselves.
    unowned(unsafe) let storage: ByteStorage
    /// The buffer's first byte.
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
    @inline(__always)
    init(storage: __shared ByteStorage, frameStart: Int, length: Int, frameOffset: Int) {
        self.storage = storage
        self.base = UnsafeRawPointer(storage.base)
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
        // Validate first, then build the string: `String(validating:as:)` takes an unspecialized generic path (a
        // metadata lookup per string, measured at 7% of decoding a PUB), while `String(decoding:as:)` on valid
        // UTF-8 is the standard library's fast path.
        if let bad = UTF8Check.firstInvalidIndex(bytes) {
            throw self.error(.invalidUTF8, at: self.position + bad, "\(field) is not valid UTF-8 at its byte \(bad)")
        }
        let string = String(decoding: bytes, as: UTF8.self)
        self.position += count
        return string
    }

    /// A PUB's subject: ``string(_:)``, except that the same bytes as `recent`'s give back its string, neither
    /// validated nor built again (a publisher mostly repeats its subject; every delivery of it then shares one
    /// string). Otherwise `recent` becomes this subject.
    mutating func subject(recent: inout RecentSubject?) throws(WireError) -> String {
        if let cached = recent, self.remaining >= 2 {
            let count = Int(self.base.loadUnaligned(fromByteOffset: self.position, as: UInt16.self).bigEndian)
            if count == cached.bytes.count && count <= self.remaining - 2
                && cached.bytes.withUnsafeBytes({ Self.equal($0.baseAddress!, self.base + self.position + 2, count) })
            {
                self.position += 2 + count
                return cached.string
            }
        }
        let start = self.position + 2
        let subject = try self.string("subject")
        recent = RecentSubject(
            string: subject,
            bytes: Array(UnsafeRawBufferPointer(start: self.base + start, count: self.position - start))
        )
        return subject
    }

    /// Whether `count` bytes at `a` and at `b` are equal: eight at a time, then one at a time.
    @inline(__always)
    private static func equal(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
        var offset = 0
        while offset + 8 <= count {
            guard
                a.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                    == b.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            else { return false }
            offset += 8
        }
        while offset < count {
            guard a.load(fromByteOffset: offset, as: UInt8.self) == b.load(fromByteOffset: offset, as: UInt8.self)
            else { return false }
            offset += 1
        }
        return true
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

    /// The rest of the frame as a view into the buffer: no copy, one retain.
    mutating func payload() -> Payload {
        defer { self.position = self.end }
        return Payload(storage: self.storage, start: self.position, count: self.remaining)
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

/// The UTF-8 validator of the decoder: the Unicode definition (RFC 3629, Unicode 15 table 3-7), so no overlong
/// forms, no UTF-16 surrogates, nothing above U+10FFFF. The fuzz target checks it against the standard library's
/// `String(validating:as:)` on every input.
enum UTF8Check {
    /// Index of the first byte of the first invalid sequence, or nil if `bytes` is valid UTF-8.
    static func firstInvalidIndex(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var index = 0
        let count = bytes.count
        while index < count {
            // ASCII runs, the common case for names, 8 bytes at a time.
            while index + 8 <= count
                && bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0
            {
                index += 8
            }
            guard index < count else { return nil }
            let lead = bytes[index]
            if lead < 0x80 {
                index += 1
                continue
            }
            let length: Int
            var lower: UInt8 = 0x80
            var upper: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: (length, lower) = (3, 0xA0)  // no overlong 3-byte forms
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: (length, upper) = (3, 0x9F)  // no UTF-16 surrogates
            case 0xF0: (length, lower) = (4, 0x90)  // no overlong 4-byte forms
            case 0xF1...0xF3: length = 4
            case 0xF4: (length, upper) = (4, 0x8F)  // nothing above U+10FFFF
            default: return index  // a continuation byte, C0, C1 or F5...FF where a sequence must start
            }
            guard index + length <= count else { return index }
            let second = bytes[index + 1]
            guard second >= lower && second <= upper else { return index }
            for offset in 2..<length where bytes[index + offset] & 0xC0 != 0x80 {
                return index
            }
            index += length
        }
        return nil
    }
}

/// The last PUB subject a decoder read, with its bytes: the next PUB with the same bytes reuses the string
/// (``FieldReader/subject(recent:)``).
final class RecentSubject: Sendable {
    let string: String
    /// Never empty: an empty subject is not valid, so it is never remembered.
    let bytes: [UInt8]

    init(string: String, bytes: [UInt8]) {
        self.string = string
        self.bytes = bytes
    }
}
