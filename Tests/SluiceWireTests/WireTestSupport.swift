import Testing

@testable import SluiceWire

/// What feeding a byte stream to a decoder produced.
struct DecodeOutcome {
    var frames: [Frame] = []
    var error: WireError?
}

/// How bytes reach the decoder in a test.
enum FeedMethod: CaseIterable, CustomTestStringConvertible {
    /// `append(_:)` from a scratch buffer that is overwritten with 0x58 right after each append, like a socket read
    /// buffer reused for the next read.
    case copyFromReusedBuffer
    /// `append(minimumCapacity:from:)`: written straight into the decoder's buffer.
    case readInPlace

    var testDescription: String {
        switch self {
        case .copyFromReusedBuffer: "append(_:) from a reused buffer"
        case .readInPlace: "append(minimumCapacity:from:)"
        }
    }
}

/// Feeds `bytes` to `decoder` in pieces of `chunkSize`, taking every frame after each piece, and stops at the first
/// error. `afterPiece` sees the decoder after each piece was drained, with the number of bytes fed so far.
func feed(
    _ bytes: [UInt8],
    to decoder: inout FrameDecoder,
    chunkSize: Int,
    method: FeedMethod = .copyFromReusedBuffer,
    afterPiece: (_ state: FrameDecoder.State, _ buffered: Int, _ fed: Int) -> Void = { _, _, _ in }
) -> DecodeOutcome {
    var outcome = DecodeOutcome()
    var scratch = [UInt8](repeating: 0, count: chunkSize)
    var fed = 0
    while fed < bytes.count {
        let count = min(chunkSize, bytes.count - fed)
        switch method {
        case .copyFromReusedBuffer:
            for index in 0..<count { scratch[index] = bytes[fed + index] }
            scratch.withUnsafeBytes { decoder.append(UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
            for index in scratch.indices { scratch[index] = 0x58 }
        case .readInPlace:
            // The decoder may offer less than asked while a large frame is arriving: read until the piece is in.
            var written = 0
            while written < count {
                written += decoder.append(minimumCapacity: count - written) { buffer in
                    let take = min(buffer.count, count - written)
                    for index in 0..<take { buffer[index] = bytes[fed + written + index] }
                    return take
                }
            }
        }
        fed += count
        do {
            while let frame = try decoder.next() { outcome.frames.append(frame) }
        } catch {
            outcome.error = error
            return outcome
        }
        afterPiece(decoder.state, decoder.bufferedByteCount, fed)
    }
    return outcome
}

/// The state a correct decoder is in after `fed` bytes of a stream whose frames have the given total sizes (length
/// field included), once every complete frame was taken: (state, buffered bytes).
func expectedState(afterFeeding fed: Int, frameSizes: [Int]) -> (FrameDecoder.State, Int) {
    var start = 0
    for size in frameSizes {
        if fed < start + size {
            let buffered = fed - start
            if buffered < 4 { return (.waitingForHeader, buffered) }
            return (.waitingForFrame(length: size - 4), buffered)
        }
        start += size
    }
    return (.waitingForHeader, 0)
}

/// The encoded bytes of `frames`, back to back.
func encoded(_ frames: [Frame]) throws -> [UInt8] {
    var encoder = FrameEncoder()
    for frame in frames { try encoder.encode(frame) }
    return encoder.bytes
}

/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64), so randomized tests replay exactly.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { self.state = seed }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
