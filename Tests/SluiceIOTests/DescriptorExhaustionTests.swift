import Glibc
import Synchronization
import Testing

@testable import SluiceIO

/// `accept` when the process is out of descriptors. Lowering `RLIMIT_NOFILE` would break every other test running
/// in parallel in this process, so the scenario runs in a child: this test binary again, filtered to the child
/// test, with `SLUICE_EMFILE_CHILD=1` in its environment.
@Suite("Descriptor exhaustion")
struct DescriptorExhaustionTests {
    @Test("accept under EMFILE backs off instead of spinning or failing, and accepts again once descriptors are free")
    func acceptUnderDescriptorExhaustion() throws {
        // A child killed by libdispatch's pool monitor (see the child) dies by a signal without a Swift "Fatal
        // error" line; only that is retried, twice. A trap of ours prints "Fatal error" and fails at once.
        var attempts = 0
        var (status, output) = (Int32(0), "")
        repeat {
            attempts += 1
            (status, output) = try runChild(filter: "acceptUnderDescriptorExhaustionChild")
        } while status < 0 && !output.contains("Fatal error") && attempts < 3
        #expect(status == 0, "child output (attempt \(attempts)):\n\(output)")
        #expect(output.contains("EMFILE-CHILD-OK"), "the child test did not run to its end:\n\(output)")
    }

    /// The scenario; does nothing unless this process is the child.
    @Test("child process: the EMFILE scenario (a no-op in the parent)")
    func acceptUnderDescriptorExhaustionChild() async throws {
        guard getenv("SLUICE_EMFILE_CHILD") != nil else { return }
        let loop = try EventLoop(name: "emfile")
        defer { loop.shutdown() }
        let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0), on: loop)
        // Two clients connect first: the kernel completes their handshakes into the listener's backlog.
        let clients = [
            try blockingConnect(port: listener.localAddress.port),
            try blockingConnect(port: listener.localAddress.port),
        ]
        defer { for fd in clients { close(fd) } }

        // libdispatch starts a pool monitor with its first worker and runs it at once, then every second; it opens
        // /proc/<tid>/stat and crashes the process when that fails (any Swift process at its descriptor limit
        // risks that). Warm the pool up first, so that the short exhausted window below falls between ticks.
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { try? await Task.sleep(for: .milliseconds(20)) } }
        }
        try await Task.sleep(for: .milliseconds(100))

        // Given a process with no descriptor left: a low soft limit, and every number under it taken.
        var original = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &original)
        var lowered = original
        lowered.rlim_cur = 256
        #expect(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lowered) == 0)
        var fillers: [Int32] = []
        while true {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            if fd < 0 { break }
            fillers.append(fd)
        }
        #expect(Glibc.errno == EMFILE)

        // When accept runs into EMFILE (the connections wait in the backlog)
        let accepting = Task { try await listener.accept() }
        while listener.loadBackoffs.load(ordering: .relaxed) < 2 { try await Task.sleep(for: .milliseconds(2)) }
        // Then it has been backing off (10, 20, 40 ms...), not retrying in a loop, and it has not given up
        let backoffsWhileExhausted = listener.loadBackoffs.load(ordering: .relaxed)
        #expect(backoffsWhileExhausted < 10, "\(backoffsWhileExhausted) back-offs: accept is spinning on EMFILE")

        // And once descriptors are free it accepts the waiting connection, and the next one
        for fd in fillers { close(fd) }
        #expect(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &original) == 0)
        let first = try await accepting.value
        let second = try await listener.accept()
        try await first.write(Array("one".utf8))
        try await second.write(Array("two".utf8))
        #expect(listener.loadBackoffs.load(ordering: .relaxed) < 20)
        print("EMFILE-CHILD-OK backoffs=\(listener.loadBackoffs.load(ordering: .relaxed))")
        listener.close()
    }
}

/// A plain blocking connection to 127.0.0.1:`port`.
private func blockingConnect(port: UInt16) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw IOError(errno: errno, operation: "connect") }
    return fd
}

/// Runs this test binary again, restricted to the test named `filter`, with `SLUICE_EMFILE_CHILD=1`; returns its
/// exit status (-1 when a signal ended it) and output.
private func runChild(filter: String) throws -> (status: Int32, output: String) {
    var pipeFDs: [Int32] = [0, 0]
    guard pipe(&pipeFDs) == 0 else { throw IOError(errno: errno, operation: "pipe") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
    posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
    posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
    let arguments = ["SluicePackageTests", "--testing-library", "swift-testing", "--filter", filter]
    var environment = ["SLUICE_EMFILE_CHILD=1"]
    var entry = Glibc.environ
    while let variable = entry.pointee {
        environment.append(String(cString: variable))
        entry += 1
    }
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
    defer { for pointer in argv + envp { free(pointer) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, "/proc/self/exe", &actions, nil, &argv, &envp)
    close(pipeFDs[1])
    defer { close(pipeFDs[0]) }
    guard spawned == 0 else { throw IOError(errno: spawned, operation: "posix_spawn") }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(pipeFDs[0], &chunk, chunk.count)
        if count <= 0 { break }
        output += chunk[0..<count]
    }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    // WEXITSTATUS / WIFEXITED are macros Swift does not import.
    let exited = status & 0x7F == 0
    return (exited ? (status >> 8) & 0xFF : -1, String(decoding: output, as: UTF8.self))
}
