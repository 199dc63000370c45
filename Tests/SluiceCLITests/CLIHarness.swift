import Foundation
import Testing

/// Runs the real `sluiced` and `sluice` binaries as processes.
///
/// The binaries are looked up in `$SLUICED` / `$SLUICE`, else next to the test bundle (`.build/debug/`). They are
/// products of this package, so `swift build` (or `swift build --build-tests`) makes them; a missing binary fails
/// the test with a message saying so.
enum CLI {
    /// The directory holding the test bundle, which SwiftPM fills with every product of the build.
    static var buildDirectory: URL {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        // The test bundle may be a directory (`….xctest/…`) on some setups: walk up to the build directory.
        while directory.path.contains(".xctest") { directory = directory.deletingLastPathComponent() }
        return directory
    }

    static func binary(_ name: String, variable: String) throws -> String {
        if let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty { return path }
        let path = self.buildDirectory.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("no '\(name)' binary at \(path): run `swift build` first, or set \(variable)")
        }
        return path
    }

    static func sluice() throws -> String { try self.binary("sluice", variable: "SLUICE") }
    static func sluiced() throws -> String { try self.binary("sluiced", variable: "SLUICED") }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A temporary file for a process's output, read back as text.
final class OutputFile: @unchecked Sendable {
    // @unchecked: the handle is written by the child process only; this side just reads the file by path.
    let url: URL
    let handle: FileHandle

    init() throws {
        self.url = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-cli-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: self.url.path, contents: nil)
        self.handle = try FileHandle(forWritingTo: self.url)
    }

    deinit {
        try? self.handle.close()
        try? FileManager.default.removeItem(at: self.url)
    }

    var text: String { (try? String(contentsOf: self.url, encoding: .utf8)) ?? "" }
    var lines: [String] {
        self.text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }
}

/// One running process with its output in files.
final class Running: @unchecked Sendable {
    // @unchecked: `Process` is used from the test task only.
    let process: Process
    let stdout: OutputFile
    let stderr: OutputFile

    init(_ executable: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) throws
    {
        self.process = Process()
        self.stdout = try OutputFile()
        self.stderr = try OutputFile()
        self.process.executableURL = URL(fileURLWithPath: executable)
        self.process.arguments = arguments
        var variables = ProcessInfo.processInfo.environment
        variables["SLUICE_SERVER"] = nil
        variables["SLUICE_TOKEN"] = nil
        for (key, value) in environment { variables[key] = value }
        self.process.environment = variables
        self.process.standardOutput = self.stdout.handle
        self.process.standardError = self.stderr.handle
        let input = Pipe()
        self.process.standardInput = input
        try self.process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
    }

    /// Waits for the process to exit, at most `limit`; kills it and throws past that.
    @discardableResult
    func wait(_ limit: Duration = .seconds(15)) async throws -> Int32 {
        let clock = ContinuousClock()
        let deadline = clock.now + limit
        while self.process.isRunning {
            if clock.now >= deadline {
                self.process.terminate()
                throw HarnessError(
                    "\(self.process.arguments ?? []) did not exit within \(limit); stderr: \(self.stderr.text)"
                )
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return self.process.terminationStatus
    }

    /// Polls until `condition` holds, at most `limit`.
    func waitUntil(_ limit: Duration = .seconds(10), _ what: String, _ condition: () -> Bool) async throws {
        try await eventually(limit, what, condition)
    }

    func interrupt() { kill(self.process.processIdentifier, SIGINT) }

    deinit {
        if self.process.isRunning { self.process.terminate() }
    }
}

/// Polls `condition` every 10 ms until it holds, at most `limit`.
func eventually(_ limit: Duration = .seconds(10), _ what: String, _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    while try await !condition() {
        guard clock.now < deadline else { throw HarnessError("timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// A `sluiced` on a free port, stopped with SIGTERM when the test ends.
final class Daemon: @unchecked Sendable {
    let running: Running
    let port: Int

    init(_ extra: [String] = []) async throws {
        let defaults = ["--port", "0", "--shutdown-grace", "1s", "--hello-timeout", "2m", "--idle-timeout", "2m"]
        let running = try Running(try CLI.sluiced(), defaults + extra)
        self.running = running
        var port: Int?
        try await eventually(.seconds(10), "sluiced to log server.start") {
            if !running.process.isRunning {
                throw HarnessError("sluiced exited: \(running.stderr.text)")
            }
            guard let line = running.stderr.lines.first(where: { $0.contains("event=server.start") }),
                let range = line.range(of: "listen=127.0.0.1:")
            else { return false }
            port = Int(line[range.upperBound...].prefix { $0.isNumber })
            return port != nil
        }
        self.port = port!
    }

    var server: String { "127.0.0.1:\(self.port)" }

    deinit {
        if self.running.process.isRunning {
            self.running.process.terminate()
            self.running.process.waitUntilExit()
        }
    }
}

/// The result of one `sluice` run.
struct Outcome {
    let status: Int32
    let stdout: String
    let stderr: String
    var lines: [String] { self.stdout.split(separator: "\n").map(String.init) }
}

/// Runs `sluice` with `arguments` against `daemon` (when given) and waits for it.
func sluice(
    _ arguments: [String],
    daemon: Daemon? = nil,
    stdin: String? = nil,
    limit: Duration = .seconds(15)
) async throws -> Outcome {
    let environment = daemon.map { ["SLUICE_SERVER": $0.server] } ?? [:]
    let running = try Running(try CLI.sluice(), arguments, stdin: stdin, environment: environment)
    let status = try await running.wait(limit)
    return Outcome(status: status, stdout: running.stdout.text, stderr: running.stderr.text)
}

/// Starts `sluice` in the background against `daemon`.
func startSluice(_ arguments: [String], daemon: Daemon) throws -> Running {
    try Running(try CLI.sluice(), arguments, environment: ["SLUICE_SERVER": daemon.server])
}

/// Publishes `probe` to `subject` until `subscriber` has printed something: then it is surely subscribed.
func waitForSubscriber(_ subscriber: Running, subject: String, daemon: Daemon, probe: String = "ready") async throws {
    try await eventually(.seconds(10), "the subscriber to receive a probe") {
        if !subscriber.stdout.text.isEmpty { return true }
        _ = try await sluice(["pub", subject, probe], daemon: daemon)
        return !subscriber.stdout.text.isEmpty
    }
}
