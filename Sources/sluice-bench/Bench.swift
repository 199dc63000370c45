import Glibc

/// `sluice-bench`: Sluice's benchmarks. Nothing here runs under `swift test`; figures go to docs/BENCHMARKS.md
/// with the command that produced them, as ratios against a peer measured in the same run.
@main
struct Bench {
    static let usage = """
        usage: sluice-bench <benchmark> [options]

        benchmarks:
          channels [--count N] [--runs R] [--only NAME]
                                               SluiceChannels against the toolchain's AsyncStream in the same run
                                               (N values per workload, default 2000000; median of R runs, default 1)
          locks [--count N]                    the floor under cross-thread channels: a bounded ring between two
                                               threads under Mutex, a spinlock, and lock-free (default N 20000000)
          echo [--seconds S] [--roundtrips N] [--loops L] [--runs R]
                                               SluiceIO echo server against a plain epoll loop and against the same
                                               code on the global executor (default 5 s, 20000 round trips; L event
                                               loops, default 1, like the floor's one thread; medians of R
                                               interleaved runs, default 3)
          echo-server --port P [--variant loop|global|epoll] [--loops L]
                                               one echo server until killed (prints port=N; P may be 0)
          alloc-check [--count N]              steady-state send/receive with no waiting; run under valgrind to
                                               count allocations (see docs/BENCHMARKS.md)
        """ + "\n" + PeersCommand.usage

    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        guard let command = arguments.first else {
            fail(usage)
        }
        arguments.removeFirst()
        // Run off the main actor: an async `main` is main-actor isolated, and tasks created from it inherit that,
        // which would put every benchmark task on the main queue.
        let code = await Task.detached { () async -> Int32 in
            do {
                switch command {
                case "channels":
                    let options = try Options(arguments, defaults: ["count": "2000000", "runs": "1"])
                    try await ChannelBenchmarks(
                        count: options.int("count"),
                        only: options.string("only"),
                        runs: options.int("runs")
                    ).run()
                case "locks":
                    let options = try Options(arguments, defaults: ["count": "20000000"])
                    LockFloors(count: try options.int("count")).run()
                case "echo":
                    let options = try Options(
                        arguments,
                        defaults: ["seconds": "5", "roundtrips": "20000", "loops": "1", "runs": "3"]
                    )
                    try EchoBenchmark(
                        seconds: options.int("seconds"),
                        roundTrips: options.int("roundtrips"),
                        loops: options.int("loops"),
                        runs: options.int("runs")
                    ).run()
                case "echo-server":
                    let options = try Options(arguments, defaults: ["port": "7421", "variant": "loop", "loops": "1"])
                    guard let port = UInt16(exactly: try options.int("port", allowZero: true)) else {
                        throw Options.Failure(message: "--port needs a number from 0 to 65535")
                    }
                    try await EchoServer.run(
                        port: port,
                        variant: options.string("variant") ?? "loop",
                        loops: options.int("loops")
                    )
                case "alloc-check":
                    let options = try Options(arguments, defaults: ["count": "100000"])
                    try await AllocationCheck(count: options.int("count")).run()
                case "peers":
                    try PeersCommand(arguments).run()
                case "-h", "--help", "help":
                    print(usage)
                default:
                    fail("sluice-bench: unknown benchmark '\(command)'\n\n\(usage)")
                }
                return 0
            } catch let error as Options.Failure {
                fail("sluice-bench: \(error.message)\n\n\(usage)")
            } catch {
                print("sluice-bench: \(error)")
                return 1
            }
        }.value
        // Exit explicitly: benchmark executor threads never end on their own.
        exit(code)
    }

    static func fail(_ message: String) -> Never {
        var text = message + "\n"
        text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        exit(2)
    }
}

/// `--name value` options with defaults; anything unknown is a usage error.
struct Options {
    struct Failure: Error { let message: String }
    private var values: [String: String]

    init(_ arguments: [String], defaults: [String: String], optional: Set<String> = ["only"]) throws {
        self.values = defaults
        var index = 0
        while index < arguments.count {
            let flag = arguments[index]
            guard flag.hasPrefix("--"), index + 1 < arguments.count else {
                throw Failure(message: "expected --option value, got '\(flag)'")
            }
            let name = String(flag.dropFirst(2))
            guard defaults[name] != nil || optional.contains(name) else {
                throw Failure(message: "unknown option \(flag)")
            }
            self.values[name] = arguments[index + 1]
            index += 2
        }
    }

    func int(_ name: String, allowZero: Bool = false) throws -> Int {
        guard let text = self.values[name], let value = Int(text), value > 0 || (allowZero && value == 0) else {
            throw Failure(message: "--\(name) needs a positive whole number")
        }
        return value
    }

    func string(_ name: String) -> String? { self.values[name] }
}
