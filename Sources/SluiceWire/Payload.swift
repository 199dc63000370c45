/// The bytes of a message: a view into a shared, reference-counted buffer.
///
/// A payload that came out of ``FrameDecoder/next()`` **is not a copy**: it points into the decoder's read buffer
/// and keeps that buffer alive, so routing a message to a thousand subscribers shares one set of bytes. Copying the
/// `Payload` value copies a reference and a range, never the bytes. The bytes it covers never change: the decoder
/// writes new input only past them (see ``FrameDecoder``).
///
/// Holding a payload holds its whole read buffer. Anything kept for long (a queued message, a key's value) should be
/// stored as ``compacted()``, which copies the bytes once into a block of their own size.
///
/// A payload of at most ``inlineCapacity`` (16) bytes is the exception: it holds its bytes itself, like a small
/// `String`, and refers to no buffer. Copying 16 bytes costs less than sharing them: every copy of a shared payload
/// retains and releases its buffer, and when a publisher's thread and a subscriber's thread do that on the same
/// buffer at once, the reference count's cache line bounces between the cores (`sluice-bench peers`, fan-out of
/// 16-byte messages, spent over half of the broker's time in `swift_retain`/`swift_release`).
///
/// `Payload` is a random-access collection of `UInt8` indexed from 0.
///
/// ## Examples
///
/// ```swift
/// let payload = Payload("hello")
/// payload.count                                   // 5
/// String(decoding: payload, as: UTF8.self)         // "hello"
/// payload.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
/// ```
public struct Payload: Sendable {
    /// The most bytes a payload holds inline, in its own value, instead of in a shared block.
    public static let inlineCapacity = 16

    /// The block the bytes live in; nil for an empty payload and for an inline one.
    let storage: ByteStorage?
    /// Index of the first byte in `storage`; for an inline payload, its bytes 0..<8.
    let start: Int
    /// For an inline payload, its bytes 8..<16; 0 otherwise.
    let inlineTail: UInt64
    /// Number of bytes.
    public let count: Int

    /// The block the bytes live in, to tell in tests whether two payloads share one; nil for an inline payload.
    var storageIdentity: ObjectIdentifier? { self.storage.map(ObjectIdentifier.init) }

    /// True when the bytes are held in the value itself (at most ``inlineCapacity`` of them).
    var isInline: Bool { self.storage == nil && self.count > 0 }

    /// A view of `count` bytes of `storage` from `start`; no copy, except that a payload of at most
    /// ``inlineCapacity`` bytes copies them into itself.
    init(storage: ByteStorage, start: Int, count: Int) {
        if count == 0 {
            self.init()
        } else if count <= Self.inlineCapacity {
            self.init(inline: UnsafeRawBufferPointer(start: storage.base + start, count: count))
        } else {
            self.init(parts: storage, start: start, inlineTail: 0, count: count)
        }
    }

    /// The bytes `bytes` points to (1 to ``inlineCapacity`` of them), held inline.
    private init(inline bytes: UnsafeRawBufferPointer) {
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) {
            UnsafeMutableRawBufferPointer(rebasing: $0[..<bytes.count]).copyMemory(from: bytes)
        }
        self.init(parts: nil, start: Int(bitPattern: UInt(words.0)), inlineTail: words.1, count: bytes.count)
    }

    /// Every stored property as given.
    private init(parts storage: ByteStorage?, start: Int, inlineTail: UInt64, count: Int) {
        self.storage = storage
        self.start = start
        self.inlineTail = inlineTail
        self.count = count
    }

    /// The empty payload. Allocates nothing.
    public init() {
        self.init(parts: nil, start: 0, inlineTail: 0, count: 0)
    }

    /// Copies `bytes` into a block of their own.
    public init(_ bytes: some Sequence<UInt8>) {
        if let payload = bytes.withContiguousStorageIfAvailable({ Payload(copying: UnsafeRawBufferPointer($0)) }) {
            self = payload
        } else {
            self = Array(bytes).withUnsafeBytes { Payload(copying: $0) }
        }
    }

    /// Copies the UTF-8 bytes of `text`.
    public init(_ text: String) {
        var text = text
        self = text.withUTF8 { Payload(copying: UnsafeRawBufferPointer($0)) }
    }

    /// Copies the bytes `bytes` points to into a block of their own (or, at most ``inlineCapacity`` of them, into
    /// the payload itself).
    public init(copying bytes: UnsafeRawBufferPointer) {
        if bytes.isEmpty {
            self.init()
        } else if bytes.count <= Self.inlineCapacity {
            self.init(inline: bytes)
        } else {
            self.init(storage: ByteStorage(copying: bytes), start: 0, count: bytes.count)
        }
    }

    /// Calls `body` with the bytes. The pointer is valid only inside `body`.
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        guard self.count > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        if let storage = self.storage {
            defer { withExtendedLifetime(storage) {} }
            return try body(UnsafeRawBufferPointer(start: storage.base + self.start, count: self.count))
        }
        var words = (UInt64(UInt(bitPattern: self.start)), self.inlineTail)
        let count = self.count
        return try Swift.withUnsafeBytes(of: &words) { bytes throws(Failure) -> Result in
            try body(UnsafeRawBufferPointer(rebasing: bytes[..<count]))
        }
    }

    /// A payload with the same bytes in a block of exactly their size, so holding it no longer holds the read
    /// buffer it was cut from. Copies the bytes once; an empty payload stays empty.
    public func compacted() -> Payload {
        self.withUnsafeBytes { Payload(copying: $0) }
    }
}

extension Payload: RandomAccessCollection {
    /// Positions count bytes from 0.
    public typealias Index = Int
    /// One byte.
    public typealias Element = UInt8

    /// Always 0.
    public var startIndex: Int { 0 }
    /// The number of bytes.
    public var endIndex: Int { self.count }

    /// The byte at `position` (0-based). Traps outside `0..<count`, like an array.
    public subscript(position: Int) -> UInt8 {
        precondition(position >= 0 && position < self.count, "Payload index \(position) out of range 0..<\(self.count)")
        return self.withUnsafeBytes { $0[position] }
    }

    /// Calls `body` with the bytes, always available: a payload is contiguous.
    public func withContiguousStorageIfAvailable<Result>(
        _ body: (UnsafeBufferPointer<UInt8>) throws -> Result
    ) rethrows -> Result? {
        guard self.count > 0 else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
        if let storage = self.storage {
            defer { withExtendedLifetime(storage) {} }
            let start = (storage.base + self.start).assumingMemoryBound(to: UInt8.self)
            return try body(UnsafeBufferPointer(start: start, count: self.count))
        }
        var words = (UInt64(UInt(bitPattern: self.start)), self.inlineTail)
        let count = self.count
        return try Swift.withUnsafeBytes(of: &words) { bytes in
            try body(UnsafeRawBufferPointer(rebasing: bytes[..<count]).assumingMemoryBound(to: UInt8.self))
        }
    }
}

extension Payload: Hashable {
    /// Byte-wise equality: where the bytes live does not matter.
    public static func == (lhs: Payload, rhs: Payload) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.storage != nil && lhs.storage === rhs.storage && lhs.start == rhs.start { return true }
        return lhs.withUnsafeBytes { left in rhs.withUnsafeBytes { right in left.elementsEqual(right) } }
    }

    /// Hashes the bytes.
    public func hash(into hasher: inout Hasher) {
        self.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

extension Payload: CustomStringConvertible, CustomDebugStringConvertible {
    /// `5 bytes`.
    public var description: String { "\(self.count) bytes" }

    /// `Payload(5 bytes: 68 65 6c 6c 6f)`, the first 32 bytes in hex.
    public var debugDescription: String {
        let shown = self.withUnsafeBytes { Hex.spaced(UnsafeRawBufferPointer(rebasing: $0.prefix(32))) }
        return "Payload(\(self.count) bytes: \(shown)\(self.count > 32 ? " …" : ""))"
    }
}

extension Payload: ExpressibleByStringLiteral {
    /// A payload of the literal's UTF-8 bytes.
    public init(stringLiteral value: String) { self.init(value) }
}

extension Payload: ExpressibleByArrayLiteral {
    /// A payload of the listed bytes.
    public init(arrayLiteral elements: UInt8...) { self.init(elements) }
}
