import Glibc

/// The four brokers `sluice-bench peers` compares, in report order.
enum Broker: String, CaseIterable, Sendable {
    case sluice
    case nats
    case redis
    case mosquitto

    /// The name used in reports.
    var name: String {
        switch self {
        case .sluice: "Sluice"
        case .nats: "NATS"
        case .redis: "Redis"
        case .mosquitto: "Mosquitto"
        }
    }

    /// Where the peer's binary lives when Debian's package installed it (sluiced is found beside sluice-bench).
    var installedPath: String {
        switch self {
        case .sluice: ""
        case .nats: "/usr/sbin/nats-server"
        case .redis: "/usr/bin/redis-server"
        case .mosquitto: "/usr/sbin/mosquitto"
        }
    }
}

/// What the engine needs to speak one broker's protocol. Every method builds bytes or scans bytes; the sockets and
/// threads belong to the scenarios, so each broker gets exactly the same engine. Clients are structs and scenario
/// code is generic over them, so the scanner is specialized and inlined into each read loop.
protocol PeerClient: Sendable {
    var broker: Broker { get }

    /// A subject, channel or topic name for `name` (dot-separated), in the broker's own syntax.
    func topic(_ name: String) -> String

    /// Completes the protocol's handshake on a connected socket; `name` is unique per connection.
    func handshake(_ fd: Int32, _ reader: inout PeerReader, name: String) throws

    /// Subscribes the connection to `topic` and returns once the broker confirmed it.
    func subscribe(_ fd: Int32, _ reader: inout PeerReader, topic: String, id: UInt32) throws

    /// One publish of `payload` to `topic`, encoded.
    func publish(topic: String, payload: [UInt8]) -> [UInt8]

    /// What a subscriber receives for that publish, encoded (the engine's source blasts these).
    func delivery(topic: String, payload: [UInt8]) -> [UInt8]

    /// The answer to the broker's ping.
    func pong() -> [UInt8]

    /// Scans complete frames at the start of `bytes`, calls `handle` for each one of interest, and returns how many
    /// bytes were complete frames. A partial frame at the end is left for the next call.
    func scan(_ bytes: UnsafeRawBufferPointer, _ handle: (PeerEvent) -> Void) -> Int

    // Request/reply (one in flight).

    /// How request/reply is done on this broker, for the report.
    var requestReplyMethod: String { get }
    /// Prepares a connection to answer requests.
    func prepareResponder(_ fd: Int32, _ reader: inout PeerReader) throws
    /// Prepares a connection to send requests and receive replies.
    func prepareRequester(_ fd: Int32, _ reader: inout PeerReader) throws
    /// One request carrying `payload`, encoded.
    func request(payload: [UInt8]) -> [UInt8]
    /// The parts of a reply carrying `payload` that do not depend on the request, encoded once per responder.
    func replyTemplate(payload: [UInt8]) -> [UInt8]
    /// Appends the answer to the request `event` (found in `bytes`), built on `template`, to `out`.
    func appendReply(to event: PeerEvent, in bytes: UnsafeRawBufferPointer, template: [UInt8], into out: inout [UInt8])

    // Work queue (producer → consumers with acknowledgements); nil when the broker has no such thing.

    /// How the work queue is done on this broker, or nil.
    var workQueueMethod: String? { get }
    /// Makes the connection a consumer holding up to `window` unsettled messages.
    func prepareConsumer(_ fd: Int32, _ reader: inout PeerReader, window: Int) throws
    /// One work item carrying `payload`, encoded.
    func push(payload: [UInt8]) -> [UInt8]
    /// Appends what settles the delivery `event` (and asks for the next one) to `out`.
    func appendSettle(_ event: PeerEvent, into out: inout [UInt8])
}

/// A client for `broker`.
func peerClient(_ broker: Broker) -> any PeerClient {
    switch broker {
    case .sluice: SluicePeerClient()
    case .nats: NATSPeerClient()
    case .redis: RedisPeerClient()
    case .mosquitto: MQTTPeerClient()
    }
}

// MARK: - Broker processes

/// A broker in a child process on 127.0.0.1 on a free port, with its CPU and memory read from `/proc`.
final class BrokerProcess {
    let broker: Broker
    let pid: pid_t
    let port: UInt16

    /// Starts `broker` and waits until its port accepts connections. `sluiced` is the path of our daemon.
    init(_ broker: Broker, sluiced: String, maxConnections: Int) throws {
        self.broker = broker
        let port = try freePort()
        self.port = port
        var arguments: [String]
        switch broker {
        case .sluice:
            arguments = [
                sluiced, "--port", "\(port)", "--log-level", "warn", "--max-connections", "\(maxConnections)",
            ]
        case .nats:
            arguments = [broker.installedPath, "-a", "127.0.0.1", "-p", "\(port)"]
        case .redis:
            arguments = [
                broker.installedPath, "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--maxclients", "\(maxConnections)", "--daemonize", "no", "--logfile", "",
            ]
        case .mosquitto:
            let path = "/tmp/sluice-peers-mosquitto-\(port).conf"
            let config = """
                listener \(port) 127.0.0.1
                persistence false
                max_connections -1
                allow_anonymous true
                log_dest stderr
                log_type error
                log_type warning

                """
            try writeFile(path, config)
            arguments = [broker.installedPath, "-c", path]
        }
        self.pid = try spawn(arguments, log: "/tmp/sluice-peers-\(broker.rawValue).log")
        let deadline = monotonicNanoseconds() + 10_000_000_000
        while true {
            if let fd = try? peerConnect(port: port, small: true) {
                close(fd)
                break
            }
            var status: Int32 = 0
            if waitpid(self.pid, &status, WNOHANG) == self.pid || monotonicNanoseconds() > deadline {
                kill(self.pid, SIGKILL)
                throw BenchmarkFailure(
                    description:
                        "\(broker.name) did not start on port \(port); see /tmp/sluice-peers-\(broker.rawValue).log"
                )
            }
            usleep(20_000)
        }
    }

    /// User plus system CPU time so far, from `/proc/<pid>/stat`.
    func cpuNanoseconds() -> Int { processCPUNanoseconds(self.pid) }

    /// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
    func statusBytes(_ field: String) -> Int {
        guard let text = readFile("/proc/\(self.pid)/status") else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let digits = line.dropFirst(field.count + 1).filter { $0 >= "0" && $0 <= "9" }
            return (Int(String(digits)) ?? 0) * 1024
        }
        return 0
    }

    /// Stops the broker: SIGTERM, then SIGKILL if it is still there after two seconds.
    func stop() {
        kill(self.pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<100 {
            if waitpid(self.pid, &status, WNOHANG) == self.pid { return }
            usleep(20_000)
        }
        kill(self.pid, SIGKILL)
        waitpid(self.pid, &status, 0)
    }
}

/// Starts `arguments` with stdin from /dev/null and stdout and stderr appended to `log`.
func spawn(_ arguments: [String], log: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, arguments[0], &actions, nil, &argv, environ)
    guard spawned == 0 else {
        throw BenchmarkFailure(description: "could not start \(arguments[0]): error \(spawned)")
    }
    return pid
}

/// Runs `arguments` to completion and returns the first line it printed (stdout or stderr), or nil.
func firstLineOf(_ arguments: [String]) -> String? {
    let log = "/tmp/sluice-peers-version-\(getpid()).txt"
    unlink(log)
    guard let pid = try? spawn(arguments, log: log) else { return nil }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    defer { unlink(log) }
    return readFile(log)?.split(separator: "\n").first.map(String.init)
}

/// The whole of a small text file, or nil.
/// User plus system CPU time of process `pid` so far, from `/proc/<pid>/stat`.
func processCPUNanoseconds(_ pid: pid_t) -> Int {
    guard let text = readFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return 0 }
    // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else { return 0 }
    return (user + system) * 1_000_000_000 / sysconf(Int32(_SC_CLK_TCK))
}

/// Steal time of the whole machine so far, in seconds summed over its CPUs (`/proc/stat`): time the hypervisor ran
/// something else while this VM had work for a vCPU. Zero on bare metal; on a shared VM, the noise of a run.
func vmStealSeconds() -> Double {
    guard let text = readFile("/proc/stat"), let line = text.split(separator: "\n").first, line.hasPrefix("cpu ")
    else { return 0 }
    // cpu user nice system idle iowait irq softirq steal ...
    let fields = line.split(separator: " ")
    guard fields.count > 8, let steal = Int(fields[8]) else { return 0 }
    return Double(steal) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

func readFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Replaces `path` with `text`.
func writeFile(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw BenchmarkFailure(description: "cannot write \(path), errno \(errno)") }
    defer { close(fd) }
    var text = text
    let written = text.withUTF8 { write(fd, $0.baseAddress, $0.count) }
    guard written == text.utf8.count else { throw BenchmarkFailure(description: "short write to \(path)") }
}

/// The versions of the peers and of this build, for the report.
func brokerVersions(_ brokers: [Broker]) -> [Broker: String] {
    var versions: [Broker: String] = [:]
    for broker in brokers {
        switch broker {
        case .sluice:
            versions[broker] = "sluiced " + (firstLineOf(["/usr/bin/git", "rev-parse", "--short", "HEAD"]) ?? "?")
        case .nats:
            versions[broker] = firstLineOf([broker.installedPath, "--version"]) ?? "?"
        case .redis:
            versions[broker] = firstLineOf([broker.installedPath, "--version"]) ?? "?"
        case .mosquitto:
            versions[broker] = firstLineOf([broker.installedPath, "-h"]) ?? "?"
        }
    }
    return versions
}
