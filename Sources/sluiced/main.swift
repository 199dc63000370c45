import Glibc
import SluiceBroker
import SluiceChannels
import SluiceIO

// sluiced: flags and environment → Configuration → Server.run(). See `sluiced --help`.

/// Writes `text` to standard error (C's `stderr` is a global `var` strict concurrency rejects).
func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

@main
struct Sluiced {
    static func main() {
        // Before any thread exists, so that every thread inherits the mask and signalfd sees the signals.
        Signals.block([SIGINT, SIGTERM, SIGHUP, SIGPIPE])

        var environment: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let pair = String(cString: pointer)
            if let equals = pair.firstIndex(of: "=") {
                environment[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
            entry += 1
        }
        let options: DaemonOptions
        do {
            switch try DaemonOptions.parse(Array(CommandLine.arguments.dropFirst()), environment: environment) {
            case .help:
                print(DaemonOptions.help, terminator: "")
                exit(0)
            case .run(let parsed):
                options = parsed
            }
        } catch {
            printError("sluiced: \(error.description)")
            exit(2)
        }
        // The main thread only waits: the server runs on its event loops, and `exit` ends the process.
        Task.detached { exit(await serve(options)) }
        while true { pause() }
    }

    static func serve(_ options: DaemonOptions) async -> Int32 {
        let log = Log(level: options.logLevel)
        let group: EventLoopGroup
        let listener: TCPListener
        do {
            group = try EventLoopGroup(
                count: options.configuration.loops,
                name: "sluiced-loop",
                spin: options.configuration.spin
            )
            let address = try SocketAddress(host: options.host, port: options.port)
            listener = try TCPListener(bind: address, on: group.loops[0])
        } catch {
            printError("sluiced: cannot listen on \(options.host):\(options.port): \(error)")
            return 1
        }
        let (stop, stopped) = Watch<Bool>.channel(false)
        let signals: Signals
        do {
            signals = try Signals([SIGINT, SIGTERM, SIGHUP], on: group.loops[0])
        } catch {
            printError("sluiced: cannot read signals: \(error)")
            return 1
        }
        let watcher = Task(executorPreference: group.loops[0]) {
            var count = 0
            do {
                for try await signal in signals {
                    if signal == SIGHUP {
                        log(.info, "signal.ignored", ["signal": "SIGHUP"])
                        continue
                    }
                    count += 1
                    if count == 1 {
                        log(.info, "signal", ["signal": signal == SIGINT ? "SIGINT" : "SIGTERM", "action": "shutdown"])
                        stop.send(true)
                    } else {
                        log(.warn, "signal", ["signal": signal == SIGINT ? "SIGINT" : "SIGTERM", "action": "exit_now"])
                        exit(1)
                    }
                }
            } catch is CancellationError {
                // The server has stopped.
            } catch {
                log(.error, "signal.failed", ["error": error])
            }
        }
        await Server.run(
            listener: listener,
            configuration: options.configuration,
            shutdown: stopped,
            loops: group,
            log: log
        )
        watcher.cancel()
        return 0
    }
}
