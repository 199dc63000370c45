import CSluiceLinux
import Glibc
import Synchronization

/// A non-blocking TCP connection registered with an ``EventLoop``: reads and writes that would block suspend the
/// calling task, and the loop resumes it when the socket is ready.
///
/// One task may read while another writes; two concurrent readers (or writers) on one stream are a programming
/// error. Dropping the last reference closes the socket.
public final class TCPStream: Sendable {
    /// The loop that polls this socket; start the stream's tasks on it to avoid thread hops.
    public let loop: EventLoop
    /// The peer's address, when the kernel reports one.
    public let peer: SocketAddress?
    private let fd: Int32
    private let registration: Registration
    private let token: UInt64
    /// Set once by ``close()``; the descriptor is never used after.
    private let closed = Atomic<Bool>(false)

    init(adopting fd: Int32, peer: SocketAddress?, on loop: EventLoop) throws(IOError) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        (self.registration, self.token) = try loop.register(adopting: fd)
        self.fd = fd
        self.peer = peer
        self.loop = loop
    }

    deinit {
        self.close()
        Glibc.close(self.fd)
    }

    /// Opens a connection to `address`, polled by `loop`.
    ///
    /// ## Errors
    /// ``IOError`` from `socket` or `connect` (`ECONNREFUSED` when nothing listens), `CancellationError`.
    public static func connect(to address: SocketAddress, on loop: EventLoop) async throws -> TCPStream {
        let fd = try checked("socket") {
            socket(
                address.family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                0
            )
        }
        let stream = try TCPStream(adopting: fd, peer: address, on: loop)
        let started = address.withSockaddr { pointer, length in Glibc.connect(fd, pointer, length) }
        if started == -1 {
            let error = Glibc.errno
            guard error == EINPROGRESS else { throw IOError(errno: error, operation: "connect \(address)") }
            try await stream.registration.waitUntilReady(.write)
            var failure: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length)
            if failure != 0 { throw IOError(errno: failure, operation: "connect \(address)") }
        }
        return stream
    }

    /// Reads what is available, up to `maxBytes`, waiting until at least one byte (or the end) arrives.
    ///
    /// - Returns: the bytes read; empty once the peer has closed its side (end of stream).
    ///
    /// ## Errors
    /// ``IOError`` (`ECONNRESET` when the peer reset), `CancellationError` while waiting; either way no byte is
    /// lost: a cancelled read read nothing, and the stream stays usable.
    public func read(maxBytes: Int = 64 * 1024) async throws -> [UInt8] {
        precondition(maxBytes > 0, "TCPStream.read needs maxBytes > 0")
        return try await self.registration.perform(.read) { () throws(IOError) -> IOResult<[UInt8]> in
            let fd = try self.descriptor("read")
            var outcome: Result<IOResult<Int>, IOError> = .success(.wouldBlock)
            let bytes = [UInt8](unsafeUninitializedCapacity: maxBytes) { buffer, count in
                outcome = Result { () throws(IOError) in
                    try syscall("read") { Glibc.read(fd, buffer.baseAddress, maxBytes) }
                }
                if case .success(.processed(let n)) = outcome { count = n } else { count = 0 }
            }
            guard case .processed = try outcome.get() else { return .wouldBlock }
            return .processed(bytes)
        }
    }

    /// Writes all of `bytes`, waiting while the socket's send buffer is full.
    ///
    /// ## Errors
    /// ``IOError`` (`EPIPE`/`ECONNRESET` when the peer is gone; never `SIGPIPE`), `CancellationError` while
    /// waiting (some bytes may have been written then).
    public func write(_ bytes: [UInt8]) async throws {
        try await self.write(vectored: [bytes])
    }

    /// Writes every buffer, in order, with as few `sendmsg` calls as the kernel allows (one, usually).
    public func write(vectored buffers: [[UInt8]]) async throws {
        var pending = buffers.filter { !$0.isEmpty }
        var offset = 0  // bytes of pending[0] already written
        while !pending.isEmpty {
            var written = try await self.registration.perform(.write) { () throws(IOError) -> IOResult<Int> in
                try self.sendmsg(pending, firstOffset: offset)
            }
            // Drop what was written.
            while written > 0, let first = pending.first {
                let left = first.count - offset
                if written >= left {
                    written -= left
                    pending.removeFirst()
                    offset = 0
                } else {
                    offset += written
                    written = 0
                }
            }
        }
    }

    private func sendmsg(_ buffers: [[UInt8]], firstOffset: Int) throws(IOError) -> IOResult<Int> {
        let fd = try self.descriptor("sendmsg")
        let count = min(buffers.count, 1024)  // IOV_MAX on Linux; the rest goes in the next call
        var vectors = [iovec](repeating: iovec(), count: count)
        return try withArrays(buffers, count: count) { pointers throws(IOError) -> IOResult<Int> in
            for index in 0..<count {
                let skip = index == 0 ? firstOffset : 0
                vectors[index] = iovec(
                    iov_base: UnsafeMutableRawPointer(mutating: pointers[index] + skip),
                    iov_len: buffers[index].count - skip
                )
            }
            return try vectors.withUnsafeMutableBufferPointer { vectors throws(IOError) -> IOResult<Int> in
                var message = msghdr()
                message.msg_iov = vectors.baseAddress
                message.msg_iovlen = count
                return try syscall("sendmsg") { Glibc.sendmsg(fd, &message, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    /// Which direction ``shutdown(_:)`` closes.
    public enum Direction: Sendable {
        case read
        case write
        case both
    }

    /// Half-closes the connection: after `.write` the peer reads the end of stream, and this side can still read.
    public func shutdown(_ direction: Direction = .write) throws(IOError) {
        let how: Int32 =
            switch direction {
            case .read: Int32(SHUT_RD)
            case .write: Int32(SHUT_WR)
            case .both: Int32(SHUT_RDWR)
            }
        let fd = try self.descriptor("shutdown")
        _ = try checked("shutdown") { Glibc.shutdown(fd, how) }
    }

    /// Closes the connection. Tasks waiting to read or write end with an ``IOError`` (`EBADF`), and every later
    /// call fails the same way. Idempotent.
    ///
    /// The descriptor itself is released when the last reference goes (`deinit`): a syscall still running in
    /// another task then can never touch a descriptor number the kernel has already handed to a new socket.
    public func close() {
        guard !self.closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        self.loop.deregister(self.fd, token: self.token)
        _ = Glibc.shutdown(self.fd, Int32(SHUT_RDWR))
    }

    /// The descriptor for a syscall, or `EBADF` once ``close()`` was called.
    private func descriptor(_ operation: String) throws(IOError) -> Int32 {
        guard !self.closed.load(ordering: .acquiring) else { throw IOError(errno: EBADF, operation: operation) }
        return self.fd
    }
}

/// Runs `body` with a base pointer for each of the first `count` arrays (nested, so all stay valid together).
private func withArrays<Result>(
    _ arrays: [[UInt8]],
    count: Int,
    _ body: ([UnsafePointer<UInt8>]) throws(IOError) -> Result
) throws(IOError) -> Result {
    var pointers: [UnsafePointer<UInt8>] = []
    pointers.reserveCapacity(count)
    func nest(_ index: Int) throws(IOError) -> Result {
        guard index < count else { return try body(pointers) }
        return try arrays[index].withUnsafeBufferPointer { buffer throws(IOError) -> Result in
            pointers.append(buffer.baseAddress!)
            return try nest(index + 1)
        }
    }
    return try nest(0)
}
