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
    /// The socket; valid until `deinit` (``close()`` only shuts it down and deregisters it).
    let fd: Int32
    /// Readiness of `fd` as the loop reports it; the loop's slot table holds the other reference until `close()`.
    let registration: Registration
    /// The loop's slot-table key for `registration`, needed to deregister.
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
    nonisolated(nonsending) public static func connect(
        to address: SocketAddress,
        on loop: EventLoop
    ) async throws -> TCPStream {
        let fd = try checked("socket") {
            socket(
                address.family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                0
            )
        }
        // Start connecting before registering: epoll reports a socket that is not yet connecting (TCP_CLOSE) as hung
        // up, and a hang-up is sticky in `Registration`.
        let started = address.withSockaddr { pointer, length in Glibc.connect(fd, pointer, length) }
        let error = started == -1 ? Glibc.errno : 0
        guard started == 0 || error == EINPROGRESS else {
            Glibc.close(fd)
            throw IOError(errno: error, operation: "connect \(address)")
        }
        let stream = try TCPStream(adopting: fd, peer: address, on: loop)
        if started == -1 {
            try await stream.registration.waitUntilReady(.write)
            var failure: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length)
            if failure != 0 { throw IOError(errno: failure, operation: "connect \(address)") }
        }
        return stream
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

    /// Runs `body`, this task's read (or write) loop, with one cancellation handler for all of its `interest`
    /// waits instead of one per wait: a wait inside costs a plain continuation, where a wait with its own handler
    /// costs several locked runtime calls more. Cancelling the task ends the wait in progress, and every later
    /// one, with `CancellationError`, as it would outside.
    ///
    /// Inside `body` only the calling task may read (or write) this stream: the scope's handler ends whichever
    /// wait of that direction is stored. Scopes of one direction do not nest.
    ///
    /// ## Errors
    /// What `body` throws.
    ///
    /// ## Examples
    /// ```swift
    /// try await stream.withCancellationHandler(for: .read) {
    ///     while try await stream.read({ bytes in decoder.append(bytes); return !bytes.isEmpty }) { … }
    /// }
    /// ```
    nonisolated(nonsending) public func withCancellationHandler<Result, Failure: Error>(
        for interest: Registration.Interest,
        _ body: () async throws(Failure) -> Result
    ) async throws(Failure) -> Result {
        try await self.registration.withCancellationHandler(for: interest, body)
    }

    /// Calls `action` once, when the stream has something to read (at once if it already has), when it closes, or
    /// when ``endReadWait()`` is called: a read wait without a task (see ``Registration/whenReady(_:_:)``). Pair it
    /// with ``readIfReady(_:)``.
    public func whenReadable(_ action: @escaping @Sendable () -> Void) {
        self.registration.whenReady(.read, action)
    }

    /// ``whenReadable(_:)`` unless the socket is readable already (or hung up, or closed): then false, and `action`
    /// is neither stored nor called (see `Registration.whenReadyLater(_:_:)`).
    public func whenReadableLater(_ action: @escaping @Sendable () -> Void) -> Bool {
        self.registration.whenReadyLater(.read, action)
    }

    /// Ends the read wait in progress: a task's ends with `CancellationError` (the task is not cancelled); a
    /// ``whenReadable(_:)`` action is called, unless `tasksOnly`.
    public func endReadWait(tasksOnly: Bool = false) {
        self.registration.endWait(.read, tasksOnly: tasksOnly)
    }

    /// The descriptor for a syscall, or `EBADF` once ``close()`` was called.
    func descriptor(_ operation: String) throws(IOError) -> Int32 {
        guard !self.closed.load(ordering: .acquiring) else { throw IOError(errno: EBADF, operation: operation) }
        return self.fd
    }
}
