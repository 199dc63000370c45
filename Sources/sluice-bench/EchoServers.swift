import CSluiceLinux
import Glibc
import SluiceIO

/// `sluice-bench echo-server --port P [--variant loop|global|epoll]`: one echo server, until killed.
///
/// - `loop`: SluiceIO; one event loop per core, each connection's task on the loop that polls its socket.
/// - `global`: the same SluiceIO code with the tasks on the default global executor.
/// - `epoll`: a plain single-threaded edge-triggered epoll loop against the syscalls, no tasks and no
///   continuations: the floor SluiceIO's abstractions add to.
///
/// Prints `port=N` on stdout once listening, so a parent can use port 0.
enum EchoServer {
    static func run(port: UInt16, variant: String, loops: Int) async throws {
        switch variant {
        case "loop", "global":
            let group = try EventLoopGroup(count: loops)
            let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: port), on: group.next())
            announce(listener.localAddress.port)
            let onLoop = variant == "loop"
            await withDiscardingTaskGroup { tasks in
                while true {
                    let loop = group.next()
                    guard let stream = try? await listener.accept(on: loop) else { continue }
                    let work: @Sendable () async -> Void = {
                        // The floor's algorithm: read into the (pooled) scratch buffer, send straight from it, and
                        // copy only what the kernel did not take, to write after the read returns.
                        // One cancellation handler for the connection's whole read loop, not one per wait.
                        try? await stream.withCancellationHandler(for: .read) {
                            while true {
                                let rest = try await stream.read { bytes throws(IOError) -> [UInt8]? in
                                    if bytes.isEmpty { return nil }  // end of stream
                                    let written = try stream.tryWrite(bytes)
                                    return written == bytes.count ? [] : Array(bytes[written...])
                                }
                                guard let rest else { return }
                                if !rest.isEmpty { try await stream.write(rest) }
                            }
                        }
                    }
                    if onLoop {
                        tasks.addTask(executorPreference: loop, operation: work)
                    } else {
                        tasks.addTask(operation: work)
                    }
                }
            }
        case "epoll":
            try PlainEpollEcho(port: port).run()
        default:
            throw BenchmarkFailure(description: "unknown echo server variant '\(variant)' (loop, global, epoll)")
        }
    }

    static func announce(_ port: UInt16) {
        var line = "port=\(port)\n"
        line.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
    }
}

/// The floor: one thread, one edge-triggered epoll, read and write straight back, no allocation per message.
struct PlainEpollEcho {
    let port: UInt16

    func run() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = self.port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(listener, 1024) == 0 else {
            throw BenchmarkFailure(description: "epoll echo: bind/listen failed, errno \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        EchoServer.announce(UInt16(bigEndian: address.sin_port))
        let epoll = epoll_create1(0)
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLET.rawValue
        event.data.fd = listener
        epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event)
        // Bytes read but not yet written back, per descriptor (only when the socket's send buffer was full).
        var backlog: [Int32: [UInt8]] = [:]
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 64 * 1024)
        while true {
            let count = epoll_wait(epoll, &events, Int32(events.count), -1)
            guard count > 0 else { continue }
            for event in events[0..<Int(count)] {
                let fd = event.data.fd
                if fd == listener {
                    while true {
                        let client = csluice_accept4(listener, nil, nil, Int32(SOCK_NONBLOCK.rawValue))
                        guard client >= 0 else { break }
                        setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                        var clientEvent = epoll_event()
                        clientEvent.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLET.rawValue
                        clientEvent.data.fd = client
                        epoll_ctl(epoll, EPOLL_CTL_ADD, client, &clientEvent)
                    }
                    continue
                }
                if !Self.flush(fd, &backlog) { continue }
                while true {
                    let n = read(fd, buffer, 64 * 1024)
                    if n == 0 || (n < 0 && errno != EAGAIN) {
                        close(fd)
                        backlog[fd] = nil
                        break
                    }
                    if n < 0 { break }
                    let written = send(fd, buffer, n, Int32(MSG_NOSIGNAL))
                    let done = max(written, 0)
                    if done < n {
                        backlog[fd, default: []].append(
                            contentsOf: UnsafeBufferPointer(start: buffer + done, count: n - done)
                        )
                        break
                    }
                }
            }
        }
    }

    /// Writes what is pending for `fd`; false while some is still pending.
    static func flush(_ fd: Int32, _ backlog: inout [Int32: [UInt8]]) -> Bool {
        guard let pending = backlog[fd], !pending.isEmpty else { return true }
        let written = pending.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        let done = max(written, 0)
        if done == pending.count {
            backlog[fd] = nil
            return true
        }
        backlog[fd] = Array(pending[done...])
        return false
    }
}
