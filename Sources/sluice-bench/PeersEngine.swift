import CSluiceLinux
import Glibc
import SluiceIO
import Synchronization

// The load engine of `sluice-bench peers`: blocking POSIX sockets, one thread per connection, big socket buffers,
// many frames per write, and a byte scanner per protocol (see `PeerClient`). No tasks, no executors and no
// Foundation: the same code drives every broker, and its own ceiling is measured against a sink and a source in
// the same run (`PeersScenarios.swift`), so a broker result can be told apart from a client limit.

/// Monotonic nanoseconds, comparable across this process's threads.
func monotonicNanoseconds() -> Int64 { Int64(Monotonic.now) }

// MARK: - Threads

/// What a thread runs; retained across `pthread_create`, whose entry point cannot capture.
private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// A plain OS thread (not a task): the engine blocks in `recv`/`send`, which must never happen on an executor.
struct PeerThread {
    private let handle: pthread_t

    /// Starts `body` on a new thread.
    init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var handle = pthread_t()
        let created = pthread_create(
            &handle,
            nil,
            { argument in
                Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue().run()
                return nil
            },
            box
        )
        precondition(created == 0, "pthread_create failed: \(created)")
        self.handle = handle
    }

    /// Waits for the thread to end.
    func join() { pthread_join(self.handle, nil) }
}

/// A value one thread writes and another reads after `join`.
final class PeerSlot<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ initial: Value) { self.value = Mutex(initial) }
    func set(_ newValue: Value) { self.value.withLock { $0 = newValue } }
    func get() -> Value { self.value.withLock { $0 } }
}

/// A counter shared by threads (work-queue consumers add to it; everyone can read it), plus a stop flag.
final class PeerCounter: Sendable {
    private let count = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    @discardableResult
    func add(_ value: Int) -> Int { self.count.wrappingAdd(value, ordering: .relaxed).newValue }
    var value: Int { self.count.load(ordering: .relaxed) }
    func stop() { self.stopped.store(true, ordering: .relaxed) }
    var isStopped: Bool { self.stopped.load(ordering: .relaxed) }
}

// MARK: - Sockets

/// The socket buffer size asked for on every connection: big, so one write carries many frames.
private let socketBufferBytes: Int32 = 4 << 20

/// How long a blocking `recv` waits before returning, so loops can check their deadline and stop flag.
private let receiveTimeoutMicroseconds = 100_000

/// Applies the engine's socket options: no Nagle, big buffers, a receive timeout.
private func configure(_ fd: Int32) {
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    var size = socketBufferBytes
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    var timeout = timeval(tv_sec: 0, tv_usec: receiveTimeoutMicroseconds)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
}

/// A loopback address.
private func loopback(_ port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}

/// A connected, blocking socket to 127.0.0.1:`port`, configured for the engine. `small` skips the big buffers (idle
/// connections: thousands of them must not pin megabytes each in the kernel).
func peerConnect(port: UInt16, small: Bool = false) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw BenchmarkFailure(description: "socket() failed, errno \(errno)") }
    if small {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 0, tv_usec: receiveTimeoutMicroseconds)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    } else {
        configure(fd)
    }
    var address = loopback(port)
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard result == 0 else {
        let code = errno
        close(fd)
        throw BenchmarkFailure(description: "connect to 127.0.0.1:\(port) failed, errno \(code)")
    }
    return fd
}

/// How long one `peerSend` may block in all before it gives up (a broker that stopped reading).
private let sendLimitNanoseconds: Int64 = 20_000_000_000

/// Sends every byte, blocking while the peer's window is full (that wait is the broker's backpressure). Fails if
/// the bytes are not all taken within 20 s.
func peerSend(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
    var sent = 0
    var giveUp: Int64 = 0
    while sent < bytes.count {
        let n = send(fd, bytes.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
        if n > 0 {
            sent += n
        } else if n < 0 && errno == EINTR {
            continue
        } else if n < 0 && errno == EAGAIN {
            let now = monotonicNanoseconds()
            if giveUp == 0 { giveUp = now + sendLimitNanoseconds }
            if now > giveUp { throw BenchmarkFailure(description: "send blocked for 20 s: the peer stopped reading") }
        } else {
            throw BenchmarkFailure(description: "send failed, errno \(errno)")
        }
    }
}

/// Sends every byte of `bytes`.
func peerSend(_ fd: Int32, _ bytes: [UInt8]) throws {
    try bytes.withUnsafeBytes { try peerSend(fd, $0) }
}

/// A listening socket on 127.0.0.1 with a kernel-chosen port (the engine's sink and source, and free ports).
func peerListen() throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = loopback(0)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0, listen(fd, 1024) == 0 else {
        close(fd)
        throw BenchmarkFailure(description: "bind/listen on 127.0.0.1 failed, errno \(errno)")
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// A port that was free a moment ago (the kernel's choice, released at once), for a broker to listen on.
func freePort() throws -> UInt16 {
    let (fd, port) = try peerListen()
    close(fd)
    return port
}

/// Accepts one connection on `listener` and configures it like the engine's own.
func peerAccept(_ listener: Int32) -> Int32 {
    let fd = accept(listener, nil, nil)
    if fd >= 0 { configure(fd) }
    return fd
}

/// Raises this process's open-file limit to its hard limit (children inherit it), for the idle-connection scenario.
func raiseFileLimit() -> Int {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    return Int(limit.rlim_cur)
}

// MARK: - Reading

/// How a read ended.
enum PeerRead {
    /// Bytes arrived.
    case data
    /// Nothing within the receive timeout.
    case timeout
    /// The peer closed or the socket failed.
    case closed
}

/// One connection's read buffer: bytes arrive at the end, complete frames are taken from the front, the rest is
/// moved to the front before the room runs out. Owned by the one thread reading the socket.
struct PeerReader: ~Copyable {
    /// The buffer; `start..<end` is unread input.
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    private var start = 0
    private var end = 0

    init(capacity: Int = 1 << 20) {
        self.capacity = capacity
        self.base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit { self.base.deallocate() }

    /// Unread input.
    var unread: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: self.base + self.start, count: self.end - self.start)
    }

    /// Marks `count` bytes at the front as taken.
    mutating func consume(_ count: Int) {
        self.start += count
        if self.start == self.end {
            self.start = 0
            self.end = 0
        }
    }

    /// One `recv` into the free room (after moving unread bytes to the front if the room is short).
    mutating func fill(_ fd: Int32) -> PeerRead {
        if self.capacity - self.end < 64 * 1024 {
            let unread = self.end - self.start
            memmove(self.base, self.base + self.start, unread)
            self.start = 0
            self.end = unread
        }
        while true {
            let n = recv(fd, self.base + self.end, self.capacity - self.end, 0)
            if n > 0 {
                self.end += n
                return .data
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return .timeout }
            return .closed
        }
    }
}

/// What a protocol scanner found in the input: one complete frame (or line, or packet) of interest.
struct PeerEvent {
    enum Kind {
        /// A message delivery: pub/sub MSG, a queue message, a request to a responder, or a reply to a requester.
        case message
        /// Sluice LAGGED: `id` messages were skipped.
        case lagged
        /// The broker pings: answer with the protocol's pong.
        case ping
        /// A positive answer: WELCOME, OK, PONG, CONNACK, SUBACK, an integer reply, …
        case acknowledged
        /// An error from the broker.
        case error
    }

    var kind: Kind
    /// Payload bytes of a message.
    var payloadCount = 0
    /// Sluice delivery or reply id; LAGGED count.
    var id: UInt64 = 0
    /// NATS reply subject, as an offset and a count in the scanned bytes (count 0: none).
    var replyOffset = 0
    var replyCount = 0
}

/// How `pump` ended.
enum PumpEnd {
    /// The handler asked to stop.
    case stopped
    /// The connection closed.
    case closed
    /// The deadline passed (or `stop` was set) first.
    case deadline
}

/// Reads `fd` and feeds every complete frame to `handle` until it returns true, the connection ends, the
/// monotonic `deadline` passes, or `stop` is set. `handle` gets the event and the bytes it was found in;
/// `afterScan` runs after each batch of frames (to write what the handler collected in one go).
func pump<Client: PeerClient>(
    _ client: Client,
    _ fd: Int32,
    _ reader: inout PeerReader,
    deadline: Int64,
    stop: PeerCounter? = nil,
    afterScan: () -> Void = {},
    _ handle: (PeerEvent, UnsafeRawBufferPointer) -> Bool
) -> PumpEnd {
    while true {
        var done = false
        let bytes = reader.unread
        let used = client.scan(bytes) { event in
            if handle(event, bytes) { done = true }
        }
        reader.consume(used)
        afterScan()
        if done { return .stopped }
        if monotonicNanoseconds() > deadline || stop?.isStopped == true { return .deadline }
        switch reader.fill(fd) {
        case .data, .timeout: continue
        case .closed: return .closed
        }
    }
}

/// Waits for `count` acknowledgements on `fd` (handshake, subscription), answering pings; fails on an error event.
func awaitAcknowledgements<Client: PeerClient>(
    _ client: Client,
    _ fd: Int32,
    _ reader: inout PeerReader,
    count: Int = 1,
    what: String
) throws {
    var seen = 0
    var failed = false
    var pings = 0
    let end = pump(client, fd, &reader, deadline: monotonicNanoseconds() + 5_000_000_000) { event, _ in
        switch event.kind {
        case .acknowledged: seen += 1
        case .error: failed = true
        case .ping: pings += 1
        case .message, .lagged: break
        }
        return seen >= count || failed
    }
    for _ in 0..<pings { try peerSend(fd, client.pong()) }
    guard end == .stopped, !failed else {
        throw BenchmarkFailure(description: "\(client.broker.name): \(what) failed (\(failed ? "error" : "\(end)"))")
    }
}
