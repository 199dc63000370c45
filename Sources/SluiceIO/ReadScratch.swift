import Glibc

/// The buffer a pooled ``TCPStream/read(_:)`` reads into: one per thread, allocated on that thread's first read
/// and freed when the thread exits.
///
/// Why per thread and why that is safe: the buffer is used only between a `read(2)` and the return of the
/// caller's synchronous `body`, with no suspension point in between, so nothing else can run on this thread while
/// the buffer holds live bytes. A task may resume on any thread (an event loop, or the global executor's pool):
/// it takes that thread's buffer at that moment, and no pointer into it survives the call. So a connection holds
/// no read buffer while idle, and reads allocate nothing after a thread's first.
///
/// (A per-loop buffer used only when `loop.isCurrent` would need a fallback for tasks on other threads; a
/// thread-local one covers both with one `pthread_getspecific`, the same lookup `isCurrent` does.)
enum ReadScratch {
    /// Bytes per buffer: as much as one read takes (the floor's echo loop uses the same).
    static let size = 64 * 1024

    /// Each thread's buffer; the destructor frees it when the thread exits.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key) { buffer in free(buffer) }
        precondition(created == 0, "pthread_key_create failed for the read scratch buffer: \(created)")
        return key
    }()

    /// The calling thread's buffer. Valid until the thread exits; use it only without suspending (see above).
    @inline(__always)
    static func current() -> UnsafeMutableRawBufferPointer {
        if let buffer = pthread_getspecific(Self.key) {
            return UnsafeMutableRawBufferPointer(start: buffer, count: Self.size)
        }
        return Self.allocateForThisThread()
    }

    @inline(never)
    private static func allocateForThisThread() -> UnsafeMutableRawBufferPointer {
        guard let buffer = malloc(Self.size) else { fatalError("out of memory for a \(Self.size)-byte read buffer") }
        pthread_setspecific(Self.key, buffer)
        return UnsafeMutableRawBufferPointer(start: buffer, count: Self.size)
    }
}
