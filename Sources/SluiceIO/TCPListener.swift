import CSluiceLinux
import Glibc
import Synchronization

/// A listening TCP socket. ``accept(on:)`` suspends until a connection arrives and hands it to the chosen loop.
public final class TCPListener: Sendable {
    /// The address actually bound (the real port when bound to port 0).
    public let localAddress: SocketAddress
    /// The loop that polls the listening socket.
    public let loop: EventLoop
    private let fd: Int32
    private let registration: Registration
    private let token: UInt64
    private let closed = Atomic<Bool>(false)
    /// How many times ``accept(on:)`` backed off for lack of descriptors or memory (tests watch it; a listener
    /// that spun on `EMFILE` would count thousands a second).
    let loadBackoffs = Atomic<Int>(0)

    /// Binds `address` with `SO_REUSEADDR` and listens.
    ///
    /// ## Errors
    /// ``IOError`` from `socket`, `bind` (`EADDRINUSE`, `EACCES`) or `listen`.
    public init(bind address: SocketAddress, backlog: Int32 = 1024, on loop: EventLoop) throws(IOError) {
        let fd = try checked("socket") {
            socket(
                address.family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                0
            )
        }
        do {
            var one: Int32 = 1
            _ = try checked("setsockopt(SO_REUSEADDR)") {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            _ = try checked("bind \(address)") { address.withSockaddr { Glibc.bind(fd, $0, $1) } }
            _ = try checked("listen") { Glibc.listen(fd, backlog) }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = try checked("getsockname") {
                withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
                }
            }
            self.localAddress = SocketAddress(storage: storage) ?? address
            (self.registration, self.token) = try loop.register(fd)
        } catch {
            Glibc.close(fd)
            throw error
        }
        self.fd = fd
        self.loop = loop
    }

    deinit {
        self.close()
        Glibc.close(self.fd)
    }

    /// Waits for the next connection and registers it with `loop` (the listener's own loop by default).
    ///
    /// Running out of descriptors (`EMFILE`, `ENFILE`) or kernel memory neither spins nor ends the listener: it
    /// backs off (10 ms, doubling to 1 s) and tries again, so the server sheds load instead of failing. A
    /// connection the peer aborted before we accepted it is skipped.
    ///
    /// ## Errors
    /// ``IOError`` for failures that are not about load, `EBADF` after ``close()``; `CancellationError`.
    nonisolated(nonsending) public func accept(on loop: EventLoop? = nil) async throws -> TCPStream {
        var backoff = Duration.milliseconds(10)
        while true {
            guard !self.closed.load(ordering: .acquiring) else { throw IOError(errno: EBADF, operation: "accept") }
            let tick = self.registration.tick(.read)
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let flags = Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            let result: IOResult<Int32>
            do {
                result = try syscall("accept4") {
                    withUnsafeMutablePointer(to: &storage) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            csluice_accept4(self.fd, $0, &length, flags)
                        }
                    }
                }
            } catch {
                // (One `catch` with a switch: `catch … where` clauses on typed throws crash Swift 6.3.1 here.)
                switch error.errno {
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // The connection stays in the kernel's backlog; readiness stays set (nothing cleared it), so
                    // the retry after the sleep takes it as soon as a descriptor is free.
                    self.loadBackoffs.add(1, ordering: .relaxed)
                    try await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(1))
                    continue
                case ECONNABORTED:
                    continue
                default:
                    throw error
                }
            }
            switch result {
            case .processed(let client):
                return try TCPStream(adopting: client, peer: SocketAddress(storage: storage), on: loop ?? self.loop)
            case .wouldBlock:
                self.registration.clearReadiness(.read, ifTick: tick)
                try await self.registration.waitUntilReady(.read)
            }
        }
    }

    /// Stops listening: a pending ``accept(on:)`` ends with `EBADF`. Idempotent.
    public func close() {
        guard !self.closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        self.loop.deregister(self.fd, token: self.token)
        _ = Glibc.shutdown(self.fd, Int32(SHUT_RDWR))
    }
}
