/// The command line, parsed: which subcommand, its arguments and options.
///
/// Options may come before or after the subcommand; `--name value` and `--name=value` both work. Each option
/// is accepted only by the subcommands it means something to, so a typo is a usage error (exit 2), never a
/// silently ignored flag.
struct Invocation: Sendable {
    /// The subcommands, in the order `--help` lists them.
    enum Command: String, CaseIterable, Sendable {
        case pub, sub, push, consume, set, get, watch, request, reply, stats, bench
    }

    var command: Command?
    var arguments: [String] = []
    var help = false
    var server = "127.0.0.1:7420"
    var token: String?
    var timeout: Duration = .seconds(5)
    var count: Int?
    var json = false
    var headers: [(String, String)] = []
    var credit = 16
    var bench = BenchOptions()

    /// `bench`'s knobs.
    struct BenchOptions: Sendable {
        var subject = "bench"
        var publishers = 1
        var subscribers = 1
        var size = 128
        var messages = 100_000
        var duration: Duration = .seconds(60)
    }

    /// A command line that makes no sense; printed as one line, exit status 2.
    struct UsageError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Which options each subcommand takes (besides --server, --token, --timeout and --help, which all take).
    static let allowed: [Command: Set<String>] = [
        .pub: ["-H"], .push: ["-H"], .request: ["-H"],
        .sub: ["--count", "--json"], .consume: ["--count", "--json", "--credit"], .watch: ["--count", "--json"],
        .reply: ["--count", "--json"], .stats: ["--json"], .get: ["--json"], .set: ["-H"],
        .bench: ["--pub", "--sub", "--size", "--msgs", "--duration", "--subject"],
    ]

    /// Positional arguments per subcommand: required ones, then optional ones.
    static let operands: [Command: (required: [String], optional: [String])] = [
        .pub: (["SUBJECT"], ["MESSAGE"]), .sub: (["PATTERN"], []), .push: (["QUEUE"], ["MESSAGE"]),
        .consume: (["QUEUE"], []), .set: (["KEY", "VALUE"], []), .get: (["KEY"], []), .watch: (["KEY"], []),
        .request: (["SUBJECT", "MESSAGE"], []), .reply: (["SUBJECT"], ["RESPONSE"]), .stats: ([], []),
        .bench: ([], []),
    ]

    static func parse(_ arguments: [String], environment: [String: String]) throws(UsageError) -> Invocation {
        var invocation = Invocation()
        if let server = environment["SLUICE_SERVER"], !server.isEmpty { invocation.server = server }
        if let token = environment["SLUICE_TOKEN"], !token.isEmpty { invocation.token = token }
        var seen: [String] = []
        var index = 0
        func value(for name: String, inline: String?) throws(UsageError) -> String {
            if let inline { return inline }
            index += 1
            guard index < arguments.count else { throw UsageError("\(name) needs a value") }
            return arguments[index]
        }
        while index < arguments.count {
            let argument = arguments[index]
            defer { index += 1 }
            if argument == "--" {
                invocation.arguments += arguments[(index + 1)...]
                index = arguments.count
                break
            }
            guard argument.hasPrefix("-"), argument != "-" else {
                if invocation.command == nil {
                    guard let command = Command(rawValue: argument) else {
                        throw UsageError("unknown command '\(argument)' (commands: \(Self.commandList))")
                    }
                    invocation.command = command
                } else {
                    invocation.arguments.append(argument)
                }
                continue
            }
            var name = argument
            var inline: String?
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                inline = String(argument[argument.index(after: equals)...])
            } else if argument.hasPrefix("-H"), argument.count > 2 {
                name = "-H"
                inline = String(argument.dropFirst(2))
            }
            switch name {
            case "--help", "-h": invocation.help = true
            case "--server", "-s": invocation.server = try value(for: name, inline: inline)
            case "--token": invocation.token = try value(for: name, inline: inline)
            case "--timeout": invocation.timeout = try parseDuration(try value(for: name, inline: inline), name)
            case "--json": invocation.json = true
            case "--count": invocation.count = try parseCount(try value(for: name, inline: inline), name, minimum: 1)
            case "--credit": invocation.credit = try parseCount(try value(for: name, inline: inline), name, minimum: 1)
            case "-H", "--header":
                let pair = try value(for: name, inline: inline)
                guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                    throw UsageError("-H needs key=value, got '\(pair)'")
                }
                invocation.headers.append((String(pair[..<equals]), String(pair[pair.index(after: equals)...])))
                name = "-H"
            case "--pub": invocation.bench.publishers = try parseCount(try value(for: name, inline: inline), name)
            case "--sub": invocation.bench.subscribers = try parseCount(try value(for: name, inline: inline), name)
            case "--size": invocation.bench.size = try parseCount(try value(for: name, inline: inline), name)
            case "--msgs":
                invocation.bench.messages = try parseCount(try value(for: name, inline: inline), name, minimum: 1)
            case "--subject": invocation.bench.subject = try value(for: name, inline: inline)
            case "--duration":
                invocation.bench.duration = try parseDuration(try value(for: name, inline: inline), name)
            default:
                throw UsageError("unknown option \(argument)")
            }
            seen.append(name)
        }
        if invocation.help { return invocation }
        guard let command = invocation.command else {
            throw UsageError("no command given (commands: \(Self.commandList))")
        }
        let common: Set<String> = ["--help", "-h", "--server", "-s", "--token", "--timeout"]
        for name in seen where !common.contains(name) && !(Self.allowed[command]?.contains(name) ?? false) {
            throw UsageError("\(command.rawValue) does not take \(name)")
        }
        let (required, optional) = Self.operands[command] ?? ([], [])
        if invocation.arguments.count < required.count {
            let missing = required[invocation.arguments.count...].joined(separator: " ")
            throw UsageError("\(command.rawValue) needs \(missing)")
        }
        if invocation.arguments.count > required.count + optional.count {
            throw UsageError("\(command.rawValue): unexpected argument '\(invocation.arguments.last!)'")
        }
        if command == .bench && invocation.bench.publishers == 0 && invocation.bench.subscribers == 0 {
            throw UsageError("bench needs at least one publisher or subscriber")
        }
        return invocation
    }

    static var commandList: String { Command.allCases.map(\.rawValue).joined(separator: ", ") }
}

/// `5s`, `250ms`, `2m`, `1.5s`, or a plain number of seconds.
func parseDuration(_ text: String, _ name: String) throws(Invocation.UsageError) -> Duration {
    var number = Substring(text)
    var scale = 1_000.0  // milliseconds per unit
    if text.hasSuffix("ms") {
        number = number.dropLast(2)
        scale = 1
    } else if text.hasSuffix("s") {
        number = number.dropLast()
    } else if text.hasSuffix("m") {
        number = number.dropLast()
        scale = 60_000
    }
    guard let value = Double(number), value >= 0, value.isFinite, value * scale < 1e12 else {
        throw .init("\(name) needs a duration like 5s, 250ms or 2m, got '\(text)'")
    }
    return .milliseconds(Int64(value * scale))
}

/// A whole number, at least `minimum`.
func parseCount(_ text: String, _ name: String, minimum: Int = 0) throws(Invocation.UsageError) -> Int {
    guard let value = Int(text), value >= minimum else {
        throw .init("\(name) needs a whole number of at least \(minimum), got '\(text)'")
    }
    return value
}
