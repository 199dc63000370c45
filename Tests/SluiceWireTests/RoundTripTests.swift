import Testing

@testable import SluiceWire

/// Random frames of every kind, built from a seeded generator so a failure replays exactly.
struct RandomFrames {
    var random: SplitMix64

    /// Characters of 1 to 4 UTF-8 bytes, dots and wildcards: strings are never assumed to be ASCII or names.
    private static let alphabet: [Character] = ["a", "b", "z", "0", ".", "*", ">", " ", "é", "€", "𝄞", "\u{0}"]

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self.random) }
    mutating func bool() -> Bool { Bool.random(using: &self.random) }
    mutating func u32() -> UInt32 { UInt32.random(in: .min ... .max, using: &self.random) }
    mutating func u64() -> UInt64 { UInt64.random(in: .min ... .max, using: &self.random) }

    mutating func string() -> String {
        // Mostly short, sometimes empty, now and then a few hundred characters.
        let length = self.int(0...9) == 0 ? self.int(200...400) : self.int(0...12)
        return String((0..<length).map { _ in Self.alphabet.randomElement(using: &self.random)! })
    }

    mutating func headers() -> Headers {
        guard self.int(0...2) == 0 else { return Headers() }
        return Headers((0..<self.int(1...4)).map { _ in Headers.Field(name: self.string(), value: self.string()) })
    }

    mutating func payload() -> Payload {
        let count = self.int(0...5) == 0 ? self.int(0...5000) : self.int(0...40)
        return Payload((0..<count).map { _ in UInt8.random(in: 0...255, using: &self.random) })
    }

    mutating func frame() -> Frame {
        switch self.int(0...24) {
        case 0:
            return .hello(
                .init(
                    version: UInt16(self.int(0...65535)),
                    clientName: self.string(),
                    token: self.bool() ? self.string() : nil
                )
            )
        case 1:
            return .welcome(
                .init(
                    version: UInt16(self.int(0...65535)),
                    maxFrameSize: self.u32(),
                    idleTimeoutMilliseconds: self.u32(),
                    maxInflightRequests: self.u32(),
                    maxSubscriptions: self.u32(),
                    serverName: self.string()
                )
            )
        case 2: return .ping
        case 3: return .pong
        case 4: return .ok(requestID: self.u32())
        case 5:
            return .error(
                .init(
                    requestID: self.u32(),
                    code: ErrorCode(rawValue: UInt16(self.int(0...65535))),
                    message: self.string()
                )
            )
        case 6: return .goodbye
        case 7: return .stats(requestID: self.u32())
        case 8:
            let entries = (0..<self.int(0...5)).map { _ in
                Frame.StatsReply.Entry(name: self.string(), value: self.u64())
            }
            return .statsReply(.init(requestID: self.u32(), entries: entries))
        case 9:
            return .pub(
                .init(
                    requestID: self.u32(),
                    ackWanted: self.bool(),
                    subject: self.string(),
                    headers: self.headers(),
                    payload: self.payload()
                )
            )
        case 10:
            return .sub(
                .init(
                    requestID: self.u32(),
                    subscriptionID: self.u32(),
                    pattern: self.string(),
                    queueGroup: self.bool() ? self.string() : nil
                )
            )
        case 11: return .unsub(.init(requestID: self.u32(), subscriptionID: self.u32()))
        case 12:
            let delivery: Frame.Message.Delivery
            switch self.int(0...2) {
            case 0: delivery = .subject
            case 1: delivery = .queue(deliveryID: self.u64(), redelivered: self.bool())
            default: delivery = .request(replyID: self.u64())
            }
            return .msg(
                .init(
                    subscriptionID: self.u32(),
                    delivery: delivery,
                    subject: self.string(),
                    headers: self.headers(),
                    payload: self.payload()
                )
            )
        case 13: return .lagged(.init(subscriptionID: self.u32(), missed: self.u64()))
        case 14:
            return .push(
                .init(
                    requestID: self.u32(),
                    ackWanted: self.bool(),
                    noWait: self.bool(),
                    queue: self.string(),
                    headers: self.headers(),
                    payload: self.payload()
                )
            )
        case 15:
            return .consume(
                .init(requestID: self.u32(), subscriptionID: self.u32(), credit: self.u32(), queue: self.string())
            )
        case 16: return .ack(.init(requestID: self.u32(), ackWanted: self.bool(), deliveryID: self.u64()))
        case 17: return .nack(.init(requestID: self.u32(), ackWanted: self.bool(), deliveryID: self.u64()))
        case 18:
            return .set(
                .init(
                    requestID: self.u32(),
                    ackWanted: self.bool(),
                    key: self.string(),
                    headers: self.headers(),
                    payload: self.payload()
                )
            )
        case 19: return .get(.init(requestID: self.u32(), key: self.string()))
        case 20: return .watch(.init(requestID: self.u32(), subscriptionID: self.u32(), key: self.string()))
        case 21:
            let target: Frame.Value.Target =
                self.bool() ? .get(requestID: self.u32()) : .watch(subscriptionID: self.u32())
            return .value(
                .init(
                    target: target,
                    key: self.string(),
                    revision: self.u64(),
                    headers: self.headers(),
                    payload: self.payload()
                )
            )
        case 22:
            return .request(
                .init(
                    requestID: self.u32(),
                    timeoutMilliseconds: self.u32(),
                    subject: self.string(),
                    headers: self.headers(),
                    payload: self.payload()
                )
            )
        case 23:
            return .reply(
                .init(
                    requestID: self.u32(),
                    ackWanted: self.bool(),
                    replyID: self.u64(),
                    headers: self.headers(),
                    payload: self.payload()
                )
            )
        default:
            return .response(.init(requestID: self.u32(), headers: self.headers(), payload: self.payload()))
        }
    }
}

@Suite("Round trips")
struct RoundTripTests {
    @Test(
        "random frames of every kind survive encode then decode, in one buffer, cut at random",
        arguments: [1, 2, 3, 4, 5] as [UInt64]
    )
    func randomizedRoundTrip(seed: UInt64) throws {
        // Given 400 random frames encoded back to back into one buffer
        var frames = RandomFrames(random: SplitMix64(seed: seed))
        let batch = (0..<400).map { _ in frames.frame() }
        let bytes = try encoded(batch)
        // When the buffer is decoded in random-sized reads
        var decoder = FrameDecoder()
        var decoded: [Frame] = []
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + frames.int(1...3000))
            decoder.append(bytes[start..<end])
            while let frame = try decoder.next() { decoded.append(frame) }
            start = end
        }
        // Then the same frames come out, and encoding them again gives the same bytes
        #expect(decoded == batch)
        #expect(try encoded(decoded) == bytes)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test("every kind of frame is generated by the random round trip")
    func generatorCoversEveryOpcode() {
        var frames = RandomFrames(random: SplitMix64(seed: 1))
        let seen = Set((0..<400).map { _ in frames.frame().opcode })
        #expect(seen == Set(Opcode.allKnown))
    }

    @Test("encodeExceptPayload plus the payload is exactly encode")
    func encodeExceptPayload() throws {
        var frames = RandomFrames(random: SplitMix64(seed: 99))
        for _ in 0..<300 {
            let frame = frames.frame()
            var whole = FrameEncoder()
            try whole.encode(frame)
            var split = FrameEncoder()
            let payload = try split.encodeExceptPayload(frame)
            #expect(split.bytes + Array(payload) == whole.bytes, "\(frame.opcode)")
        }
    }
}
