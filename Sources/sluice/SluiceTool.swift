import Glibc
import SluiceClient
import SluiceIO

// sluice: parse the command line, run one subcommand with SluiceClient, exit 0, 1 or 2. See `sluice --help`.

@main
struct SluiceTool {
    static func main() {
        // Before any thread exists, so that every thread inherits the mask and the signalfd sees the signals.
        // SIGPIPE too: a closed stdout or socket is then an EPIPE error, handled where it happens.
        Signals.block([SIGINT, SIGTERM, SIGPIPE])
        let invocation: Invocation
        do {
            invocation = try Invocation.parse(Array(CommandLine.arguments.dropFirst()), environment: environment())
        } catch {
            Output.error("sluice: \(error.description) (see sluice --help)")
            exit(2)
        }
        if invocation.help {
            Output.write(invocation.command.map { Help.text(for: $0) } ?? Help.tool + "\n", to: 1)
            exit(0)
        }
        // The main thread only waits: the work runs on an event loop, and `exit` ends the process.
        Task.detached { exit(await self.run(invocation)) }
        while true { pause() }
    }

    static func run(_ invocation: Invocation) async -> Int32 {
        let loop: EventLoop
        let signals: Signals
        do {
            loop = try EventLoop(name: "sluice")
            signals = try Signals([SIGINT, SIGTERM], on: loop)
        } catch {
            Output.error("sluice: cannot start: \(error)")
            return 1
        }
        let work = Task(executorPreference: loop) { try await Commands(invocation: invocation, loop: loop).run() }
        let interrupted = Task(executorPreference: loop) {
            for try await _ in signals {
                switch invocation.command {
                case .sub, .consume, .watch, .reply:
                    work.cancel()  // ends the loop; the client says GOODBYE; unacknowledged messages go back
                default:
                    exit(130)
                }
            }
        }
        defer { interrupted.cancel() }
        switch await work.result {
        case .success(let status):
            return status
        case .failure(let error as SluiceError):
            Output.error("sluice: \(describe(error, invocation))")
            return 1
        case .failure(is CancellationError):
            return 0
        case .failure(let error):
            Output.error("sluice: \(error)")
            return 1
        }
    }

    /// One line naming what failed: `request: NO_RESPONDERS (104): nobody serves time.now`.
    static func describe(_ error: SluiceError, _ invocation: Invocation) -> String {
        switch error {
        case .cannotConnect, .invalidArgument: error.description
        default: "\(invocation.command?.rawValue ?? "sluice"): \(error)"
        }
    }

    /// The process environment.
    static func environment() -> [String: String] {
        var values: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let pair = String(cString: pointer)
            if let equals = pair.firstIndex(of: "=") {
                values[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
            entry += 1
        }
        return values
    }
}
