/// Appends frames to a growable byte buffer, ready for one write.
///
/// Encode every frame that is ready, write the bytes once, then ``removeAll(keepingCapacity:)`` and reuse the
/// buffer: once it has grown to the batch size, encoding allocates nothing.
///
/// ```swift
/// var encoder = FrameEncoder()
/// for frame in ready { try encoder.encode(frame) }
/// try encoder.withUnsafeBytes { try socket.write($0) }
/// encoder.removeAll()
/// ```
///
/// An async write that must own its bytes takes them with ``takeEncoded()``: no copy, and the encoder reuses the
/// memory when the write has let go of it. To send a large payload without copying it at all,
/// ``encodeExceptPayload(_:)`` writes the frame up to its payload and hands the payload back, for a vectored write
/// (`writev`) of both.
///
/// ## Errors
///
/// ``FrameEncodingError`` when a frame cannot be represented: a string over 65,535 UTF-8 bytes, more than 65,535
/// headers or statistics, or a frame over 4 GiB. The buffer is then left exactly as it was before the call.
public struct FrameEncoder: Sendable {
    /// The output buffer; bytes `0..<count` are encoded frames. Shared only after ``takeEncoded()`` (or a copy of the
    /// encoder): every encode checks it is the only owner first and moves to a fresh buffer otherwise, so a taken
    /// `Payload` never changes.
    private var storage: ByteStorage
    /// Bytes encoded so far.
    public private(set) var count = 0
    /// The last MSG without headers that ``encodeMessage(subscriptionID:subject:headers:payload:)`` wrote into this
    /// buffer: the next one to the same subscription and subject copies its bytes up to the payload from there.
    private var lastMessage: LastMessage?

    /// Where a MSG's bytes up to its payload can be copied from.
    private struct LastMessage: Sendable {
        let subscriptionID: UInt32
        let subject: String
        /// Buffer index of its length field.
        let offset: Int
        /// Its bytes after the length field up to the payload: opcode, subscription id, flags, subject, header count.
        let prefixLength: Int
    }

    /// Creates an empty encoder with room for `capacity` bytes.
    public init(reservingCapacity capacity: Int = 4096) {
        self.storage = ByteStorage(capacity: max(capacity, 64))
    }

    /// Whether nothing is encoded.
    public var isEmpty: Bool { self.count == 0 }

    /// Bytes the buffer holds before it must grow. For tests.
    var bufferCapacity: Int { self.storage.capacity }

    /// The buffer, to tell in tests whether memory was reused.
    var bufferIdentity: ObjectIdentifier { ObjectIdentifier(self.storage) }

    /// A copy of the encoded bytes. For tests and small jobs; to write, use ``withUnsafeBytes(_:)`` or
    /// ``takeEncoded()``, which do not copy.
    public var bytes: [UInt8] { self.withUnsafeBytes { Array($0) } }

    /// Calls `body` with the encoded bytes; the pointer is valid only inside `body`.
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        defer { withExtendedLifetime(self.storage) {} }
        return try body(UnsafeRawBufferPointer(start: self.storage.base, count: self.count))
    }

    /// Hands over everything encoded so far as an owned, immutable ``Payload`` (no copy), for a write that
    /// outlives this call, and leaves the encoder empty. The encoder reuses its memory once that payload is gone.
    public mutating func takeEncoded() -> Payload {
        defer {
            self.count = 0
            self.lastMessage = nil
        }
        return Payload(storage: self.storage, start: 0, count: self.count)
    }

    /// Forgets the encoded bytes, keeping the memory for the next batch unless told otherwise.
    public mutating func removeAll(keepingCapacity: Bool = true) {
        self.count = 0
        self.lastMessage = nil
        if !keepingCapacity { self.storage = ByteStorage(capacity: 64) }
    }

    /// Appends `frame`.
    ///
    /// ## Errors
    ///
    /// ``FrameEncodingError`` if the frame cannot be represented; nothing is appended then.
    public mutating func encode(_ frame: Frame) throws(FrameEncodingError) {
        _ = try self.encode(frame, includingPayload: true)
    }

    /// Appends `frame` up to, not including, its payload, and returns the payload: write these bytes and then the
    /// payload's bytes, and the peer receives exactly what ``encode(_:)`` would have produced. For frames without a
    /// payload this is ``encode(_:)`` and returns an empty payload.
    ///
    /// ## Errors
    ///
    /// ``FrameEncodingError`` if the frame cannot be represented; nothing is appended then.
    public mutating func encodeExceptPayload(_ frame: Frame) throws(FrameEncodingError) -> Payload {
        try self.encode(frame, includingPayload: false)
    }

    /// Appends a subject MSG, exactly as ``encode(_:)`` appends `.msg(Frame.Message(subscriptionID:subject:headers:
    /// payload:))`, without building the frame: the broker's fan-out path, once per message and subscriber.
    ///
    /// ## Errors
    ///
    /// ``FrameEncodingError`` if the frame cannot be represented; nothing is appended then.
    public mutating func encodeMessage(
        subscriptionID: UInt32,
        subject: String,
        headers: Headers,
        payload: Payload
    ) throws(FrameEncodingError) {
        if !isKnownUniquelyReferenced(&self.storage) { self.grow(to: self.storage.capacity) }
        if headers.isEmpty, let last = self.lastMessage, last.subscriptionID == subscriptionID, last.subject == subject
        {
            // The same subscription and subject as the MSG before: copy its bytes up to the payload (a fan-out batch
            // is mostly one subject), then the length and the payload.
            let length = last.prefixLength + payload.count
            guard length <= Int(UInt32.max) else { throw FrameEncodingError.frameTooLarge(byteCount: length) }
            self.reserve(4 + length)
            let base = self.storage.base + self.count
            base.storeBytes(of: UInt32(length).bigEndian, as: UInt32.self)
            (base + 4).copyMemory(from: self.storage.base + last.offset + 4, byteCount: last.prefixLength)
            payload.withUnsafeBytes { bytes in
                if let source = bytes.baseAddress {
                    (base + 4 + last.prefixLength).copyMemory(from: source, byteCount: bytes.count)
                }
            }
            self.count += 4 + length
            return
        }
        var subject = subject
        let start = self.count
        if headers.isEmpty {
            // The common case, in one pass: one capacity check, then plain stores (no header block to walk).
            let encoded: Bool? = subject.withUTF8 { utf8 -> Bool? in
                guard utf8.count <= Int(UInt16.max) else { return nil }
                let length = 1 + 4 + 1 + 2 + utf8.count + 2 + payload.count
                guard length <= Int(UInt32.max) else { return false }
                self.reserve(4 + length)
                let base = self.storage.base + self.count
                base.storeBytes(of: UInt32(length).bigEndian, as: UInt32.self)
                base.storeBytes(of: Opcode.msg.rawValue, toByteOffset: 4, as: UInt8.self)
                base.storeBytes(of: subscriptionID.bigEndian, toByteOffset: 5, as: UInt32.self)
                base.storeBytes(of: UInt8(0), toByteOffset: 9, as: UInt8.self)  // a subject delivery
                base.storeBytes(of: UInt16(utf8.count).bigEndian, toByteOffset: 10, as: UInt16.self)
                if let source = utf8.baseAddress { (base + 12).copyMemory(from: source, byteCount: utf8.count) }
                base.storeBytes(of: UInt16(0).bigEndian, toByteOffset: 12 + utf8.count, as: UInt16.self)
                payload.withUnsafeBytes { bytes in
                    if let source = bytes.baseAddress {
                        (base + 14 + utf8.count).copyMemory(from: source, byteCount: bytes.count)
                    }
                }
                self.count += 4 + length
                return true
            }
            switch encoded {
            case .some(true):
                self.lastMessage = LastMessage(
                    subscriptionID: subscriptionID,
                    subject: subject,
                    offset: start,
                    prefixLength: self.count - start - 4 - payload.count
                )
                return
            case .some(false):
                throw FrameEncodingError.frameTooLarge(
                    byteCount: 1 + 4 + 1 + 2 + subject.utf8.count + 2 + payload.count
                )
            case .none:
                throw FrameEncodingError.stringTooLong(field: "subject", byteCount: subject.utf8.count)
            }
        }
        do throws(FrameEncodingError) {
            self.reserve(14 + payload.count)  // length, opcode, subscription id, flags, subject length, header count
            self.count += 4  // the length, stored below
            self.appendU8(Opcode.msg.rawValue)
            self.appendU32(subscriptionID)
            self.appendU8(0)  // a subject delivery
            try self.appendString(subject, field: "subject")
            try self.appendHeaders(headers)
            let length = self.count - start - 4 + payload.count
            guard length <= Int(UInt32.max) else { throw FrameEncodingError.frameTooLarge(byteCount: length) }
            self.storage.base.storeBytes(of: UInt32(length).bigEndian, toByteOffset: start, as: UInt32.self)
            payload.withUnsafeBytes { self.appendBytes($0) }
        } catch {
            self.count = start
            throw error
        }
    }

    /// Appends bytes that are already encoded frames (another encoder's ``takeEncoded()``), unchanged.
    public mutating func append(encoded frames: Payload) {
        if !isKnownUniquelyReferenced(&self.storage) { self.grow(to: self.storage.capacity) }
        frames.withUnsafeBytes { self.appendBytes($0) }
    }

    private mutating func encode(_ frame: Frame, includingPayload: Bool) throws(FrameEncodingError) -> Payload {
        if !isKnownUniquelyReferenced(&self.storage) { self.grow(to: self.storage.capacity) }
        let start = self.count
        do throws(FrameEncodingError) {
            self.reserve(5)
            self.count += 4  // the length, stored below
            self.appendU8(frame.opcode.rawValue)
            let payload = try self.appendFields(of: frame) ?? Payload()
            let length = self.count - start - 4 + payload.count
            guard length <= Int(UInt32.max) else { throw FrameEncodingError.frameTooLarge(byteCount: length) }
            self.storage.base.storeBytes(of: UInt32(length).bigEndian, toByteOffset: start, as: UInt32.self)
            guard includingPayload else { return payload }
            payload.withUnsafeBytes { self.appendBytes($0) }
            return Payload()
        } catch {
            self.count = start
            throw error
        }
    }

    // MARK: Fields

    /// Makes room for `extra` more bytes.
    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if self.count + extra > self.storage.capacity { self.grow(to: self.count + extra) }
    }

    /// Moves to a buffer of at least `needed` bytes (at least double the old one), keeping what is encoded.
    private mutating func grow(to needed: Int) {
        let fresh = ByteStorage(capacity: max(needed, 2 * self.storage.capacity))
        fresh.base.copyMemory(from: self.storage.base, byteCount: self.count)
        self.storage = fresh
    }

    @inline(__always)
    private mutating func store<Value: FixedWidthInteger>(_ value: Value) {
        let size = MemoryLayout<Value>.size
        self.reserve(size)
        self.storage.base.storeBytes(of: value.bigEndian, toByteOffset: self.count, as: Value.self)
        self.count += size
    }

    @inline(__always)
    mutating func appendU8(_ value: UInt8) { self.store(value) }
    @inline(__always)
    mutating func appendU16(_ value: UInt16) { self.store(value) }
    @inline(__always)
    mutating func appendU32(_ value: UInt32) { self.store(value) }
    @inline(__always)
    mutating func appendU64(_ value: UInt64) { self.store(value) }

    private mutating func appendBytes(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        self.reserve(bytes.count)
        (self.storage.base + self.count).copyMemory(from: source, byteCount: bytes.count)
        self.count += bytes.count
    }

    /// A 2-byte length and the UTF-8 bytes.
    mutating func appendString(_ string: String, field: StaticString) throws(FrameEncodingError) {
        let utf8 = string.utf8
        guard utf8.count <= Int(UInt16.max) else {
            throw FrameEncodingError.stringTooLong(field: "\(field)", byteCount: utf8.count)
        }
        self.appendU16(UInt16(utf8.count))
        let copied: Void? = utf8.withContiguousStorageIfAvailable { self.appendBytes(UnsafeRawBufferPointer($0)) }
        if copied == nil {
            self.reserve(utf8.count)
            for byte in utf8 { self.appendU8(byte) }
        }
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
