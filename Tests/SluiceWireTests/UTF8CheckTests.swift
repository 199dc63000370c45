import Testing

@testable import SluiceWire

/// The decoder validates strings itself (the standard library's validating initializer is slow here); these tests
/// hold it to the standard library's answer.
@Suite("UTF-8 validation")
struct UTF8CheckTests {
    private func firstInvalid(_ bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBytes { UTF8Check.firstInvalidIndex($0) }
    }

    @Test(
        "edge cases are refused at the first byte of the bad sequence",
        arguments: [
            ([], nil),
            (Array("plain ascii, long enough for the 8-byte path".utf8), nil),
            ([0x00, 0x7F], nil),
            ([0xC2, 0x80], nil),  // U+0080, the smallest 2-byte form
            ([0xDF, 0xBF], nil),
            ([0xE0, 0xA0, 0x80], nil),  // U+0800
            ([0xED, 0x9F, 0xBF], nil),  // U+D7FF, just below the surrogates
            ([0xEE, 0x80, 0x80], nil),  // U+E000, just above
            ([0xF0, 0x90, 0x80, 0x80], nil),  // U+10000
            ([0xF4, 0x8F, 0xBF, 0xBF], nil),  // U+10FFFF, the largest
            ([0x61, 0x80], 1),  // a lone continuation byte
            ([0xC0, 0x80], 0),  // overlong NUL
            ([0xC1, 0xBF], 0),  // overlong
            ([0xE0, 0x9F, 0xBF], 0),  // overlong 3-byte
            ([0xED, 0xA0, 0x80], 0),  // U+D800, a surrogate
            ([0xF0, 0x8F, 0xBF, 0xBF], 0),  // overlong 4-byte
            ([0xF4, 0x90, 0x80, 0x80], 0),  // above U+10FFFF
            ([0xF5, 0x80, 0x80, 0x80], 0),
            ([0xFF], 0),
            ([0x61, 0x62, 0xE2, 0x82], 2),  // truncated at the end
            ([0xE2, 0x28, 0xA1], 0),  // bad second byte
            ([0xE2, 0x82, 0x28], 0),  // bad third byte
            (Array("12345678".utf8) + [0xF0, 0x9F, 0x98], 8),  // after the 8-byte path
        ] as [([UInt8], Int?)]
    )
    func edgeCases(bytes: [UInt8], expected: Int?) {
        #expect(firstInvalid(bytes) == expected)
        #expect((expected == nil) == (String(validating: bytes, as: UTF8.self) != nil))
    }

    @Test("random bytes get the standard library's verdict")
    func agreesWithStandardLibrary() {
        var random = SplitMix64(seed: 0x7F8)
        // Mostly high bytes, so multi-byte sequences and their faults are common.
        let pool: [UInt8] = [
            0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF4, 0xF5,
            0xFF,
        ]
        for _ in 0..<50_000 {
            let bytes = (0..<Int.random(in: 0...12, using: &random)).map { _ in
                pool.randomElement(using: &random)!
            }
            let ours = firstInvalid(bytes) == nil
            let standard = String(validating: bytes, as: UTF8.self) != nil
            #expect(ours == standard, "\(bytes)")
            if ours != standard { return }
        }
    }
}
