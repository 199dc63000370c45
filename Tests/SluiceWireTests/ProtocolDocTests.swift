import FoundationEssentials
import SluiceWire
import Testing

/// `docs/PROTOCOL.md` against the fixture file and the code: the bytes shown, the opcode table and the error table
/// must be exactly what the codec uses.
@Suite("docs/PROTOCOL.md")
struct ProtocolDocTests {
    static let document: String = {
        let path = WireVectors.repositoryRoot + "/docs/PROTOCOL.md"
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else { fatalError("cannot read \(path)") }
        return String(decoding: data, as: UTF8.self)
    }()

    static var lines: [Substring] { document.split(separator: "\n", omittingEmptySubsequences: false) }

    /// Every ```text block that starts with `vector: NAME`, as (name, the hex bytes of its lines).
    static func vectorBlocks() -> [(name: String, hex: String)] {
        var blocks: [(name: String, hex: String)] = []
        var current: (name: String, hex: String)?
        for line in lines {
            if line.hasPrefix("vector: ") {
                current = (String(line.dropFirst("vector: ".count)), "")
            } else if line.hasPrefix("```") {
                if let block = current { blocks.append(block) }
                current = nil
            } else if current != nil {
                // The hex column ends at the first double space; every token in it is one byte.
                let column = line.components(separatedBy: "  ").first ?? ""
                for token in column.split(separator: " ") {
                    guard token.count == 2, token.allSatisfy(\.isHexDigit) else {
                        Issue.record("not a hex byte in \(current!.name): \(line)")
                        continue
                    }
                    current!.hex += token.lowercased()
                }
            }
        }
        return blocks
    }

    /// Rows of the markdown table whose header row starts with `firstColumn`, split into trimmed cells.
    static func tableRows(firstColumn: String) -> [[String]] {
        var rows: [[String]] = []
        var inside = false
        for line in lines {
            let cells = line.split(separator: "|").map { cell in
                String(cell.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
            }
            if line.hasPrefix("| \(firstColumn) |") {
                inside = true
            } else if inside && line.hasPrefix("|") {
                if !line.hasPrefix("|---") { rows.append(cells) }
            } else {
                inside = false
            }
        }
        return rows
    }

    @Test("every byte-by-byte block shows exactly the bytes of its vector, and every frame vector has one")
    func blocksMatchVectors() {
        let vectors = WireVectors.shared
        let frames = Dictionary(uniqueKeysWithValues: vectors.frames.map { ($0.name, $0.hex) })
        let errors = Dictionary(uniqueKeysWithValues: vectors.errors.map { ($0.name, $0.hex) })
        let blocks = Self.vectorBlocks()
        for block in blocks {
            guard let hex = frames[block.name] ?? errors[block.name] else {
                Issue.record("PROTOCOL.md shows a vector the fixture file does not have: \(block.name)")
                continue
            }
            #expect(block.hex == hex, "\(block.name)")
        }
        let shown = Set(blocks.map(\.name))
        for vector in vectors.frames {
            #expect(shown.contains(vector.name), "PROTOCOL.md does not show \(vector.name)")
        }
    }

    @Test("the error table lists every code with its number, name and whether the connection closes")
    func errorTable() {
        let rows = Self.tableRows(firstColumn: "code")
        let documented = rows.map { "\($0[0]) \($0[1]) \($0[2])" }
        let expected = ErrorCode.allKnown.map {
            "\($0.rawValue) `\($0.name ?? "")` \($0.closesConnection ? "closes" : "stays open")"
        }
        #expect(documented == expected)
    }

    @Test("the opcode table lists every opcode with its name and sender")
    func opcodeTable() {
        let rows = Self.tableRows(firstColumn: "opcode")
        let documented = rows.map { "\($0[0]) \($0[1]) \($0[2])" }
        let expected = Opcode.allKnown.map { opcode -> String in
            let hex = String(opcode.rawValue, radix: 16)
            let sender =
                switch opcode.sender {
                case .client: "client"
                case .server: "server"
                case .either: "either"
                case nil: "?"
                }
            return "0x\(hex.count == 1 ? "0" : "")\(hex) \(opcode.name ?? "") \(sender)"
        }
        #expect(documented == expected)
    }
}
