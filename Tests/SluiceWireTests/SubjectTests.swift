import Testing

@testable import SluiceWire

@Suite("Subject grammar")
struct SubjectTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let kind: NameKind
        let reason: NameError.Reason?
        var testDescription: String { "\(self.kind) \"\(self.name)\"" }
    }

    static let cases: [Case] = [
        // Valid
        Case(name: "orders", kind: .subject, reason: nil),
        Case(name: "orders.eu.created", kind: .subject, reason: nil),
        Case(name: "café.menü", kind: .subject, reason: nil),
        Case(name: "a-b_c:d", kind: .key, reason: nil),
        Case(name: "orders.*.created", kind: .pattern, reason: nil),
        Case(name: "orders.>", kind: .pattern, reason: nil),
        Case(name: "*", kind: .pattern, reason: nil),
        Case(name: ">", kind: .pattern, reason: nil),
        Case(name: "*.*.>", kind: .pattern, reason: nil),
        Case(name: String(repeating: "a", count: 255), kind: .queue, reason: nil),
        // Invalid
        Case(name: "", kind: .subject, reason: .empty),
        Case(name: String(repeating: "a", count: 256), kind: .subject, reason: .tooLong(byteCount: 256)),
        Case(name: "orders..created", kind: .subject, reason: .emptyToken(offset: 7)),
        Case(name: ".orders", kind: .queue, reason: .emptyToken(offset: 0)),
        Case(name: "orders.", kind: .key, reason: .emptyToken(offset: 7)),
        Case(name: "or ders", kind: .subject, reason: .invalidByte(offset: 2)),
        Case(name: "orders\t", kind: .pattern, reason: .invalidByte(offset: 6)),
        Case(name: "a\u{7F}", kind: .queueGroup, reason: .invalidByte(offset: 1)),
        Case(name: "orders.*", kind: .subject, reason: .misplacedWildcard(offset: 7)),
        Case(name: "orders.>", kind: .queue, reason: .misplacedWildcard(offset: 7)),
        Case(name: "jobs*", kind: .pattern, reason: .misplacedWildcard(offset: 4)),
        Case(name: "a.>.b", kind: .pattern, reason: .misplacedWildcard(offset: 2)),
        Case(name: "a.*b", kind: .pattern, reason: .misplacedWildcard(offset: 2)),
        Case(name: "a.>>", kind: .pattern, reason: .misplacedWildcard(offset: 2)),
    ]

    @Test("names are checked against the grammar of their kind", arguments: cases)
    func validate(_ testCase: Case) {
        do {
            try Subject.validate(testCase.name, as: testCase.kind)
            #expect(testCase.reason == nil, "accepted")
        } catch {
            #expect(error.reason == testCase.reason)
            #expect(error.kind == testCase.kind)
        }
    }

    @Test("subjects and patterns fail with BAD_SUBJECT, other names with BAD_NAME, and the connection stays open")
    func errorCodes() {
        #expect(NameError(kind: .subject, reason: .empty).code == .badSubject)
        #expect(NameError(kind: .pattern, reason: .empty).code == .badSubject)
        for kind in [NameKind.queue, .key, .queueGroup] {
            #expect(NameError(kind: kind, reason: .empty).code == .badName)
        }
        #expect(!ErrorCode.badSubject.closesConnection)
        #expect(!ErrorCode.badName.closesConnection)
    }

    @Test(
        "patterns match token by token, * one token, > one or more at the end",
        arguments: [
            ("orders.new", "orders.new", true),
            ("orders.new", "orders.old", false),
            ("orders.new", "orders", false),
            ("orders", "orders.new", false),
            ("orders.*", "orders.new", true),
            ("orders.*", "orders.new.eu", false),
            ("orders.*", "orders", false),
            ("*.new", "orders.new", true),
            ("orders.>", "orders.new", true),
            ("orders.>", "orders.new.eu.x", true),
            ("orders.>", "orders", false),
            (">", "anything.at.all", true),
            ("*.*.>", "a.b", false),
            ("*.*.>", "a.b.c", true),
            ("café.*", "café.menü", true),
            ("ab", "abc", false),
        ]
    )
    func matching(pattern: String, subject: String, matches: Bool) {
        #expect(Subject.matches(pattern: pattern, subject: subject) == matches)
    }
}

@Suite("Error codes and opcodes")
struct ErrorCodeTests {
    @Test("codes below 100 close the connection, codes from 100 keep it open, unknown codes included")
    func closesConnection() {
        for code in ErrorCode.allKnown {
            #expect(code.closesConnection == (code.rawValue < 100), "\(code)")
            #expect(code.name != nil)
        }
        #expect(ErrorCode(rawValue: 99).closesConnection)
        #expect(!ErrorCode(rawValue: 150).closesConnection)
        #expect(ErrorCode(rawValue: 300).description == "ERROR_300 (300)")
        #expect(ErrorCode.queueFull.description == "QUEUE_FULL (103)")
    }

    @Test("numbers and names are unique")
    func unique() {
        #expect(Set(ErrorCode.allKnown).count == ErrorCode.allKnown.count)
        #expect(Set(ErrorCode.allKnown.compactMap(\.name)).count == ErrorCode.allKnown.count)
        #expect(Set(Opcode.allKnown).count == Opcode.allKnown.count)
        #expect(Set(Opcode.allKnown.compactMap(\.name)).count == Opcode.allKnown.count)
        #expect(ErrorCode.allKnown == ErrorCode.allKnown.sorted { $0.rawValue < $1.rawValue })
    }

    @Test("every error code travels in an ERROR frame and comes back the same", arguments: ErrorCode.allKnown)
    func errorFrameCarriesCode(code: ErrorCode) throws {
        let frame = Frame.error(.init(requestID: 42, code: code, message: code.name ?? ""))
        var decoder = FrameDecoder()
        decoder.append(try encoded([frame]))
        #expect(try decoder.next() == frame)
    }

    @Test("each opcode says who may send it")
    func senders() {
        #expect(Opcode.hello.sender == .client)
        #expect(Opcode.msg.sender == .server)
        #expect(Opcode.ping.sender == .either)
        #expect(Opcode(rawValue: 0xFF).sender == nil)
        #expect(Opcode(rawValue: 0xFF).description == "UNKNOWN (0xff)")
        #expect(Opcode.pub.description == "PUB (0x10)")
        for opcode in Opcode.allKnown { #expect(opcode.sender != nil) }
    }
}
