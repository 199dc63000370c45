// libFuzzer entry point for the SluiceWire decoder. Not a SwiftPM target: `.ci/fuzz` compiles this file together
// with Sources/SluiceWire/*.swift into one module with `swiftc -sanitize=fuzzer,address -parse-as-library`, so it
// can also check the decoder's internals.
//
// The first input byte chooses how the rest is fed (bits 0–2 chunk size, bit 3 copy or read-in-place, bits 4–5
// frame-size limit, bit 6 let go of the buffer whenever idle, bit 7 re-encode through takeEncoded()), the second how
// often frames are taken (bits 0–1: after every 1, 1, 2 or 5 appends); the rest is the byte stream. Beyond "never traps, never hangs", every input checks:
// - each decoded frame re-encodes to exactly the bytes it was decoded from (decoding is strict, so it is canonical),
//   and still does after all later input was appended (nothing later overwrites the bytes a frame points into);
// - an error is one of the decoder codes 1–7, at an offset inside the stream, and repeats on the next call;
// - the decoder's buffer stays bounded by the frame limit and the read size, and when frames are taken after every
//   append no input byte is moved twice (the copy-at-most-once rule);
// - every name in a frame can be checked against the grammar and matched, and a valid subject matches itself;
// - the decoder's UTF-8 validator agrees with the standard library's on the whole input.

/// Read sizes the first byte chooses from; the last means "all at once".
private let chunkSizes = [1, 2, 3, 7, 64, 512, 4096, Int.max]
/// Frame-size limits the first byte chooses from.
private let frameLimits = [16, 300, 65_536, 1 << 20]
/// How many appends between taking frames, chosen by the second byte.
private let drainCadences = [1, 1, 2, 5]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 1 else { return 0 }
    let control = data[0]
    let drainEvery = drainCadences[Int(data[1] & 0x03)]
    let stream = UnsafeBufferPointer(start: data + 2, count: size - 2)
    let chunkSize = chunkSizes[Int(control & 0x07)]
    let readInPlace = control & 0x08 != 0
    let maxFrameSize = frameLimits[Int(control >> 4) & 0x03]
    let releaseWhenIdle = control & 0x40 != 0
    let takeEncoded = control & 0x80 != 0

    let rawStream = UnsafeRawBufferPointer(stream)
    let ours = UTF8Check.firstInvalidIndex(rawStream) == nil
    precondition(ours == (String(validating: rawStream, as: UTF8.self) != nil), "UTF8Check disagrees with the stdlib")

    var decoder = FrameDecoder(maxFrameSize: maxFrameSize, initialCapacity: 64)
    var fed = 0
    var consumed = 0
    // Frames kept until the end, with where their bytes are in the stream.
    var held: [(frame: Frame, range: Range<Int>)] = []
    var appends = 0
    defer {
        for (frame, range) in held {
            var encoder = FrameEncoder()
            try! encoder.encode(frame)
            precondition(encoder.bytes.elementsEqual(stream[range]), "a held \(frame.opcode) changed after later input")
        }
    }
    while fed < stream.count {
        let count = min(chunkSize, stream.count - fed)
        let piece = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: stream[fed..<fed + count]))
        if readInPlace {
            // The decoder may offer less than asked while a large frame is arriving: read until the piece is in.
            var written = 0
            while written < count {
                let step = decoder.append(minimumCapacity: count - written) { buffer in
                    let take = min(buffer.count, count - written)
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: piece[written..<written + take]))
                    return take
                }
                precondition(step > 0, "the decoder offered no room")
                written += step
            }
        } else {
            decoder.append(piece)
        }
        fed += count
        appends += 1
        guard appends % drainEvery == 0 || fed == stream.count else { continue }
        do {
            while let frame = try decoder.next() {
                let size = checkRoundTrip(frame, stream: stream, at: consumed, takeEncoded: takeEncoded)
                if held.count < 64 { held.append((frame, consumed..<consumed + size)) }
                consumed += size
                checkNames(in: frame)
            }
        } catch {
            checkError(error, decoder: &decoder, fed: fed, consumed: consumed)
            return 0
        }
        precondition(decoder.bufferedByteCount == fed - consumed, "buffered bytes do not add up")
        if drainEvery == 1 {
            // Taking frames after every append, no byte is moved twice: only a length field cut by a read (at most 3
            // bytes a frame) may move more than once.
            let bound = fed + 8 * (consumed / 5 + 1)  // a frame is at least 5 bytes
            precondition(decoder.movedByteCount <= bound, "moved \(decoder.movedByteCount) bytes of \(fed) fed")
        }
        if releaseWhenIdle { decoder.releaseBufferIfIdle() }
        let bound = 2 * (maxFrameSize + 4) + 4 * drainEvery * min(count, 1 << 20) + 4096
        precondition(decoder.bufferCapacity <= bound, "buffer of \(decoder.bufferCapacity) bytes exceeds \(bound)")
    }
    return 0
}

/// Encodes `frame` and requires exactly the stream's bytes at `offset`; returns the frame's size on the wire.
private func checkRoundTrip(_ frame: Frame, stream: UnsafeBufferPointer<UInt8>, at offset: Int, takeEncoded: Bool)
    -> Int
{
    let length =
        Int(stream[offset]) << 24 | Int(stream[offset + 1]) << 16 | Int(stream[offset + 2]) << 8
        | Int(stream[offset + 3])
    let original = stream[offset..<offset + 4 + length]
    var encoder = FrameEncoder()
    do {
        try encoder.encode(frame)
    } catch {
        preconditionFailure("a decoded frame does not encode: \(error)")
    }
    if takeEncoded {
        // Take the bytes, then encode the frame again into the same encoder: the taken bytes must not change.
        let taken = encoder.takeEncoded()
        try! encoder.encode(frame)
        precondition(taken.elementsEqual(original), "takeEncoded() bytes of \(frame.opcode) differ")
        precondition(encoder.bytes.elementsEqual(original), "encoding after takeEncoded() differs")
    } else {
        precondition(encoder.bytes.elementsEqual(original), "re-encoding \(frame.opcode) changed its bytes")
    }
    // The split encoding must agree too.
    var split = FrameEncoder()
    let payload = try! split.encodeExceptPayload(frame)
    precondition((split.bytes + Array(payload)).elementsEqual(original), "encodeExceptPayload disagrees")
    return 4 + length
}

/// A decoder error must be a frame error inside the stream, and must stick.
private func checkError(_ failure: WireError, decoder: inout FrameDecoder, fed: Int, consumed: Int) {
    precondition((1...7).contains(failure.code.rawValue), "unexpected error code \(failure.code)")
    precondition(failure.frameOffset == consumed, "error frame offset \(failure.frameOffset), expected \(consumed)")
    precondition(failure.offset >= failure.frameOffset && failure.offset <= fed, "error offset out of range")
    precondition(decoder.hasFailed && decoder.bufferedByteCount == 0)
    do {
        _ = try decoder.next()
        preconditionFailure("a failed decoder decoded again")
    } catch {
        precondition(error == failure, "a failed decoder threw a different error")
    }
}

/// Runs every name through the grammar and the matcher; none may trap, and a valid subject matches itself and `>`.
private func checkNames(in frame: Frame) {
    var names: [(String, NameKind)] = []
    switch frame {
    case .pub(let publish): names = [(publish.subject, .subject)]
    case .sub(let subscribe): names = [(subscribe.pattern, .pattern), (subscribe.queueGroup ?? "q", .queueGroup)]
    case .msg(let message): names = [(message.subject, .subject)]
    case .push(let push): names = [(push.queue, .queue)]
    case .consume(let consume): names = [(consume.queue, .queue)]
    case .set(let set): names = [(set.key, .key)]
    case .get(let get): names = [(get.key, .key)]
    case .watch(let watch): names = [(watch.key, .key)]
    case .request(let request): names = [(request.subject, .subject)]
    default: return
    }
    for (name, kind) in names {
        let valid = (try? Subject.validate(name, as: kind)) != nil
        _ = Subject.matches(pattern: name, subject: name)
        _ = Subject.matches(pattern: name, subject: "a.b.c")
        _ = Subject.matches(pattern: "a.*.>", subject: name)
        if valid && kind == .subject {
            precondition(Subject.matches(pattern: name, subject: name), "\(name) does not match itself")
            precondition(Subject.matches(pattern: ">", subject: name), "> does not match \(name)")
        }
    }
}
