/// The optional headers of a message: an ordered list of name–value pairs, both strings.
///
/// Order is kept and names may repeat, exactly as on the wire, so decoding and encoding give back the same bytes.
/// Most messages carry none; an empty `Headers` allocates nothing and costs two bytes on the wire (a zero count).
///
/// ## Examples
///
/// ```swift
/// let headers: Headers = ["content-type": "text/plain", "trace": "abc"]
/// headers["trace"]   // "abc"
/// headers.count      // 2
/// ```
public struct Headers: Hashable, Sendable {
    /// One header line.
    public struct Field: Hashable, Sendable {
        /// The header name (any UTF-8 string).
        public var name: String
        /// The header value (any UTF-8 string).
        public var value: String

        /// Creates a field.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The fields in wire order.
    public var fields: [Field]

    /// No headers.
    public init() { self.fields = [] }

    /// The given fields, in order.
    public init(_ fields: [Field]) { self.fields = fields }

    /// The value of the first field named `name`, or nil.
    public subscript(name: String) -> String? {
        self.fields.first { $0.name == name }?.value
    }

    /// Appends a field (names may repeat).
    public mutating func append(name: String, value: String) {
        self.fields.append(Field(name: name, value: value))
    }

    /// Whether there are no fields.
    public var isEmpty: Bool { self.fields.isEmpty }

    /// The number of fields.
    public var count: Int { self.fields.count }
}

extension Headers: ExpressibleByDictionaryLiteral {
    /// Fields in the order written.
    public init(dictionaryLiteral elements: (String, String)...) {
        self.fields = elements.map { Field(name: $0.0, value: $0.1) }
    }
}

extension Headers: CustomStringConvertible {
    /// `[content-type: text/plain, trace: abc]`.
    public var description: String {
        "[" + self.fields.map { "\($0.name): \($0.value)" }.joined(separator: ", ") + "]"
    }
}
