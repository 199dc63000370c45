/// Turns a byte stream into ``Frame``s, however the bytes are cut into reads.
///
/// Feed bytes with `append(_:)` (or read straight into the decoder's buffer with
/// ``append(minimumCapacity:from:)``), then take every complete frame:
///
/// ```swift
/// var decoder = FrameDecoder(maxFrameSize: 1 << 20)
/// decoder.append(bytesJustRead)
/// while let frame = try decoder.next() {
///     handle(frame)
/// }
/// ```
///
/// Frames arrive cut anywhere. Three reads can carry two frames like this:
///
/// ```text
///   read 1           read 2                  read 3
/// +--------------+ +-----------------------+ +------------+
/// | len | op | f | | ields... | len | op | | | fields ... |
/// +--------------+ +-----------------------+ +------------+
///  \___________ frame 1 ____/ \________ frame 2 ________/
/// ```
///
/// ``next()`` returns frame 1 after read 2, and frame 2 after read 3; before that it returns nil ("not enough bytes
/// yet", never an error).
///
/// The decoder has two states, as in swift-nio-extras' `LengthFieldBasedFrameDecoder`: waiting for the 4 length
/// bytes, then waiting for a frame of that length. The length is checked against ``maxFrameSize`` as soon as its 4
/// bytes are in, before anything of that size is allocated.
///
/// ## Zero copy
///
/// Payloads of decoded frames are views into the decoder's buffer (``Payload``), not copies. Later input never
/// overwrites bytes a returned frame can see: new bytes go past them, and when the buffer must be compacted while
/// frames still hold it, the unread bytes move to a new buffer instead. A frame that arrives in one read is never
/// moved. One that straddles reads is moved once, when its length is known, into a buffer that holds all of it; the
/// read that completes it puts only the frame's rest behind it and starts a new buffer with whatever follows. (Only
/// the bytes of a length field cut by a read, at most 3, can move once more.) This holds when every append is
/// followed by taking the frames with `next()`.
///
/// ## Errors
///
/// ``next()`` throws a ``WireError`` (codes 1–7: frame too large, unknown opcode, truncated field, invalid UTF-8,
/// length overrun, trailing bytes, invalid flags). The decoder then stays failed: every later ``next()`` throws the
/// same error, and input is dropped. Answer with ERROR and close the connection. No input traps the decoder, and
/// the work per byte is bounded (each byte is parsed at most once).
///
/// The decoder does not check names against the grammar: a bad subject is a request error (the connection stays
/// open), so the broker checks it with ``Subject/validate(_:as:)``.
public struct FrameDecoder: ~Copyable, Sendable {
    /// The default largest frame: 1 MiB (the value of the length field).
    public static let defaultMaxFrameSize = 1 << 20

    /// The largest length field accepted; anything over is ``ErrorCode/frameTooLarge``.
    public let maxFrameSize: Int
    /// The smallest buffer the decoder allocates.
    private let minimumCapacity: Int

    /// The read buffer. Returned payloads may share it; it is written only at `writeIndex` and beyond, or when this
    /// decoder holds the only reference.
    private var storage: ByteStorage?
    /// Buffer index of the first byte of the next frame (everything before it was returned or skipped).
    private var readIndex = 0
    /// Buffer index one past the last byte appended.
    private var writeIndex = 0
    /// Input that arrived behind a frame being assembled when that frame's buffer had no room left after it. It
    /// becomes the read buffer as soon as that frame is returned, so the frame is never moved a second time. Set only
    /// while the frame in `storage` is complete and not yet returned; never shared (no frame was cut from it yet).
    private var overflow: ByteStorage?
    /// Bytes in `overflow`.
    private var overflowCount = 0
    /// Stream offset of `readIndex`: bytes of complete frames consumed so far, for error offsets.
    private var consumedByteCount = 0
    /// The last PUB subject decoded, for the next PUB with the same bytes (see `FieldReader.subject()`).
    private var recentSubject: RecentSubject?
    /// Where decoding stands.
    private(set) var state: State = .waitingForHeader

    /// Bytes moved from one place in memory to another by compaction or relocation, over the decoder's life. Tests
    /// use it to prove the copy-at-most-once rule.
    private(set) var movedByteCount = 0

    /// The two states of a length-prefixed decoder, plus the terminal failure.
    enum State: Hashable {
        /// Fewer than 4 bytes of the next frame are buffered.
        case waitingForHeader
        /// The length field said `length` (at most `maxFrameSize`); waiting for `4 + length` bytes in all.
        case waitingForFrame(length: Int)
        /// A frame was malformed: `next()` rethrows this forever.
        case failed(WireError)
    }

    /// Creates a decoder.
    ///
    /// - Parameters:
    ///   - maxFrameSize: the largest length field accepted (the bytes after the length, opcode included).
    ///   - initialCapacity: the smallest read buffer it allocates; the buffer grows for larger frames or reads.
    public init(maxFrameSize: Int = FrameDecoder.defaultMaxFrameSize, initialCapacity: Int = 4096) {
        precondition(maxFrameSize >= 1 && maxFrameSize <= Int(UInt32.max), "maxFrameSize must be in 1...UInt32.max")
        self.maxFrameSize = maxFrameSize
        self.minimumCapacity = max(initialCapacity, 64)
    }

    /// Bytes the current read buffer can hold (0 when it has none). For tests and memory accounting.
    var bufferCapacity: Int { self.storage?.capacity ?? 0 }

    /// The current read buffer, to tell in tests whether a payload shares it.
    var bufferIdentity: ObjectIdentifier? { self.storage.map(ObjectIdentifier.init) }

    /// Bytes appended and not yet returned as frames.
    public var bufferedByteCount: Int { self.unread + self.overflowCount }

    /// Bytes in `storage` not yet returned as frames.
    private var unread: Int { self.writeIndex - self.readIndex }

    /// While a frame's length is known: the bytes of it still to come, 0 once it is complete, negative if input
    /// after it is already in the buffer. Nil while waiting for a length.
    private var missingFrameBytes: Int? {
        guard case .waitingForFrame(let length) = self.state else { return nil }
        return self.readIndex + 4 + length - self.writeIndex
    }

    /// Free bytes behind `writeIndex`.
    private var tailRoom: Int { (self.storage?.capacity ?? 0) - self.writeIndex }

    /// Whether a previous ``next()`` threw; the decoder is then done.
    public var hasFailed: Bool {
        if case .failed = self.state { return true }
        return false
    }

    /// Appends a copy of `bytes` to the input. After a failure input is dropped.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty, !self.hasFailed, let source = bytes.baseAddress else { return }
        if self.overflow != nil {
            self.appendToOverflow(bytes)
            return
        }
        if self.tailRoom < bytes.count, let missing = self.missingFrameBytes, missing >= 0, self.tailRoom >= missing {
            // These bytes finish the frame being assembled (or come after it) and do not fit behind it. The frame's
            // buffer has room for its own rest (it was sized when the length arrived): put that there, and start a
            // new buffer with the bytes after it, rather than move the assembled frame again.
            (self.storage.unsafelyUnwrapped.base + self.writeIndex).copyMemory(from: source, byteCount: missing)
            self.writeIndex += missing
            let rest = UnsafeRawBufferPointer(rebasing: bytes[missing...])
            self.overflow = ByteStorage(capacity: max(rest.count, self.minimumCapacity))
            self.appendToOverflow(rest)
            return
        }
        self.reserveWritable(bytes.count)
        (self.storage.unsafelyUnwrapped.base + self.writeIndex).copyMemory(from: source, byteCount: bytes.count)
        self.writeIndex += bytes.count
    }

    /// Appends a copy of `bytes` to the input. After a failure input is dropped.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { self.append(UnsafeRawBufferPointer($0)) }
        if done == nil {
            Array(bytes).withUnsafeBytes { self.append($0) }
        }
    }

    /// Lets `fill` write input straight into the decoder's buffer, saving the copy `append(_:)` makes: pass it to a
    /// socket read.
    ///
    /// `fill` gets a buffer of at least `minimumCapacity` bytes, with one exception: while a frame is being assembled
    /// and the room behind it is smaller than that, it gets exactly the bytes that frame still needs, so the frame is
    /// completed where it is and never moved. `fill` returns how many bytes it wrote, from the start of the buffer.
    /// No returned frame can see these bytes.
    ///
    /// ```swift
    /// let count = try decoder.append(minimumCapacity: 16_384) { buffer in try socket.read(into: buffer) }
    /// ```
    ///
    /// ## Errors
    ///
    /// Rethrows what `fill` throws; nothing is appended then.
    public mutating func append<Failure: Error>(
        minimumCapacity: Int,
        from fill: (UnsafeMutableRawBufferPointer) throws(Failure) -> Int
    ) throws(Failure) -> Int {
        let minimumCapacity = max(minimumCapacity, 1)
        if let overflow = self.overflow {
            if overflow.capacity - self.overflowCount < minimumCapacity {
                self.growOverflow(toHold: self.overflowCount + minimumCapacity)
            }
            let target = self.overflow.unsafelyUnwrapped
            let tail = UnsafeMutableRawBufferPointer(
                start: target.base + self.overflowCount,
                count: target.capacity - self.overflowCount
            )
            let written = try fill(tail)
            precondition(written >= 0 && written <= tail.count, "fill returned \(written) for \(tail.count) bytes")
            self.overflowCount += written
            return written
        }
        if self.tailRoom < minimumCapacity, let missing = self.missingFrameBytes, missing >= 0, self.tailRoom >= missing
        {
            if missing == 0 {
                // The frame is complete and ends the buffer: the next bytes start the buffer that follows it.
                self.overflow = ByteStorage(capacity: max(minimumCapacity, self.minimumCapacity))
                return try self.append(minimumCapacity: minimumCapacity, from: fill)
            }
            // Otherwise offer exactly the frame's rest, which fits behind it, instead of moving it; whatever comes
            // next then starts the following buffer.
            return try self.fill(count: missing, from: fill)
        }
        self.reserveWritable(minimumCapacity)
        return try self.fill(count: self.tailRoom, from: fill)
    }

    /// Lets `fill` write up to `count` bytes at `writeIndex` (which must have room for them).
    private mutating func fill<Failure: Error>(
        count: Int,
        from fill: (UnsafeMutableRawBufferPointer) throws(Failure) -> Int
    ) throws(Failure) -> Int {
        let storage = self.storage.unsafelyUnwrapped
        let tail = UnsafeMutableRawBufferPointer(start: storage.base + self.writeIndex, count: count)
        let written = try fill(tail)
        precondition(written >= 0 && written <= tail.count, "fill returned \(written) for \(tail.count) bytes")
        if !self.hasFailed { self.writeIndex += written }
        return written
    }

    /// Lets go of the read buffer if no input is waiting, so an idle connection holds no buffer. Frames already
    /// returned keep their bytes.
    ///
    /// - Parameter bytes: keep a buffer of at most this many bytes (a reader that expects more input soon keeps a
    ///   small one rather than allocate the next); 0 lets any go.
    public mutating func releaseBufferIfIdle(keepingUpTo bytes: Int = 0) {
        guard self.bufferedByteCount == 0, (self.storage?.capacity ?? 0) > bytes else { return }
        self.storage = nil
        self.readIndex = 0
        self.writeIndex = 0
    }

    /// The next complete frame, or nil if its bytes have not all arrived yet.
    ///
    /// Call it in a loop after each append: every complete frame in the buffer comes out before nil.
    ///
    /// ## Errors
    ///
    /// ``WireError`` for a malformed frame; the decoder stays failed and throws it again on every call.
    public mutating func next() throws(WireError) -> Frame? {
        try self.nextDecoded(onlyOpcode: nil) { reader, recent throws(WireError) in
            try Frame.decodeFields(&reader, recent: &recent)
        }
    }

    /// The next frame if it is complete and a PUB; nil when it is not complete yet or another frame (``next()``
    /// then returns it). The publisher's hot path: the PUB comes back as its own struct, not inside a ``Frame``,
    /// whose destruction (a multi-payload enum of every frame kind) goes through the runtime's generic value
    /// witnesses, ~6% of a fan-out broker's instructions.
    ///
    /// ## Errors
    ///
    /// ``WireError`` as ``next()`` throws it.
    public mutating func nextPublish() throws(WireError) -> Frame.Publish? {
        try self.nextDecoded(onlyOpcode: 0x10) { reader, recent throws(WireError) in
            try Frame.decodePublish(&reader, recent: &recent)
        }
    }

    /// ``next()``, decoding the frame with `decode`; with `onlyOpcode`, nil for a frame of another opcode (left in
    /// place for the next call).
    @inline(__always)
    private mutating func nextDecoded<Decoded>(
        onlyOpcode: UInt8?,
        _ decode: (inout FieldReader, inout RecentSubject?) throws(WireError) -> Decoded
    ) throws(WireError) -> Decoded? {
        switch self.state {
        case .failed(let error):
            throw error
        case .waitingForFrame(let length):
            return try self.frameIfComplete(length: length, onlyOpcode: onlyOpcode, decode)
        case .waitingForHeader:
            guard self.unread >= 4 else { return nil }
            let announced = UInt32(
                bigEndian: self.storage.unsafelyUnwrapped.base.loadUnaligned(
                    fromByteOffset: self.readIndex,
                    as: UInt32.self
                )
            )
            // The limit is checked on the 4 length bytes alone: nothing of the announced size is reserved first.
            guard announced <= self.maxFrameSize else {
                throw self.fail(
                    .frameTooLarge,
                    "announced length \(announced) is over the maximum \(self.maxFrameSize)"
                )
            }
            let length = Int(announced)
            guard length > 0 else {
                throw self.fail(.truncatedField, "announced length 0 leaves no room for the opcode")
            }
            self.state = .waitingForFrame(length: length)
            if self.unread < 4 + length && self.bufferCapacity - self.readIndex < 4 + length {
                // The rest of this frame will not fit behind it: move what has arrived, once, into a buffer that
                // holds the whole frame, so it is assembled in place as the remaining reads come in.
                self.relocate(holding: 4 + length)
            }
            return try self.frameIfComplete(length: length, onlyOpcode: onlyOpcode, decode)
        }
    }

    /// Decodes the frame at `readIndex` with `decode` if all `4 + length` bytes are buffered (and its opcode is
    /// `onlyOpcode`, when given).
    @inline(__always)
    private mutating func frameIfComplete<Decoded>(
        length: Int,
        onlyOpcode: UInt8?,
        _ decode: (inout FieldReader, inout RecentSubject?) throws(WireError) -> Decoded
    ) throws(WireError) -> Decoded? {
        guard self.unread >= 4 + length else { return nil }
        // Not retained: `self.storage` keeps it alive, and nothing below replaces it before the reader is gone.
        unowned(unsafe) let storage = self.storage.unsafelyUnwrapped
        if let onlyOpcode, storage.base.load(fromByteOffset: self.readIndex + 4, as: UInt8.self) != onlyOpcode {
            return nil
        }
        let frame: Decoded
        do {
            var reader = FieldReader(
                storage: storage,
                frameStart: self.readIndex,
                length: length,
                frameOffset: self.consumedByteCount
            )
            frame = try decode(&reader, &self.recentSubject)
        } catch {
            self.enterFailure(error)
            throw error
        }
        self.readIndex += 4 + length
        self.consumedByteCount += 4 + length
        self.state = .waitingForHeader
        if let overflow = self.overflow {
            // The frame that filled its buffer is out: what came after it is the read buffer now.
            assert(self.readIndex == self.writeIndex, "overflow while the old buffer still has unread bytes")
            self.storage = overflow
            self.readIndex = 0
            self.writeIndex = self.overflowCount
            self.overflow = nil
            self.overflowCount = 0
        }
        return frame
    }

    /// Enters the failed state with an error about the length field of the frame at `readIndex`.
    private mutating func fail(_ code: ErrorCode, _ detail: String) -> WireError {
        let storage = self.storage.unsafelyUnwrapped
        let shown = UnsafeRawBufferPointer(
            start: storage.base + self.readIndex,
            count: min(16, self.unread)
        )
        let error = WireError(
            code: code,
            offset: self.consumedByteCount,
            frameOffset: self.consumedByteCount,
            opcode: nil,
            detail: detail,
            snippet: Hex.spaced(shown)
        )
        self.enterFailure(error)
        return error
    }

    /// The terminal state: remember the error, free the buffer (returned frames keep theirs), drop what is buffered.
    private mutating func enterFailure(_ error: WireError) {
        self.state = .failed(error)
        self.storage = nil
        self.overflow = nil
        self.overflowCount = 0
        self.readIndex = 0
        self.writeIndex = 0
    }

    // MARK: Buffer management

    /// Makes room for `count` more bytes at `writeIndex`.
    private mutating func reserveWritable(_ count: Int) {
        if let storage = self.storage, storage.capacity - self.writeIndex >= count { return }
        var needed = self.unread + count
        if case .waitingForFrame(let length) = self.state { needed = max(needed, 4 + length) }
        self.relocate(holding: needed)
    }

    /// Moves the unread bytes to the front of a buffer of at least `needed` bytes: the current one if nobody else
    /// can see it and it is big enough, a new one otherwise (the old one lives on in the payloads that hold it).
    private mutating func relocate(holding needed: Int) {
        let unread = self.unread
        if isKnownUniquelyReferenced(&self.storage), let storage = self.storage, storage.capacity >= needed {
            if self.readIndex > 0 && unread > 0 {
                storage.base.copyMemory(from: storage.base + self.readIndex, byteCount: unread)
                self.movedByteCount += unread
            }
        } else {
            var capacity = max(needed, self.minimumCapacity)
            if case .waitingForHeader = self.state {
                // Input appended faster than frames are taken: grow geometrically so appends stay amortized O(1).
                capacity = max(capacity, 2 * unread)
            }
            let fresh = ByteStorage(capacity: capacity)
            if let old = self.storage, unread > 0 {
                fresh.base.copyMemory(from: old.base + self.readIndex, byteCount: unread)
                self.movedByteCount += unread
            }
            self.storage = fresh
        }
        self.readIndex = 0
        self.writeIndex = unread
    }

    /// Appends to `overflow`, growing it if needed.
    private mutating func appendToOverflow(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        if self.overflow.unsafelyUnwrapped.capacity - self.overflowCount < bytes.count {
            self.growOverflow(toHold: self.overflowCount + bytes.count)
        }
        (self.overflow.unsafelyUnwrapped.base + self.overflowCount).copyMemory(from: source, byteCount: bytes.count)
        self.overflowCount += bytes.count
    }

    /// Moves `overflow` to a buffer of at least `needed` bytes (at least double). Only input appended twice before
    /// `next()` takes the waiting frame gets here.
    private mutating func growOverflow(toHold needed: Int) {
        let old = self.overflow.unsafelyUnwrapped
        let fresh = ByteStorage(capacity: max(needed, 2 * old.capacity))
        fresh.base.copyMemory(from: old.base, byteCount: self.overflowCount)
        self.movedByteCount += self.overflowCount
        self.overflow = fresh
    }
}
