/// What a name is used for, which decides the grammar it must follow and the error code if it does not.
public enum NameKind: Hashable, Sendable {
    /// A subject published to (PUB, REQUEST): no wildcards. Errors are ``ErrorCode/badSubject``.
    case subject
    /// A subscription pattern (SUB): tokens may be `*`, and the last may be `>`. Errors are ``ErrorCode/badSubject``.
    case pattern
    /// A work-queue name (PUSH, CONSUME). Errors are ``ErrorCode/badName``.
    case queue
    /// A key name (SET, GET, WATCH). Errors are ``ErrorCode/badName``.
    case key
    /// A queue-group name (SUB). Errors are ``ErrorCode/badName``.
    case queueGroup

    /// The code an ERROR carries when a name of this kind is refused.
    public var errorCode: ErrorCode {
        switch self {
        case .subject, .pattern: .badSubject
        case .queue, .key, .queueGroup: .badName
        }
    }
}

/// A name that breaks the grammar. The request fails with ``code``; the connection stays open.
public struct NameError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, with the UTF-8 byte offset of the fault where there is one.
    public enum Reason: Hashable, Sendable {
        /// The name is empty.
        case empty
        /// The name is longer than ``Subject/maxLength`` UTF-8 bytes.
        case tooLong(byteCount: Int)
        /// Two dots in a row, or a dot at the start or end: the token at `offset` is empty.
        case emptyToken(offset: Int)
        /// A space or an ASCII control character at `offset`.
        case invalidByte(offset: Int)
        /// `*` or `>` at `offset` where no wildcard may be: outside a pattern, inside a longer token, or `>` before
        /// the last token.
        case misplacedWildcard(offset: Int)
    }

    /// The kind of name that was checked.
    public let kind: NameKind
    /// What is wrong.
    public let reason: Reason

    /// Creates an error.
    public init(kind: NameKind, reason: Reason) {
        self.kind = kind
        self.reason = reason
    }

    /// ``ErrorCode/badSubject`` for subjects and patterns, ``ErrorCode/badName`` for other names.
    public var code: ErrorCode { self.kind.errorCode }

    /// `subject has an empty token at byte 7`.
    public var description: String {
        switch self.reason {
        case .empty: "\(self.kind) is empty"
        case .tooLong(let count): "\(self.kind) is \(count) bytes long, over \(Subject.maxLength)"
        case .emptyToken(let offset): "\(self.kind) has an empty token at byte \(offset)"
        case .invalidByte(let offset): "\(self.kind) has a space or control character at byte \(offset)"
        case .misplacedWildcard(let offset): "\(self.kind) has a misplaced wildcard at byte \(offset)"
        }
    }
}

/// The grammar of subjects and other names, and pattern matching.
///
/// A name is 1 to 255 UTF-8 bytes of dot-separated tokens (`orders.eu.created`). A token is one or more
/// characters other than `.`, space, ASCII control characters (0x00–0x1F, 0x7F), `*` and `>`. In a subscription
/// pattern a token may instead be exactly `*` (any one token), and the last token may be exactly `>` (one or more
/// tokens). Queue, key and queue-group names follow the subject grammar. Matching is byte-wise and case-sensitive.
///
/// The decoder does not apply this grammar: a bad name is a request error, not a broken stream.
///
/// ## Examples
///
/// ```swift
/// try Subject.validate("orders.*.created", as: .pattern)          // fine
/// try Subject.validate("orders..created", as: .subject)          // NameError: empty token at byte 7
/// Subject.matches(pattern: "orders.>", subject: "orders.eu.new")  // true
/// Subject.matches(pattern: "orders.>", subject: "orders")         // false: `>` needs at least one token
/// ```
public enum Subject {
    /// The longest name, in UTF-8 bytes.
    public static let maxLength = 255

    private static let dot = UInt8(ascii: ".")
    private static let star = UInt8(ascii: "*")
    private static let greater = UInt8(ascii: ">")

    /// Checks `name` against the grammar for `kind`.
    ///
    /// ## Errors
    ///
    /// ``NameError`` with the first fault found, scanning from the start.
    public static func validate(_ name: String, as kind: NameKind) throws(NameError) {
        var name = name
        if let reason = name.withUTF8({ self.fault(in: $0, allowingWildcards: kind == .pattern) }) {
            throw NameError(kind: kind, reason: reason)
        }
    }

    /// The first fault in `bytes`, or nil if they are a valid name.
    private static func fault(in bytes: UnsafeBufferPointer<UInt8>, allowingWildcards: Bool) -> NameError.Reason? {
        guard !bytes.isEmpty else { return .empty }
        guard bytes.count <= self.maxLength else { return .tooLong(byteCount: bytes.count) }
        var tokenStart = 0
        for index in 0...bytes.count {
            guard index < bytes.count && bytes[index] != self.dot else {
                // The end of a token: it must not be empty.
                if index == tokenStart { return .emptyToken(offset: tokenStart) }
                tokenStart = index + 1
                continue
            }
            let byte = bytes[index]
            if byte <= 0x20 || byte == 0x7F { return .invalidByte(offset: index) }
            if byte == self.star || byte == self.greater {
                let isLast = index + 1 == bytes.count
                let isWholeToken = index == tokenStart && (isLast || bytes[index + 1] == self.dot)
                guard allowingWildcards && isWholeToken && (byte == self.star || isLast) else {
                    return .misplacedWildcard(offset: index)
                }
            }
        }
        return nil
    }

    /// Whether `subject` matches the subscription `pattern`: token by token, `*` matching any one token and a final
    /// `>` any one or more. Both are assumed valid (``validate(_:as:)``); other input gets an answer, not a
    /// meaningful one.
    public static func matches(pattern: String, subject: String) -> Bool {
        var pattern = pattern
        var subject = subject
        return pattern.withUTF8 { pattern in subject.withUTF8 { subject in self.matches(pattern, subject) } }
    }

    private static func matches(_ pattern: UnsafeBufferPointer<UInt8>, _ subject: UnsafeBufferPointer<UInt8>) -> Bool {
        var patternIndex = 0
        var subjectIndex = 0
        while patternIndex < pattern.count {
            let patternEnd = pattern[patternIndex...].firstIndex(of: self.dot) ?? pattern.count
            let isSingle = patternEnd - patternIndex == 1
            if isSingle && pattern[patternIndex] == self.greater && patternEnd == pattern.count {
                return subjectIndex < subject.count
            }
            guard subjectIndex < subject.count else { return false }
            let subjectEnd = subject[subjectIndex...].firstIndex(of: self.dot) ?? subject.count
            if !(isSingle && pattern[patternIndex] == self.star) {
                guard pattern[patternIndex..<patternEnd].elementsEqual(subject[subjectIndex..<subjectEnd]) else {
                    return false
                }
            }
            patternIndex = patternEnd + 1
            subjectIndex = subjectEnd + 1
        }
        return subjectIndex >= subject.count
    }
}
