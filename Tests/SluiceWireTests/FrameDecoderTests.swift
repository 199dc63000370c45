import Testing

@testable import SluiceWire

/// The decoder's documented behaviours beyond the fixture vectors: limits, zero copy, the read-in-place path,
/// failure, and hostile input.
@Suite("FrameDecoder")
struct FrameDecoderTests {
    private func pub(_ payload: [UInt8], subject: String = "a.b") -> Frame {
        .pub(Frame.Publish(subject: subject, payload: Payload(payload)))
    }

    private func decodeAll(_ decoder: inout FrameDecoder) throws -> [Frame] {
        var frames: [Frame] = []
        while let frame = try decoder.next() { frames.append(frame) }
        return frames
    }

    @Test("not enough bytes yet is nil, not an error")
    func needMoreBytesIsNil() throws {
        // Given a complete PING without its last byte
        var decoder = FrameDecoder()
        decoder.append([0, 0, 0, 1])
        // Then next() is nil, and nil again, until the byte arrives
        #expect(try decoder.next() == nil)
        #expect(try decoder.next() == nil)
        decoder.append([0x03])
        #expect(try decoder.next() == .ping)
        #expect(try decoder.next() == nil)
    }

    @Test("an announced length over the maximum is refused from the 4 length bytes, before allocating it")
    func oversizedLengthRefusedBeforeAllocation() throws {
        // Given a decoder with a 1 MiB limit and a 4 KiB buffer
        var decoder = FrameDecoder(maxFrameSize: 1 << 20, initialCapacity: 4096)
        // When a peer announces 4 GiB − 1 and sends nothing more
        decoder.append([0xFF, 0xFF, 0xFF, 0xFF])
        // Then it fails at once with FRAME_TOO_LARGE at offset 0, and never held more than its small buffer
        #expect(decoder.bufferCapacity <= 4096)
        #expect(throws: WireError.self) { try decoder.next() }
        let failed = decoder.hasFailed
        #expect(failed)
        #expect(decoder.bufferCapacity == 0)
    }

    @Test("a frame of exactly the maximum size is accepted, one byte more is not")
    func maximumIsInclusive() throws {
        // Given a 64-byte limit and a PUB whose length field is exactly 64
        let frame = pub([UInt8](repeating: 7, count: 64 - 1 - 4 - 1 - 2 - 3 - 2))
        let bytes = try encoded([frame])
        #expect(bytes.count == 4 + 64)
        var decoder = FrameDecoder(maxFrameSize: 64)
        decoder.append(bytes)
        #expect(try decoder.next() == frame)
        // When the limit is one byte lower, the same frame is FRAME_TOO_LARGE
        var strict = FrameDecoder(maxFrameSize: 63)
        strict.append(bytes)
        do {
            _ = try strict.next()
            Issue.record("a 64-byte frame passed a 63-byte limit")
        } catch {
            #expect(error.code == .frameTooLarge)
            #expect(error.offset == 0)
            #expect(error.snippet.hasPrefix("00 00 00 40"))
        }
    }

    @Test("a PUB subject equal to the previous one is that same string; a different or invalid one is decoded afresh")
    func repeatedSubjects() throws {
        // Given PUBs to a long subject, twice, then a different subject of the same length, then the first again
        let long = "orders.europe.paris.store-0042.created"
        let other = "orders.europe.paris.store-0043.created"
        var decoder = FrameDecoder()
        decoder.append(
            try encoded([
                .pub(.init(subject: long, payload: "1")), .pub(.init(subject: long, payload: "2")),
                .pub(.init(subject: other, payload: "3")), .pub(.init(subject: long, payload: "4")),
            ])
        )
        let subjects = try decodeAll(&decoder).compactMap { frame -> String? in
            guard case .pub(let publish) = frame else { return nil }
            return publish.subject
        }
        // Then each comes out as sent, and the repeated one shares the previous PUB's storage
        #expect(subjects == [long, long, other, long])
        #expect(
            subjects[0].utf8.withContiguousStorageIfAvailable { $0.baseAddress }
                == subjects[1].utf8.withContiguousStorageIfAvailable { $0.baseAddress }
        )
        // And invalid UTF-8 of the same length as the remembered subject is still refused
        var bytes = try encoded([.pub(.init(subject: long, payload: "5"))])
        let at = 4 + 1 + 4 + 1 + 2  // length, opcode, request id, flags, subject length
        bytes[at] = 0xFF
        decoder.append(bytes)
        #expect(throws: WireError.self) { _ = try decoder.next() }
    }

    @Test("every complete frame in one read comes out before nil")
    func drainsEveryFrame() throws {
        // Given 100 PINGs and half of a PUB in one read
        let ping = try encoded([.ping])
        let publish = try encoded([pub([1, 2, 3])])
        var decoder = FrameDecoder()
        decoder.append(Array(repeating: ping, count: 100).flatMap { $0 } + publish.prefix(5))
        // Then 100 frames come out, then nil with the PUB's 5 bytes buffered
        #expect(try decodeAll(&decoder).count == 100)
        #expect(decoder.bufferedByteCount == 5)
        #expect(decoder.state == .waitingForFrame(length: publish.count - 4))
    }

    @Test("a payload that arrived in one read is a view of the read buffer, not a copy")
    func payloadIsAView() throws {
        // Given a PUB that arrives in one read
        var decoder = FrameDecoder()
        decoder.append(try encoded([pub(Array(repeating: 9, count: 1000))]))
        let buffer = decoder.bufferIdentity
        // When it is decoded
        guard case .pub(let publish) = try decoder.next() else {
            Issue.record("expected a PUB")
            return
        }
        // Then its payload lives in the decoder's buffer and nothing was moved
        #expect(publish.payload.storageIdentity == buffer)
        #expect(decoder.movedByteCount == 0)
    }

    @Test("a frame that straddles reads is copied once, into a buffer that holds all of it")
    func straddlingFrameCopiedOnce() throws {
        // Given a 100 KB PUB that arrives in 1000-byte reads after a small frame filled part of a 4 KiB buffer
        let big = pub(Array(repeating: 5, count: 100_000))
        let bytes = try encoded([.ping, big])
        var decoder = FrameDecoder(initialCapacity: 4096)
        var frames: [Frame] = []
        for start in stride(from: 0, to: bytes.count, by: 1000) {
            decoder.append(bytes[start..<min(start + 1000, bytes.count)])
            frames += try decodeAll(&decoder)
        }
        // Then both frames come out, and the only bytes moved were the PUB's first read, moved once when its length
        // was known
        #expect(frames == [.ping, big])
        #expect(decoder.movedByteCount <= 1000)
        guard case .pub(let publish) = frames.last else { return }
        #expect(publish.payload.storageIdentity == decoder.bufferIdentity)
    }

    @Test(
        "a large frame is moved at most once even when its last read also carries the next frames",
        arguments: FeedMethod.allCases
    )
    func largeFrameMovedOnceWithTrailingFrames(method: FeedMethod) throws {
        // Given a 100 KB PUB between small frames, arriving in 64 KiB reads, so the read that completes the PUB also
        // carries the PINGs after it
        let big = pub(Array(repeating: 5, count: 100_000))
        let frames: [Frame] = [.ping, big] + Array(repeating: .ping, count: 5000)
        let bytes = try encoded(frames)
        var decoder = FrameDecoder(initialCapacity: 4096)
        // When it is decoded
        let outcome = feed(bytes, to: &decoder, chunkSize: 65_536, method: method)
        // Then every frame comes out, and the bytes moved are at most the PUB's part of the first read, moved once
        // when its length was known
        #expect(outcome.error == nil)
        #expect(outcome.frames == frames)
        #expect(decoder.movedByteCount <= 65_536, "\(decoder.movedByteCount) bytes moved")
    }

    @Test(
        "several appends before the frames are taken still give every frame, in order",
        arguments: [1, 2, 3] as [UInt64]
    )
    func appendsWithoutDraining(seed: UInt64) throws {
        // Given large and small frames, fed in random pieces by both ways in, with next() drained only now and then
        var random = RandomFrames(random: SplitMix64(seed: seed))
        let frames: [Frame] =
            (0..<60).map { index in
                index % 7 == 0 ? pub(Array(repeating: UInt8(index), count: 20_000 + index)) : random.frame()
            }
        let bytes = try encoded(frames)
        var decoder = FrameDecoder(initialCapacity: 256)
        var decoded: [Frame] = []
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + random.int(1...30_000))
            if random.bool() {
                decoder.append(bytes[start..<end])
            } else {
                var position = start
                while position < end {
                    position += decoder.append(minimumCapacity: end - position) { buffer in
                        let take = min(buffer.count, end - position)
                        buffer.copyBytes(from: bytes[position..<position + take])
                        return take
                    }
                }
            }
            start = end
            if random.int(0...3) == 0 || start == bytes.count {
                while let frame = try decoder.next() { decoded.append(frame) }
            }
        }
        // Then nothing is lost, duplicated or changed
        #expect(decoded == frames)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test("bytes written in place never land on a returned frame, and an unshared buffer is reused")
    func readInPlaceRespectsReturnedFrames() throws {
        // Given a PUB read in place and decoded
        var decoder = FrameDecoder(initialCapacity: 256)
        let frame = pub([1, 2, 3, 4])
        let bytes = try encoded([frame])
        _ = decoder.append(minimumCapacity: bytes.count) { buffer in
            buffer.copyBytes(from: bytes)
            return bytes.count
        }
        var held = try decoder.next()
        let firstBuffer = decoder.bufferIdentity
        // When the next read fills every byte it is offered with 0x58, many times over
        for _ in 0..<10 {
            _ = decoder.append(minimumCapacity: 200) { buffer in
                buffer.initializeMemory(as: UInt8.self, repeating: 0x58)
                return 0
            }
        }
        // Then the held frame is unchanged
        #expect(held == frame)
        // And once nothing holds the buffer, the decoder compacts into it instead of allocating
        held = nil
        _ = decoder.append(minimumCapacity: 250) { _ in 0 }
        #expect(decoder.bufferIdentity == firstBuffer)
        #expect(held == nil)
    }

    @Test("reading in place behind a large frame offers exactly that frame's rest, then a fresh buffer")
    func readInPlaceOffersFrameRest() throws {
        // Given the first 1,000 bytes of a 10,000-byte PUB, its length known
        let bytes = try encoded([pub(Array(repeating: 1, count: 10_000 - 12)), .ping])
        let frameSize = bytes.count - 5
        var decoder = FrameDecoder(initialCapacity: 256)
        decoder.append(bytes[0..<1000])
        #expect(try decoder.next() == nil)
        // When a 64 KiB read is offered
        var offered = 0
        _ = decoder.append(minimumCapacity: 65_536) { buffer in
            offered = buffer.count
            buffer.copyBytes(from: bytes[1000..<1000 + buffer.count])
            return buffer.count
        }
        // Then it gets exactly the frame's rest, and the read after it a buffer of its own, before next()
        #expect(offered == frameSize - 1000)
        _ = decoder.append(minimumCapacity: 65_536) { buffer in
            offered = buffer.count
            buffer.copyBytes(from: bytes[frameSize...])
            return 5
        }
        #expect(offered >= 65_536)
        #expect(try decoder.next()?.opcode == .pub)
        #expect(try decoder.next() == .ping)
        #expect(decoder.movedByteCount <= 1000)
    }

    @Test("a read that throws appends nothing")
    func throwingReadAppendsNothing() throws {
        struct ReadFailed: Error {}
        var decoder = FrameDecoder()
        decoder.append([0, 0])
        #expect(throws: ReadFailed.self) {
            _ = try decoder.append(minimumCapacity: 16) { _ throws(ReadFailed) in throw ReadFailed() }
        }
        #expect(decoder.bufferedByteCount == 2)
    }

    @Test("after an error the decoder drops input and keeps throwing the same error")
    func failureIsSticky() throws {
        // Given a decoder that met an unknown opcode after one good frame
        var decoder = FrameDecoder()
        decoder.append(try encoded([.pong]) + [0, 0, 0, 1, 0xEE])
        #expect(try decoder.next() == .pong)
        var first: WireError?
        do { _ = try decoder.next() } catch { first = error }
        #expect(first?.code == .unknownOpcode)
        #expect(first?.offset == 9)
        #expect(first?.frameOffset == 5)
        #expect(first?.opcode == 0xEE)
        // When valid frames follow
        decoder.append(try encoded([.ping]))
        // Then they are dropped and the same error comes back
        #expect(decoder.bufferedByteCount == 0)
        do {
            _ = try decoder.next()
            Issue.record("a failed decoder decoded again")
        } catch {
            #expect(error == first)
        }
    }

    @Test("an idle decoder can let go of its buffer and still decode afterwards")
    func releaseBufferIfIdle() throws {
        var decoder = FrameDecoder()
        decoder.append(try encoded([.ping]))
        #expect(try decoder.next() == .ping)
        decoder.releaseBufferIfIdle()
        #expect(decoder.bufferCapacity == 0)
        decoder.append(try encoded([.pong]))
        #expect(try decoder.next() == .pong)
        // But not while part of a frame is waiting
        decoder.append([0, 0])
        decoder.releaseBufferIfIdle()
        #expect(decoder.bufferedByteCount == 2)
    }

    @Test("releaseBufferIfIdle(keepingUpTo:) keeps a small buffer and lets go of one that grew for a large frame")
    func releaseLargeBufferOnly() throws {
        var decoder = FrameDecoder()
        decoder.append(try encoded([.ping]))
        #expect(try decoder.next() == .ping)
        let small = decoder.bufferCapacity
        decoder.releaseBufferIfIdle(keepingUpTo: 16 * 1024)
        #expect(decoder.bufferCapacity == small && small > 0)
        let big = Frame.pub(Frame.Publish(subject: "big", payload: Payload(Array(repeating: 7, count: 100_000))))
        decoder.append(try encoded([big]))
        #expect(try decoder.next() == big)
        #expect(decoder.bufferCapacity > 16 * 1024)
        decoder.releaseBufferIfIdle(keepingUpTo: 16 * 1024)
        #expect(decoder.bufferCapacity == 0)
        decoder.append(try encoded([.pong]))
        #expect(try decoder.next() == .pong)
    }

    @Test("the error description names the code, offsets, opcode and bytes")
    func errorDescription() throws {
        var decoder = FrameDecoder()
        decoder.append(HexText.bytes("0000000a10000000000001006162"))
        do {
            _ = try decoder.next()
            Issue.record("an overrunning subject length decoded")
        } catch {
            #expect(
                error.description
                    == "LENGTH_OVERRUN (5) at byte 10 (frame at 0, opcode 0x10): subject length 256 overruns the frame "
                    + "(2 bytes left) [01 00 61 62]"
            )
        }
    }

    @Test("random bytes never trap: each stream ends in frames, nil or one error")
    func hostileInput() {
        // Given 3,000 seeded random streams, half of them starting with a plausible length and opcode
        var random = SplitMix64(seed: 0x51_1CE)
        for round in 0..<3000 {
            var bytes = (0..<Int.random(in: 0...300, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
            if round % 2 == 0 && bytes.count > 5 {
                let length = UInt32(bytes.count - 4)
                bytes.replaceSubrange(0..<4, with: withUnsafeBytes(of: length.bigEndian, Array.init))
                bytes[4] = Opcode.allKnown.randomElement(using: &random)!.rawValue
            }
            // When they are fed in random pieces to a decoder with a small limit
            var decoder = FrameDecoder(maxFrameSize: 256)
            let outcome = feed(bytes, to: &decoder, chunkSize: Int.random(in: 1...64, using: &random))
            // Then every frame decoded re-encodes to bytes a decoder accepts again, and any error is a frame error
            if let error = outcome.error { #expect(error.code.rawValue >= 1 && error.code.rawValue <= 7) }
            for frame in outcome.frames {
                var again = FrameDecoder(maxFrameSize: 1 << 20)
                again.append((try? encoded([frame])) ?? [])
                #expect((try? again.next()) == frame)
            }
        }
    }
}
