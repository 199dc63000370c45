/// `sluiced`'s command line: flags, each with a `SLUICE_*` environment variable, parsed into a ``Configuration``.
///
/// Precedence: a flag beats its variable, which beats the default. `--flag value` and `--flag=value` both work.
/// Durations take a unit (`50us`, `250ms`, `30s`, `2m`; `0` switches a timeout off); sizes take an optional
/// `KiB`/`MiB` suffix (also `k`/`m`).
public struct DaemonOptions: Sendable, Equatable {
    /// The address to listen on.
    public var host = "127.0.0.1"
    /// The port to listen on; 0 picks a free one (the log line `server.start` says which).
    public var port: UInt16 = 7420
    /// Log lines below this level are dropped.
    public var logLevel: Log.Level = .info
    /// Everything else.
    public var configuration = Configuration()

    /// The defaults.
    public init() {}

    /// What the command line asked for.
    public enum Parsed: Sendable, Equatable {
        /// Run with these options.
        case run(DaemonOptions)
        /// Print ``DaemonOptions/help`` and exit 0.
        case help
    }

    /// A flag or value that makes no sense: printed as one line, exit status 2.
    public struct UsageError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    struct Flag: Sendable {
        let name: String
        let placeholder: String
        let help: String
        let defaultValue: @Sendable (DaemonOptions) -> String
        let apply: @Sendable (inout DaemonOptions, String) throws -> Void

        func set(_ options: inout DaemonOptions, _ value: String) throws(UsageError) {
            do {
                try self.apply(&options, value)
            } catch let error as UsageError {
                throw error
            } catch {
                throw UsageError(description: "--\(self.name): \(error)")
            }
        }

        var variable: String {
            "SLUICE_" + String(self.name.uppercased().map { $0 == "-" ? "_" : $0 })
        }
    }

    static let flags: [Flag] = [
        Flag(
            name: "host",
            placeholder: "ADDRESS",
            help: "address to listen on (IPv4 or IPv6)",
            defaultValue: { $0.host }
        ) {
            $0.host = $1
        },
        Flag(
            name: "port",
            placeholder: "PORT",
            help: "port to listen on; 0 picks a free one",
            defaultValue: { "\($0.port)" }
        ) {
            $0.port = try parseInteger($1, flag: "port", in: 0...65_535).narrowed()
        },
        Flag(
            name: "max-connections",
            placeholder: "N",
            help: "connections served at once; more get TOO_MANY_CONNECTIONS",
            defaultValue: { "\($0.configuration.maxConnections)" }
        ) { $0.configuration.maxConnections = try parseInteger($1, flag: "max-connections", in: 1...1_000_000) },
        Flag(
            name: "max-frame-size",
            placeholder: "BYTES",
            help: "largest frame accepted; bigger ones get FRAME_TOO_LARGE",
            defaultValue: { size($0.configuration.maxFrameSize) }
        ) { $0.configuration.maxFrameSize = try parseSize($1, flag: "max-frame-size", in: 64...(64 << 20)) },
        Flag(
            name: "max-subscriptions",
            placeholder: "N",
            help: "SUB, CONSUME and WATCH per connection",
            defaultValue: { "\($0.configuration.maxSubscriptions)" }
        ) { $0.configuration.maxSubscriptions = try parseInteger($1, flag: "max-subscriptions", in: 1...1_000_000) },
        Flag(
            name: "max-pending-bytes",
            placeholder: "BYTES",
            help: "outgoing bytes queued per connection before SLOW_CONSUMER",
            defaultValue: { size($0.configuration.maxPendingBytes) }
        ) { $0.configuration.maxPendingBytes = try parseSize($1, flag: "max-pending-bytes", in: 4_096...(1 << 32)) },
        Flag(
            name: "max-keys",
            placeholder: "N",
            help: "distinct keys kept; a SET or WATCH of a new key past it gets LIMIT_REACHED",
            defaultValue: { "\($0.configuration.maxKeys)" }
        ) { $0.configuration.maxKeys = try parseInteger($1, flag: "max-keys", in: 1...100_000_000) },
        Flag(
            name: "max-queues",
            placeholder: "N",
            help: "distinct work queues kept; a PUSH or CONSUME of a new queue past it gets LIMIT_REACHED",
            defaultValue: { "\($0.configuration.maxQueues)" }
        ) { $0.configuration.maxQueues = try parseInteger($1, flag: "max-queues", in: 1...1_000_000) },
        Flag(
            name: "subject-buffer",
            placeholder: "N",
            help: "messages buffered per subscribed pattern before LAGGED",
            defaultValue: { "\($0.configuration.subjectBuffer)" }
        ) { $0.configuration.subjectBuffer = try parseInteger($1, flag: "subject-buffer", in: 1...1_000_000) },
        Flag(
            name: "queue-capacity",
            placeholder: "N",
            help: "messages per work queue before PUSH waits (or QUEUE_FULL)",
            defaultValue: { "\($0.configuration.queueCapacity)" }
        ) { $0.configuration.queueCapacity = try parseInteger($1, flag: "queue-capacity", in: 1...10_000_000) },
        Flag(
            name: "max-credit",
            placeholder: "N",
            help: "unacknowledged messages one consumer may hold",
            defaultValue: { "\($0.configuration.maxCredit)" }
        ) { $0.configuration.maxCredit = try parseInteger($1, flag: "max-credit", in: 1...1_000_000) },
        Flag(
            name: "max-inflight-requests",
            placeholder: "N",
            help: "REQUESTs waiting per connection",
            defaultValue: { "\($0.configuration.maxInflightRequests)" }
        ) {
            $0.configuration.maxInflightRequests = try parseInteger(
                $1,
                flag: "max-inflight-requests",
                in: 1...1_000_000
            )
        },
        Flag(
            name: "idle-timeout",
            placeholder: "DURATION",
            help: "close connections silent this long (PING at half); 0 = never",
            defaultValue: { duration($0.configuration.idleTimeout) }
        ) { $0.configuration.idleTimeout = try parseDuration($1, flag: "idle-timeout") },
        Flag(
            name: "publish-stall",
            placeholder: "DURATION",
            help: "longest a publisher waits for a subscriber 3/4 of the subject buffer behind; 0 = never (it lags)",
            defaultValue: { duration($0.configuration.publishStall) }
        ) { $0.configuration.publishStall = try parseDuration($1, flag: "publish-stall") },
        Flag(
            name: "hello-timeout",
            placeholder: "DURATION",
            help: "time a new connection has to send HELLO; 0 = no limit",
            defaultValue: { duration($0.configuration.helloTimeout) }
        ) { $0.configuration.helloTimeout = try parseDuration($1, flag: "hello-timeout") },
        Flag(
            name: "request-timeout",
            placeholder: "DURATION",
            help: "timeout of a REQUEST that sets none",
            defaultValue: { duration($0.configuration.requestTimeout) }
        ) { $0.configuration.requestTimeout = try parseDuration($1, flag: "request-timeout", allowZero: false) },
        Flag(
            name: "shutdown-grace",
            placeholder: "DURATION",
            help: "time writers get to flush on shutdown",
            defaultValue: { duration($0.configuration.shutdownGrace) }
        ) { $0.configuration.shutdownGrace = try parseDuration($1, flag: "shutdown-grace") },
        Flag(
            name: "token",
            placeholder: "SECRET",
            help: "require this token in HELLO; empty = none",
            defaultValue: { $0.configuration.token ?? "" }
        ) { $0.configuration.token = $1.isEmpty ? nil : $1 },
        Flag(
            name: "loops",
            placeholder: "N",
            help: "event-loop threads",
            defaultValue: { "\($0.configuration.loops)" }
        ) { $0.configuration.loops = try parseInteger($1, flag: "loops", in: 1...256) },
        Flag(
            name: "spin",
            placeholder: "DURATION",
            help: "how long an idle event loop polls before it sleeps (lower latency, more CPU); 0 = never",
            defaultValue: { duration($0.configuration.spin) }
        ) {
            let spin = try parseDuration($1, flag: "spin")
            guard spin <= .milliseconds(10) else {
                throw UsageError(description: "--spin: '\($1)' is longer than 10ms")
            }
            $0.configuration.spin = spin
        },
        Flag(
            name: "log-level",
            placeholder: "LEVEL",
            help: "debug, info, warn, error or off",
            defaultValue: { "\($0.logLevel)" }
        ) {
            guard let level = Log.Level(name: $1) else {
                throw UsageError(description: "--log-level: '\($1)' is not one of debug, info, warn, error, off")
            }
            $0.logLevel = level
        },
    ]

    /// Parses `arguments` (without the program name) over `environment`.
    public static func parse(_ arguments: [String], environment: [String: String]) throws(UsageError) -> Parsed {
        var options = DaemonOptions()
        for flag in self.flags {
            if let value = environment[flag.variable] {
                do throws(UsageError) {
                    try flag.set(&options, value)
                } catch {
                    throw UsageError(description: "\(flag.variable): \(error.description)")
                }
            }
        }
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--help" || argument == "-h" { return .help }
            guard argument.hasPrefix("--") else {
                throw UsageError(description: "unexpected argument '\(argument)' (see --help)")
            }
            var name = String(argument.dropFirst(2))
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard let flag = self.flags.first(where: { $0.name == name }) else {
                throw UsageError(description: "unknown flag --\(name) (see --help)")
            }
            if value == nil {
                guard index < arguments.count else { throw UsageError(description: "--\(name) needs a value") }
                value = arguments[index]
                index += 1
            }
            try flag.set(&options, value!)
        }
        return .run(options)
    }

    /// The `--help` text: every flag with its variable and default.
    public static var help: String {
        let defaults = DaemonOptions()
        var text = """
            sluiced: the Sluice message broker.

            Usage: sluiced [--flag value ...]

            Every flag can also be set with its SLUICE_* environment variable; a flag wins over its variable.
            Durations take a unit (50us, 250ms, 30s, 2m); sizes take an optional KiB or MiB suffix.
            SIGINT or SIGTERM shuts down gracefully (GOODBYE to every client, flush, exit 0); a second one exits at once.

            Flags:

            """
        for flag in self.flags {
            let left = "  --\(flag.name) \(flag.placeholder)"
            let padded = left + String(repeating: " ", count: max(1, 34 - left.count))
            text += "\(padded)\(flag.help)\n"
            text +=
                String(repeating: " ", count: 34)
                + "default: \(flag.defaultValue(defaults).isEmpty ? "none" : flag.defaultValue(defaults)), env: \(flag.variable)\n"
        }
        text += "  --help                          this text\n"
        return text
    }
}

private func parseInteger(_ text: String, flag: String, in range: ClosedRange<Int>) throws(DaemonOptions.UsageError)
    -> Int
{
    guard let value = Int(text), range.contains(value) else {
        throw DaemonOptions.UsageError(
            description: "--\(flag): '\(text)' is not a whole number from \(range.lowerBound) to \(range.upperBound)"
        )
    }
    return value
}

private func parseSize(_ text: String, flag: String, in range: ClosedRange<Int>) throws(DaemonOptions.UsageError) -> Int
{
    let lower = text.lowercased()
    var digits = Substring(lower)
    var multiplier = 1
    for (suffix, factor) in [
        ("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("b", 1),
    ]
    where digits.hasSuffix(suffix) {
        digits = digits.dropLast(suffix.count)
        multiplier = factor
        break
    }
    guard let base = Int(digits), base >= 0, case let (value, false) = base.multipliedReportingOverflow(by: multiplier),
        range.contains(value)
    else {
        throw DaemonOptions.UsageError(
            description:
                "--\(flag): '\(text)' is not a size from \(size(range.lowerBound)) to \(size(range.upperBound))"
        )
    }
    return value
}

private func parseDuration(_ text: String, flag: String, allowZero: Bool = true) throws(DaemonOptions.UsageError)
    -> Duration
{
    let lower = text.lowercased()
    var result: Duration?
    if lower == "0" {
        result = .zero
    } else {
        for (suffix, unit) in [
            ("us", Duration.microseconds(1)), ("ms", .milliseconds(1)), ("s", .seconds(1)), ("m", .seconds(60)),
            ("h", .seconds(3_600)),
        ]
        where lower.hasSuffix(suffix) {
            if let value = Int(lower.dropLast(suffix.count)), value >= 0, value <= 1_000_000_000 {
                result = unit * value
            }
            break
        }
    }
    guard let result, allowZero || result > .zero else {
        throw DaemonOptions.UsageError(
            description:
                "--\(flag): '\(text)' is not a duration like 50us, 250ms, 30s or 2m\(allowZero ? " (or 0)" : "")"
        )
    }
    return result
}

private func size(_ bytes: Int) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20)MiB" }
    if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10)KiB" }
    return "\(bytes)"
}

private func duration(_ value: Duration) -> String {
    let (seconds, attoseconds) = value.components
    if seconds < 1_000 && attoseconds % 1_000_000_000_000_000 != 0 {
        return "\(seconds * 1_000_000 + attoseconds / 1_000_000_000_000)us"  // not whole milliseconds
    }
    let millis = value.clampedMilliseconds
    if millis == 0 { return "0" }
    if millis % 60_000 == 0 { return "\(millis / 60_000)m" }
    if millis % 1_000 == 0 { return "\(millis / 1_000)s" }
    return "\(millis)ms"
}

extension Int {
    fileprivate func narrowed() -> UInt16 { UInt16(self) }
}
