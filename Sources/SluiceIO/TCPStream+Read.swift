import Glibc

extension TCPStream {
    /// Reads what is available into a scratch buffer and calls `body` once with the bytes read; an **empty**
    /// buffer means the peer closed its side (end of stream). Waits until at least one byte (or the end) arrives.
    ///
    /// The bytes live in a buffer taken from a per-thread pool (one 64 KiB buffer per thread, see `ReadScratch`),
    /// so nothing is allocated per read and an idle connection holds no read buffer. The pointer is valid only
    /// inside `body`: copy out what must outlive it. `body` runs synchronously on the thread that did the read,
    /// right after it, so it can mutate the caller's local state, noncopyable values included.
    ///
    /// Reads up to 64 KiB at a time; call again for more.
    ///
    /// `nonisolated(nonsending)`: the read runs on the caller's executor (an actor, or the loop the task prefers),
    /// so `body` may be a non-`Sendable` closure over the caller's state, and no executor hop happens on entry.
    ///
    /// - Returns: what `body` returns.
    ///
    /// ## Errors
    /// ``IOError`` (`ECONNRESET` when the peer reset, `EBADF` after ``close()``); `CancellationError` while
    /// waiting; whatever `body` throws (the bytes it was given are consumed then).
    ///
    /// ## Cancellation
    /// A read cancelled while waiting read nothing and did not call `body`: no byte is lost and the stream stays
    /// usable. A read that finds data ready returns it even in a cancelled task.
    ///
    /// ## Examples
    /// ```swift
    /// var decoder = FrameDecoder()              // may be ~Copyable
    /// while try await stream.read({ bytes in
    ///     decoder.append(bytes)
    ///     return !bytes.isEmpty                 // false at the end of stream
    /// }) {
    ///     while let frame = try decoder.next() { handle(frame) }
    /// }
    /// ```
    nonisolated(nonsending) public func read<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) async throws -> Result {
        try await self.read(upTo: ReadScratch.size, body)
    }

    /// Reads what is available, up to `maxBytes`, waiting until at least one byte (or the end) arrives.
    ///
    /// Copies out of the pooled scratch buffer (see ``read(_:)``), so the array is exactly as large as the bytes
    /// read. Reads at most 64 KiB per call, whatever `maxBytes` says.
    ///
    /// - Returns: the bytes read; empty once the peer has closed its side (end of stream).
    ///
    /// ## Errors
    /// ``IOError`` (`ECONNRESET` when the peer reset), `CancellationError` while waiting; either way no byte is
    /// lost: a cancelled read read nothing, and the stream stays usable.
    nonisolated(nonsending) public func read(maxBytes: Int = 64 * 1024) async throws -> [UInt8] {
        precondition(maxBytes > 0, "TCPStream.read needs maxBytes > 0")
        return try await self.read(upTo: min(maxBytes, ReadScratch.size)) { Array($0) }
    }

    /// Reads what is available now, like ``read(_:)``, but never waits: nil when nothing is (the readiness is then
    /// forgotten, so ``Registration/whenReady(_:_:)`` waits for the next edge).
    ///
    /// ## Errors
    /// ``IOError`` (`ECONNRESET` when the peer reset, `EBADF` after ``close()``); whatever `body` throws.
    public func readIfReady<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws -> Result? {
        guard self.registration.isReady(.read) else { return nil }
        let tick = self.registration.tick(.read)
        let fd = try self.descriptor("read")
        let scratch = ReadScratch.current()  // no suspension until `body` returns: see `read(upTo:_:)`
        switch try syscall("read", { Glibc.read(fd, scratch.baseAddress, ReadScratch.size) }) {
        case .processed(let count):
            if count > 0 && count < ReadScratch.size { self.registration.clearReadiness(.read, ifTick: tick) }
            return try body(UnsafeRawBufferPointer(start: scratch.baseAddress, count: count))
        case .wouldBlock:
            self.registration.clearReadiness(.read, ifTick: tick)
            return nil
        }
    }

    /// The read loop behind both public reads: at most `limit` (≤ the scratch size) bytes per call.
    nonisolated(nonsending) private func read<Result, Failure: Error>(
        upTo limit: Int,
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) async throws -> Result {
        while true {
            // Readiness was cleared (by EAGAIN, or by a short read that emptied the queue): wait for an edge
            // before trying, instead of paying for a read that returns EAGAIN.
            if !self.registration.isReady(.read) { try await self.registration.waitUntilReady(.read) }
            let tick = self.registration.tick(.read)
            let fd = try self.descriptor("read")
            // This thread's buffer. From here to `body`'s return there is no suspension point, so no other task can
            // run on this thread and touch it; the next iteration (after an `await`) asks again, maybe on another
            // thread, and gets that thread's buffer.
            let scratch = ReadScratch.current()
            switch try syscall("read", { Glibc.read(fd, scratch.baseAddress, limit) }) {
            case .processed(let count):
                // A short read emptied the receive queue (TCP returns less than asked only then): forget readiness
                // now and save the next read its EAGAIN, as Tokio does. Data arriving since raises a new edge, and
                // an event already seen moved the tick so this clear does nothing; an end of stream that came with
                // the data stays in the registration's sticky "final" bit.
                if count > 0 && count < limit { self.registration.clearReadiness(.read, ifTick: tick) }
                return try body(UnsafeRawBufferPointer(start: scratch.baseAddress, count: count))
            case .wouldBlock:
                self.registration.clearReadiness(.read, ifTick: tick)
            }
        }
    }
}
