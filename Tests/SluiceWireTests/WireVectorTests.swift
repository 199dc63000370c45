import Testing

@testable import SluiceWire

/// Every vector of `Tests/Fixtures/wire-vectors.json`, at every chunk size, both ways, with the decoder's state
/// checked after each piece (as nats-server's split tests do) and the input overwritten after use.
@Suite("Wire vectors")
struct WireVectorTests {
    static let chunkSizes = [1, 2, 3, 7, 4096]
    static let vectors = WireVectors.shared

    @Test("every frame vector decodes to its fields at every chunk size", arguments: chunkSizes)
    func decodesAtChunkSize(chunkSize: Int) throws {
        for vector in Self.vectors.frames {
            for method in FeedMethod.allCases {
                // Given the vector's bytes cut into pieces of chunkSize
                var decoder = FrameDecoder()
                let bytes = vector.bytes
                // When each piece is appended and every complete frame taken
                let outcome = feed(bytes, to: &decoder, chunkSize: chunkSize, method: method) { state, buffered, fed in
                    // Then after each piece the decoder waits for the header, or for a frame of the right length
                    let (expected, expectedBuffered) = expectedState(afterFeeding: fed, frameSizes: [bytes.count])
                    #expect(state == expected, "\(vector.name) after \(fed) bytes (\(method))")
                    #expect(buffered == expectedBuffered, "\(vector.name) after \(fed) bytes (\(method))")
                }
                // And exactly the vector's frame comes out, without error
                #expect(outcome.error == nil, "\(vector.name): \(String(describing: outcome.error))")
                #expect(outcome.frames == [try vector.frame.makeFrame()], "\(vector.name) (\(method))")
            }
        }
    }

    @Test("all frame vectors back to back decode in order at every chunk size", arguments: chunkSizes)
    func streamAtChunkSize(chunkSize: Int) throws {
        // Given every vector in one stream
        let stream = Self.vectors.frames.flatMap(\.bytes)
        let sizes = Self.vectors.frames.map(\.bytes.count)
        let expected = try Self.vectors.frames.map { try $0.frame.makeFrame() }
        for method in FeedMethod.allCases {
            var decoder = FrameDecoder()
            // When it arrives in pieces of chunkSize
            let outcome = feed(stream, to: &decoder, chunkSize: chunkSize, method: method) { state, buffered, fed in
                let (expectedState, expectedBuffered) = expectedState(afterFeeding: fed, frameSizes: sizes)
                #expect(state == expectedState, "after \(fed) bytes (\(method))")
                #expect(buffered == expectedBuffered, "after \(fed) bytes (\(method))")
            }
            // Then every frame comes out, in order
            #expect(outcome.error == nil)
            #expect(outcome.frames == expected, "\(method)")
        }
    }

    @Test("decoded frames keep their bytes when the input is overwritten afterwards", arguments: chunkSizes)
    func consumedInputOverwritten(chunkSize: Int) throws {
        let stream = Self.vectors.frames.flatMap(\.bytes)
        let expected = try Self.vectors.frames.map { try $0.frame.makeFrame() }
        for method in FeedMethod.allCases {
            // Given every vector decoded from pieces whose source buffer was filled with 0x58 after each append
            var decoder = FrameDecoder(initialCapacity: 64)
            let outcome = feed(stream, to: &decoder, chunkSize: chunkSize, method: method)
            #expect(outcome.frames == expected)
            // When the decoder then takes 64 KiB more input, all 0x58, through both ways in, writing 0x58 over every
            // byte of every buffer it is offered, and lets go of its buffer
            for _ in 0..<8 {
                _ = decoder.append(minimumCapacity: 4096) { buffer in
                    for index in buffer.indices { buffer[index] = 0x58 }
                    return buffer.count
                }
                decoder.append([UInt8](repeating: 0x58, count: 4096))
            }
            decoder.releaseBufferIfIdle()
            // Then the frames already returned still hold exactly their own bytes
            #expect(outcome.frames == expected, "\(method)")
            #expect(try encoded(outcome.frames) == stream, "\(method)")
        }
    }

    @Test("every frame vector is what the encoder produces for its fields")
    func encodesToVector() throws {
        for vector in Self.vectors.frames {
            let frame = try vector.frame.makeFrame()
            #expect(try encoded([frame]) == vector.bytes, "\(vector.name)")
        }
        // And all of them back to back in one buffer, as one write would send them
        let frames = try Self.vectors.frames.map { try $0.frame.makeFrame() }
        #expect(try encoded(frames) == Self.vectors.frames.flatMap(\.bytes))
    }

    @Test("every error vector fails with its code and offset at every chunk size", arguments: chunkSizes)
    func errorVectors(chunkSize: Int) throws {
        for vector in Self.vectors.errors {
            for method in FeedMethod.allCases {
                // Given bytes a decoder must refuse
                var decoder = FrameDecoder(maxFrameSize: vector.maxFrameSize)
                // When they arrive in pieces
                let outcome = feed(vector.bytes, to: &decoder, chunkSize: chunkSize, method: method)
                // Then the frames before the fault come out, then the error with the vector's code and offset
                #expect(outcome.frames == (try vector.framesBefore.map { try $0.makeFrame() }), "\(vector.name)")
                #expect(outcome.error?.code == ErrorCode(rawValue: vector.code), "\(vector.name) (\(method))")
                #expect(outcome.error?.code.name == vector.error, "\(vector.name)")
                #expect(outcome.error?.offset == vector.offset, "\(vector.name) (\(method))")
                // And the decoder stays failed, throwing the same error again
                let failed = decoder.hasFailed
                #expect(failed)
                do {
                    _ = try decoder.next()
                    Issue.record("\(vector.name): next() after a failure returned instead of throwing")
                } catch {
                    #expect(error == outcome.error)
                }
            }
        }
    }

    @Test("every opcode has a frame vector and every decoder error code an error vector")
    func coverage() {
        let opcodes = Set(Self.vectors.frames.map { (try? $0.frame.makeFrame())?.opcode })
        for opcode in Opcode.allKnown {
            #expect(opcodes.contains(opcode), "no vector for \(opcode)")
        }
        let codes = Set(Self.vectors.errors.map(\.code))
        for code in 1...7 {
            #expect(codes.contains(UInt16(code)), "no error vector for \(ErrorCode(rawValue: UInt16(code)))")
        }
    }
}
