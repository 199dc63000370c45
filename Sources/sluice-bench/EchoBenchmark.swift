import CSluiceLinux
import Glibc

/// `sluice-bench echo`: three echo servers (see ``EchoServer``) driven by the same client in one run.
///
/// Each server runs in a child process (`sluice-bench echo-server`), so its CPU time can be read from
/// `/proc/<pid>/stat` and divided by the messages it echoed. The client is a plain epoll loop against the
/// syscalls: per connection it keeps `window` 64-byte messages in flight and sends one more for every one that
/// comes back. Then one connection does `roundTrips` sequential ping-pongs for latency.
struct EchoBenchmark {
    let seconds: Int
    let roundTrips: Int
    /// Event loops of the SluiceIO servers: 1 by default, like the floor's one thread (the client takes the other
    /// core of a 2-core machine).
    let loops: Int
    /// Each server is measured this many times; the tables show medians.
    let runs: Int
    let window = 32
    let messageSize = 64

    struct Row {
        let variant: String
        let connections: Int
        let messagesPerSecond: Double
        let cpuNanosecondsPerMessage: Double
    }

    func run() throws {
        let variants = ["epoll", "loop", "global"]
        let names = [
            "epoll": "plain epoll loop (floor)", "loop": "SluiceIO, tasks on the loop",
            "global": "SluiceIO, tasks on the global executor",
        ]
        print(
            "sluice-bench echo: \(self.messageSize)-byte messages, \(self.window) in flight per connection, \(self.seconds) s per run, SluiceIO on \(self.loops) event loop(s), \(self.runs) run(s), medians\n"
        )
        // Runs interleave the servers (floor, loop, global, floor, …), so a slow spell of a shared machine falls on
        // all of them rather than on one.
        var rows: [Row] = []
        var latencies: [String: [(p50: Double, p99: Double)]] = [:]
        for run in 1...self.runs {
            for variant in variants {
                let server = try ServerProcess(variant: variant, loops: self.loops)
                defer { server.stop() }
                for connections in [1, 50] {
                    let before = server.cpuNanoseconds()
                    let messages = try self.pipelined(port: server.port, connections: connections)
                    let cpu = server.cpuNanoseconds() - before
                    let row = Row(
                        variant: variant,
                        connections: connections,
                        messagesPerSecond: Double(messages) / Double(self.seconds),
                        cpuNanosecondsPerMessage: Double(cpu) / Double(max(messages, 1))
                    )
                    rows.append(row)
                    print(
                        "run \(run)/\(self.runs), \(names[variant]!), \(connections) connection(s): \(formatRate(row.messagesPerSecond)), \(Int(row.cpuNanosecondsPerMessage)) ns CPU/msg"
                    )
                }
                let latency = try self.pingPong(port: server.port)
                latencies[variant, default: []].append(latency)
                print(
                    "run \(run)/\(self.runs), \(names[variant]!), ping-pong: p50 \(Int(latency.p50)) µs, p99 \(Int(latency.p99)) µs"
                )
            }
        }
        func median(_ variant: String, _ connections: Int, _ value: (Row) -> Double) -> Double {
            PeersReport.median(rows.filter { $0.variant == variant && $0.connections == connections }.map(value))
        }
        print(
            "\n| server | connections | msgs/s | vs epoll | server CPU ns/msg | vs epoll |\n|---|---:|---:|---:|---:|---:|"
        )
        for variant in variants {
            for connections in [1, 50] {
                let rate = median(variant, connections, \.messagesPerSecond)
                let cpu = median(variant, connections, \.cpuNanosecondsPerMessage)
                let floorRate = median("epoll", connections, \.messagesPerSecond)
                let floorCPU = median("epoll", connections, \.cpuNanosecondsPerMessage)
                print(
                    "| \(names[variant]!) | \(connections) | \(formatRate(rate)) | \(format2(rate / floorRate))× | \(Int(cpu)) | \(format2(cpu / floorCPU))× |"
                )
            }
        }
        print("\n| server | ping-pong p50 | p99 | p99 vs epoll |\n|---|---:|---:|---:|")
        let floorP99 = PeersReport.median(latencies["epoll"]!.map(\.p99))
        for variant in variants {
            let p50 = PeersReport.median(latencies[variant]!.map(\.p50))
            let p99 = PeersReport.median(latencies[variant]!.map(\.p99))
            print("| \(names[variant]!) | \(Int(p50)) µs | \(Int(p99)) µs | \(format2(p99 / floorP99))× |")
        }
    }

    /// Keeps `window` messages in flight on each connection for `seconds`; returns the messages echoed back.
    private func pipelined(port: UInt16, connections: Int) throws -> Int {
        let epoll = epoll_create1(0)
        defer { close(epoll) }
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        // Bytes each connection still has to send (content is irrelevant to an echo).
        var owed = [Int32: Int]()
        for _ in 0..<connections {
            let fd = try connectBlocking(port: port)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var event = epoll_event()
            event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLET.rawValue
            event.data.fd = fd
            epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
            sockets.append(fd)
            owed[fd] = self.window * self.messageSize
        }
        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: 256 * 1024)
        defer { scratch.deallocate() }
        scratch.initialize(repeating: 0x78, count: 256 * 1024)
        var received = 0
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(self.seconds)
        // Prime every connection, then react to events until the deadline.
        for fd in sockets { Self.send(fd, owed: &owed[fd]!, from: scratch) }
        while clock.now < deadline {
            let count = epoll_wait(epoll, &events, Int32(events.count), 100)
            guard count > 0 else { continue }
            for event in events[0..<Int(count)] {
                let fd = event.data.fd
                while true {
                    let n = read(fd, scratch, 256 * 1024)
                    guard n > 0 else { break }
                    received += n
                    owed[fd]! += n  // one more byte out for every byte back: the window stays full
                }
                Self.send(fd, owed: &owed[fd]!, from: scratch)
            }
        }
        return received / self.messageSize
    }

    private static func send(_ fd: Int32, owed: inout Int, from scratch: UnsafeMutablePointer<UInt8>) {
        while owed > 0 {
            let n = Glibc.send(fd, scratch, min(owed, 256 * 1024), Int32(MSG_NOSIGNAL))
            guard n > 0 else { return }
            owed -= n
        }
    }

    /// `roundTrips` sequential 64-byte ping-pongs on one blocking connection: p50 and p99 in microseconds.
    private func pingPong(port: UInt16) throws -> (p50: Double, p99: Double) {
        let fd = try connectBlocking(port: port)
        defer { close(fd) }
        var message = [UInt8](repeating: 0x70, count: self.messageSize)
        var samples: [Double] = []
        samples.reserveCapacity(self.roundTrips)
        let clock = ContinuousClock()
        for _ in 0..<self.roundTrips {
            let start = clock.now
            _ = Glibc.send(fd, &message, self.messageSize, Int32(MSG_NOSIGNAL))
            var got = 0
            while got < self.messageSize {
                let n = message.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, self.messageSize - got, 0) }
                guard n > 0 else { throw BenchmarkFailure(description: "echo server closed during ping-pong") }
                got += n
            }
            samples.append((clock.now - start).seconds * 1e6)
        }
        samples.sort()
        return (samples[samples.count / 2], samples[Int(Double(samples.count) * 0.99)])
    }
}

/// A blocking TCP connection to 127.0.0.1:`port` with `TCP_NODELAY`.
func connectBlocking(port: UInt16) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard result == 0 else {
        close(fd)
        throw BenchmarkFailure(description: "connect to 127.0.0.1:\(port) failed, errno \(errno)")
    }
    return fd
}

/// `sluice-bench echo-server` in a child process: started with port 0, its port read from its stdout.
final class ServerProcess {
    let pid: pid_t
    let port: UInt16

    init(variant: String, loops: Int) throws {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw BenchmarkFailure(description: "pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        let arguments = ["sluice-bench", "echo-server", "--port", "0", "--variant", variant, "--loops", "\(loops)"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/proc/self/exe", &actions, nil, &argv, Glibc.environ)
        posix_spawn_file_actions_destroy(&actions)
        close(pipeFDs[1])
        guard spawned == 0 else { throw BenchmarkFailure(description: "posix_spawn failed: \(spawned)") }
        self.pid = pid
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(pipeFDs[0], &byte, 1) == 1, byte != 10 { line.append(byte) }
        close(pipeFDs[0])
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("port="), let port = UInt16(text.dropFirst(5)) else {
            kill(pid, SIGKILL)
            throw BenchmarkFailure(description: "echo server (\(variant)) did not announce its port: '\(text)'")
        }
        self.port = port
    }

    /// User plus system CPU time of the server process so far, from `/proc/<pid>/stat`.
    func cpuNanoseconds() -> Int { processCPUNanoseconds(self.pid) }

    func stop() {
        kill(self.pid, SIGKILL)
        var status: Int32 = 0
        waitpid(self.pid, &status, 0)
    }
}
