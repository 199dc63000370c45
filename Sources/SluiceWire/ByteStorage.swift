/// A fixed-size, reference-counted block of bytes: the decoder's read buffer and the encoder's output buffer, and
/// what every ``Payload`` cut from either keeps alive.
///
/// ## Why `@unchecked Sendable` is sound here
///
/// The bytes are plain memory, written in exactly two situations:
/// - by the one ``FrameDecoder`` that owns the block, and only at indices at or past its write index: every
///   ``Payload`` made from the block covers bytes below that index, which are never written again;
/// - by the one holding the only reference (`isKnownUniquelyReferenced`): the decoder compacting, the
///   ``FrameEncoder`` encoding (it checks before every frame, so bytes handed out by `takeEncoded()` stay as they
///   were). No payload can see the bytes then.
///
/// A payload only ever reads its own range. So a payload read on another thread never overlaps a write, and the
/// compiler cannot prove this disjointness, hence the unchecked conformance. This is the module's only one.
final class ByteStorage: @unchecked Sendable {
    /// The first byte. Owned: allocated in `init`, freed in `deinit`.
    let base: UnsafeMutableRawPointer
    /// How many bytes `base` points to.
    let capacity: Int

    /// Allocates `capacity` uninitialized bytes (at least one, so `base` is never a dangling zero-size block).
    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        // Byte alignment: the frames' fields are read and written unaligned. A 16-byte alignment takes the runtime's
        // aligned path here (`posix_memalign`, ~600 instructions a block, one block per read in request/reply),
        // where this is a plain `malloc`, which aligns to 16 anyway.
        self.base = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 1)
    }

    /// A new block holding a copy of `bytes`, sized exactly.
    convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(capacity: bytes.count)
        if let source = bytes.baseAddress, bytes.count > 0 {
            self.base.copyMemory(from: source, byteCount: bytes.count)
        }
    }

    deinit { self.base.deallocate() }
}
