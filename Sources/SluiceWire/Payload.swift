/// The bytes of a message: a view into a shared, reference-counted buffer.
///
/// A payload that came out of ``FrameDecoder/next()`` **is not a copy**: it points into the decoder's read buffer
/// and keeps that buffer alive, so routing a message to a thousand subscribers shares one set of bytes. Copying the
/// `Payload` value copies a reference and a range, never the bytes. The bytes it covers never change: the decoder
/// writes new input only past them (see ``FrameDecoder``).
///
/// Holding a small payload holds its whole read buffer. Anything kept for long (a queued message, a key's value)
/// should be stored as ``compacted()``, which copies the bytes once into a block of their own size.
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
    /// The block the bytes live in; nil for an empty payload.
    let storage: ByteStorage?
    /// Index of the first byte in `storage`.
    let start: Int
    /// Number of bytes.
    public let count: Int

    /// The block the bytes live in, to tell in tests whether two payloads share one.
    var storageIdentity: ObjectIdentifier? { self.storage.map(ObjectIdentifier.init) }

    /// A view of `count` bytes of `storage` from `start`; no copy.
    init(storage: ByteStorage, start: Int, count: Int) {
        if count == 0 {
            self.storage = nil
            self.start = 0
        } else {
            self.storage = storage
            self.start = start
        }
        self.count = count
    }

    /// The empty payload. Allocates nothing.
    public init() {
        self.storage = nil
        self.start = 0
        self.count = 0
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

    /// Copies the bytes `bytes` points to into a block of their own.
    public init(copying bytes: UnsafeRawBufferPointer) {
        if bytes.isEmpty {
            self.init()
        } else {
            self.init(storage: ByteStorage(copying: bytes), start: 0, count: bytes.count)
        }
    }

    /// Calls `body` with the bytes. The pointer is valid only inside `body`.
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        guard self.count > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        defer { withExtendedLifetime(self) {} }
        return try body(
            UnsafeRawBufferPointer(start: self.storage.unsafelyUnwrapped.base + self.start, count: self.count)
        )
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
        defer { withExtendedLifetime(self) {} }
        let start = (self.storage.unsafelyUnwrapped.base + self.start).assumingMemoryBound(to: UInt8.self)
        return try body(UnsafeBufferPointer(start: start, count: self.count))
    }
}

extension Payload: Hashable {
    /// Byte-wise equality: where the bytes live does not matter.
    public static func == (lhs: Payload, rhs: Payload) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.storage === rhs.storage && lhs.start == rhs.start { return true }
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
