import Glibc

/// One `key=value` line per event on standard error, prefixed with the time and level.
///
/// ```text
/// ts=2026-11-21T20:52:47.123Z level=info event=conn.close id=7 peer=127.0.0.1:50912 reason=eof
/// ```
///
/// Values with spaces, quotes or `=` are quoted. Writes go straight to file descriptor 2 with `write(2)`, one
/// call per line, so lines from several threads never interleave.
public struct Log: Sendable {
    /// How much to log.
    public enum Level: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
        case debug = 0
        case info = 1
        case warn = 2
        case error = 3
        /// Nothing at all.
        case off = 4

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }

        public var description: String {
            switch self {
            case .debug: "debug"
            case .info: "info"
            case .warn: "warn"
            case .error: "error"
            case .off: "off"
            }
        }

        /// Parses `debug`, `info`, `warn`, `error` or `off`.
        public init?(name: String) {
            guard let level = Level.allCases.first(where: { $0.description == name }) else { return nil }
            self = level
        }
    }

    /// The least severe level written.
    public var level: Level
    /// Where lines go; 2 (standard error) unless a test redirects it.
    public var descriptor: Int32

    /// A log writing `level` and above to `descriptor`.
    public init(level: Level = .info, descriptor: Int32 = 2) {
        self.level = level
        self.descriptor = descriptor
    }

    /// Writes one line: `event` then the fields in order.
    public func callAsFunction(_ level: Level, _ event: String, _ fields: KeyValuePairs<String, any Sendable> = [:]) {
        guard level >= self.level, level != .off else { return }
        var line = "ts=\(Log.timestamp()) level=\(level) event=\(event)"
        for (key, value) in fields {
            line += " \(key)=\(Log.quoted(String(describing: value)))"
        }
        line += "\n"
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(self.descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                offset += written
            }
        }
    }

    static func quoted(_ value: String) -> String {
        guard value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline })
        else { return value }
        var escaped = "\""
        for character in value {
            switch character {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped + "\""
    }

    /// UTC, millisecond precision, ISO 8601.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
            + "T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
            + ".\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}
