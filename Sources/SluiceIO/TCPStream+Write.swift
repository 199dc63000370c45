import Glibc

extension TCPStream {
    /// Most buffers handed to one `sendmsg`; the rest go in the next call. (Linux allows 1024, `IOV_MAX`; each
    /// buffer adds one nested `withUnsafeBytes` frame, so the batch stays modest.)
    static let maxVectorsPerCall = 128

    /// Writes all of `bytes`, waiting while the socket's send buffer is full.
    ///
    /// ## Errors
    /// ``IOError`` (`EPIPE`/`ECONNRESET` when the peer is gone; never `SIGPIPE`), `CancellationError` while
    /// waiting.
    ///
    /// ## Cancellation
    /// Only a write that has to wait notices cancellation; some of the bytes may have been written by then.
    nonisolated(nonsending) public func write(_ bytes: [UInt8]) async throws {
        try await self.writeAll(bytes)
    }

    /// Writes all of `buffer`, waiting while the socket's send buffer is full. The stream holds `buffer` (not a
    /// copy of its bytes) until the write returns.
    ///
    /// ## Errors
    /// ``IOError`` (`EPIPE`/`ECONNRESET` when the peer is gone; never `SIGPIPE`), `CancellationError` while
    /// waiting.
    ///
    /// ## Cancellation
    /// Only a write that has to wait notices cancellation; some of the bytes may have been written by then.
    nonisolated(nonsending) public func write(_ buffer: some OutboundBytes) async throws {
        try await self.writeAll(buffer)
    }

    /// Writes every byte of every buffer, in order, with as few `sendmsg` calls as the kernel allows (usually one
    /// per 128 buffers). The stream holds the buffers (not copies) until the write returns; empty buffers are
    /// skipped.
    ///
    /// ## Errors
    /// ``IOError`` (`EPIPE`/`ECONNRESET` when the peer is gone; never `SIGPIPE`), `CancellationError` while
    /// waiting.
    ///
    /// ## Cancellation
    /// Only a write that has to wait notices cancellation; a prefix of the bytes may have been written by then.
    ///
    /// ## Examples
    /// ```swift
    /// try await stream.write([header, payload])   // one sendmsg, no copy into a joined buffer
    /// ```
    nonisolated(nonsending) public func write<Bytes: OutboundBytes>(_ buffers: [Bytes]) async throws {
        var index = 0  // the first buffer not yet fully written
        var offset = 0  // bytes of buffers[index] already written
        while true {
            while index < buffers.count && offset == buffers[index].count {
                index += 1
                offset = 0
            }
            guard index < buffers.count else { return }
            let tick = self.registration.tick(.write)
            switch try self.sendmsg(buffers, from: index, skipping: offset) {
            case .processed(let sent):
                let offered = Self.bytesOffered(buffers, from: index, skipping: offset)
                var written = sent
                while written > 0 {
                    let left = buffers[index].count - offset
                    if written < left {
                        offset += written
                        written = 0
                    } else {
                        written -= left
                        index += 1
                        offset = 0
                    }
                }
                if sent < offered {
                    // A short write means the send buffer is full (see `writeAll`): wait for room right away.
                    self.registration.clearReadiness(.write, ifTick: tick)
                    try await self.registration.waitUntilReady(.write)
                }
            case .wouldBlock:
                self.registration.clearReadiness(.write, ifTick: tick)
                try await self.registration.waitUntilReady(.write)
            }
        }
    }

    /// Writes every buffer, in order: the `[[UInt8]]` spelling of the vectored `write(_:)`.
    nonisolated(nonsending) public func write(vectored buffers: [[UInt8]]) async throws {
        try await self.write(buffers)
    }

    /// Writes what the socket's send buffer takes right now, without waiting: Tokio's `try_write`.
    ///
    /// For writing straight out of a pooled read (`read { bytes in try stream.tryWrite(bytes) }`), where the bytes
    /// cannot outlive the call: only what the kernel did not take needs copying, for a later ``write(_:)``.
    ///
    /// - Returns: the number of bytes written, from 0 (the send buffer is full) to `bytes.count`.
    ///
    /// ## Errors
    /// ``IOError`` (`EPIPE`/`ECONNRESET` when the peer is gone; `EBADF` after ``close()``).
    public func tryWrite(_ bytes: UnsafeRawBufferPointer) throws(IOError) -> Int {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return 0 }
        let fd = try self.descriptor("send")
        // A full buffer leaves write readiness as it is: the next `write(_:)` proves it stale itself (its own tick
        // snapshot, EAGAIN, clear), so nothing here can lose an edge.
        switch try syscall("send", { Glibc.send(fd, base, bytes.count, Int32(MSG_NOSIGNAL)) }) {
        case .processed(let written): return written
        case .wouldBlock: return 0
        }
    }

    /// One buffer: plain `send`, no `iovec`.
    nonisolated(nonsending) private func writeAll(_ buffer: some OutboundBytes) async throws {
        let total = buffer.count
        var offset = 0
        while offset < total {
            let tick = self.registration.tick(.write)
            let fd = try self.descriptor("send")
            let result = try buffer.withUnsafeBytes { bytes throws(IOError) -> IOResult<Int> in
                try syscall("send") { Glibc.send(fd, bytes.baseAddress! + offset, total - offset, Int32(MSG_NOSIGNAL)) }
            }
            switch result {
            case .processed(let written):
                offset += written
                if offset < total {
                    // A short send means the send buffer is full (TCP takes less than offered only then): forget
                    // readiness and wait, saving the send that would return EAGAIN (Tokio does the same). Room
                    // freed since raises a new edge; an event already seen moved the tick, so the clear is void.
                    self.registration.clearReadiness(.write, ifTick: tick)
                    try await self.registration.waitUntilReady(.write)
                }
            case .wouldBlock:
                self.registration.clearReadiness(.write, ifTick: tick)
                try await self.registration.waitUntilReady(.write)
            }
        }
    }

    /// The bytes one `sendmsg(buffers, from: first, skipping: offset)` offers the kernel.
    private static func bytesOffered<Bytes: OutboundBytes>(
        _ buffers: [Bytes],
        from first: Int,
        skipping offset: Int
    ) -> Int {
        var total = -offset
        for buffer in buffers[first..<min(buffers.count, first + Self.maxVectorsPerCall)] { total += buffer.count }
        return total
    }

    /// One `sendmsg` of up to ``maxVectorsPerCall`` buffers starting at `buffers[first]`, whose first `offset`
    /// bytes are already written.
    private func sendmsg<Bytes: OutboundBytes>(
        _ buffers: [Bytes],
        from first: Int,
        skipping offset: Int
    ) throws(IOError) -> IOResult<Int> {
        let fd = try self.descriptor("sendmsg")
        let count = min(buffers.count - first, Self.maxVectorsPerCall)
        return try withUnsafeTemporaryAllocation(of: iovec.self, capacity: count) {
            vectors throws(IOError) -> IOResult<Int> in
            // A buffer's pointer is valid only inside its `withUnsafeBytes`: nest one call per buffer and issue
            // the syscall from the innermost, where every pointer in `vectors` is valid at once.
            func fill(_ index: Int) throws(IOError) -> IOResult<Int> {
                guard index < count else {
                    var message = msghdr()
                    message.msg_iov = vectors.baseAddress
                    message.msg_iovlen = count
                    return try syscall("sendmsg") { Glibc.sendmsg(fd, &message, Int32(MSG_NOSIGNAL)) }
                }
                return try buffers[first + index].withUnsafeBytes { bytes throws(IOError) -> IOResult<Int> in
                    let skip = index == 0 ? offset : 0
                    // sendmsg only reads through iov_base; the mutable pointer type is the C struct's.
                    vectors[index] = iovec(
                        iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress.map { $0 + skip }),
                        iov_len: bytes.count - skip
                    )
                    return try fill(index + 1)
                }
            }
            return try fill(0)
        }
    }
}
