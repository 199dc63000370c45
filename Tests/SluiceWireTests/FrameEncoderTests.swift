import Testing

@testable import SluiceWire

@Suite("FrameEncoder")
struct FrameEncoderTests {
    @Test("a string over 65,535 bytes is refused and the buffer is left as it was")
    func stringTooLong() throws {
        // Given an encoder holding one frame
        var encoder = FrameEncoder()
        try encoder.encode(.ping)
        let before = encoder.bytes
        // When a PUB with a 65,536-byte subject is encoded
        let subject = String(repeating: "a", count: 65_536)
        #expect(throws: FrameEncodingError.stringTooLong(field: "subject", byteCount: 65_536)) {
            try encoder.encode(.pub(.init(subject: subject, payload: "x")))
        }
        // Then nothing of it was appended
        #expect(encoder.bytes == before)
        // And 65,535 bytes is fine
        try encoder.encode(.pub(.init(subject: String(subject.dropFirst()), payload: "x")))
    }

    @Test("more than 65,535 headers or statistics are refused")
    func tooManyEntries() {
        var encoder = FrameEncoder()
        let headers = Headers(Array(repeating: Headers.Field(name: "n", value: "v"), count: 65_536))
        #expect(throws: FrameEncodingError.tooManyEntries(field: "headers", count: 65_536)) {
            try encoder.encode(.msg(.init(subscriptionID: 1, subject: "a", headers: headers, payload: Payload())))
        }
        let entries = Array(repeating: Frame.StatsReply.Entry(name: "n", value: 1), count: 65_536)
        #expect(throws: FrameEncodingError.tooManyEntries(field: "entries", count: 65_536)) {
            try encoder.encode(.statsReply(.init(requestID: 1, entries: entries)))
        }
        #expect(encoder.isEmpty)
    }

    @Test("removeAll keeps the buffer's memory for the next batch")
    func removeAllKeepsCapacity() throws {
        var encoder = FrameEncoder(reservingCapacity: 16)
        for _ in 0..<100 {
            try encoder.encode(.pub(.init(subject: "a.b", payload: Payload(Array(repeating: 1, count: 100)))))
        }
        let capacity = encoder.bufferCapacity
        let buffer = encoder.bufferIdentity
        encoder.removeAll()
        #expect(encoder.count == 0)
        try encoder.encode(.ping)
        #expect(encoder.bufferCapacity == capacity)
        #expect(encoder.bufferIdentity == buffer)
    }

    @Test("taken bytes never change, and the memory is reused once they are dropped")
    func takeEncoded() throws {
        // Given frames taken from an encoder (more than a payload holds inline, so the taken bytes share its buffer)
        var encoder = FrameEncoder()
        let frames: [Frame] = [.ping, .pong, .ping, .pong]
        for frame in frames { try encoder.encode(frame) }
        let buffer = encoder.bufferIdentity
        var taken: Payload? = encoder.takeEncoded()
        #expect(taken?.storageIdentity == buffer)
        #expect(encoder.isEmpty)
        // When more is encoded while they are held
        try encoder.encode(.goodbye)
        // Then the taken bytes are unchanged and the encoder moved to another buffer
        #expect(taken.map(Array.init) == (try encoded(frames)))
        #expect(encoder.bytes == (try encoded([.goodbye])))
        #expect(encoder.bufferIdentity != buffer)
        // And once nothing holds the taken bytes, the encoder writes in place again
        let second = encoder.bufferIdentity
        taken = encoder.takeEncoded()
        taken = nil
        try encoder.encode(.ping)
        #expect(encoder.bufferIdentity == second)
        #expect(taken == nil)
    }

    @Test("a copy of an encoder does not write into the original's bytes")
    func copiesAreIndependent() throws {
        var original = FrameEncoder()
        try original.encode(.ping)
        var copy = original
        try copy.encode(.pong)
        try original.encode(.goodbye)
        #expect(original.bytes == (try encoded([.ping, .goodbye])))
        #expect(copy.bytes == (try encoded([.ping, .pong])))
    }

    @Test("the length field counts the opcode, the fields and the payload")
    func lengthField() throws {
        var encoder = FrameEncoder()
        try encoder.encode(.response(.init(requestID: 1, payload: Payload(Array(repeating: 0, count: 300)))))
        // opcode 1 + request_id 4 + header_count 2 + payload 300
        #expect(Array(encoder.bytes.prefix(4)) == [0, 0, 0x01, 0x33])
        #expect(encoder.count == 4 + 307)
    }

    @Test("encodeMessage appends the same bytes as encoding the MSG frame, and nothing when it refuses")
    func encodeMessageMatchesEncode() throws {
        // Given subject MSGs with and without headers, with empty, inline and shared payloads, and a taken buffer
        let cases: [(UInt32, String, Headers, Payload)] = [
            (1, "a", Headers(), Payload()),
            (0xDEAD_BEEF, "orders.eu.paris", Headers([.init(name: "trace", value: "é1")]), Payload("sixteen bytes!!!")),
            (7, String(repeating: "s", count: 300), Headers(), Payload(Array(repeating: 0x5A, count: 5_000))),
        ]
        var fast = FrameEncoder(reservingCapacity: 16)
        var slow = FrameEncoder(reservingCapacity: 16)
        var taken: [Payload] = []
        for (id, subject, headers, payload) in cases {
            // When one encoder uses the fast path and the other encodes the frame
            try fast.encodeMessage(subscriptionID: id, subject: subject, headers: headers, payload: payload)
            try slow.encode(.msg(.init(subscriptionID: id, subject: subject, headers: headers, payload: payload)))
            // Then their bytes agree, and decode back to the frame
            #expect(fast.bytes == slow.bytes)
            taken.append(fast.takeEncoded())
            slow.removeAll()
        }
        var decoder = FrameDecoder()
        for bytes in taken { decoder.append(Array(bytes)) }
        for (id, subject, headers, payload) in cases {
            #expect(
                try decoder.next()
                    == .msg(.init(subscriptionID: id, subject: subject, headers: headers, payload: payload))
            )
        }
        // And a run of MSGs in one buffer, repeating subjects (copied from the MSG before) and changing subscription,
        // subject, headers and payload size, comes out exactly as the frames would
        let run: [(UInt32, String, Headers, Payload)] = [
            (1, "a.b", Headers(), Payload("x")), (1, "a.b", Headers(), Payload("yy")),
            (1, "a.b", Headers(), Payload(Array(repeating: 7, count: 300))), (2, "a.b", Headers(), Payload("z")),
            (2, "a.c", Headers(), Payload()), (2, "a.c", Headers([.init(name: "h", value: "v")]), Payload("w")),
            (2, "a.c", Headers(), Payload("v")), (2, String(repeating: "q", count: 40), Headers(), Payload("u")),
            (2, String(repeating: "q", count: 40), Headers(), Payload("t")),
        ]
        for (id, subject, headers, payload) in run {
            try fast.encodeMessage(subscriptionID: id, subject: subject, headers: headers, payload: payload)
            try slow.encode(.msg(.init(subscriptionID: id, subject: subject, headers: headers, payload: payload)))
        }
        #expect(fast.bytes == slow.bytes)
        _ = fast.takeEncoded()
        slow.removeAll()
        // And a batch appended as it is to another encoder is unchanged
        var joined = FrameEncoder()
        try joined.encode(.ping)
        for bytes in taken { joined.append(encoded: bytes) }
        #expect(joined.bytes == (try encoded([.ping])) + taken.flatMap { Array($0) })
        // And a subject too long is refused with nothing appended
        #expect(throws: FrameEncodingError.stringTooLong(field: "subject", byteCount: 65_536)) {
            try joined.encodeMessage(
                subscriptionID: 1,
                subject: String(repeating: "a", count: 65_536),
                headers: Headers(),
                payload: "x"
            )
        }
        #expect(joined.count == 5 + taken.reduce(0) { $0 + $1.count })
    }
}

@Suite("Payload")
struct PayloadTests {
    @Test("payloads compare by bytes, wherever the bytes live")
    func equalityByBytes() {
        let a: Payload = "hello"
        let b = Payload(Array("hello".utf8))
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(a != "hellO")
        #expect(Payload() == Payload([]))
        #expect(Payload("").isEmpty)
        #expect(String(decoding: a, as: UTF8.self) == "hello")
    }

    @Test("a payload of at most 16 bytes holds its bytes itself: no read buffer kept, same bytes, equality and hash")
    func inlinePayloads() throws {
        // Given PUBs of 1, 16 and 17 bytes decoded from one read
        let sizes = [1, 16, 17]
        var decoder = FrameDecoder()
        decoder.append(
            try encoded(sizes.map { .pub(.init(subject: "s", payload: Payload((0..<$0).map { UInt8($0 + 100) }))) })
        )
        var payloads: [Payload] = []
        while let frame = try decoder.next() {
            guard case .pub(let publish) = frame else { continue }
            payloads.append(publish.payload)
        }
        // Then the two short ones are inline and the long one is a view of the read buffer
        #expect(payloads.map(\.isInline) == [true, true, false])
        #expect(payloads[0].storageIdentity == nil && payloads[1].storageIdentity == nil)
        #expect(payloads[2].storageIdentity == decoder.bufferIdentity)
        // And every one reads, compares and hashes by its bytes, wherever they live
        for (payload, size) in zip(payloads, sizes) {
            let bytes = (0..<size).map { UInt8($0 + 100) }
            #expect(Array(payload) == bytes)
            #expect(payload.withUnsafeBytes { Array($0) } == bytes)
            #expect(payload == Payload(bytes))
            #expect(payload.hashValue == Payload(bytes).hashValue)
            #expect(payload.compacted() == payload)
        }
        #expect(Payload(copying: UnsafeRawBufferPointer(start: nil, count: 0)).isInline == false)
        #expect(payloads[1] != Payload((0..<16).map { UInt8($0 + 101) }))
    }

    @Test("compacted copies the bytes into a block of their own")
    func compacted() throws {
        var decoder = FrameDecoder()
        decoder.append(try encoded([.pub(.init(subject: "s", payload: "more than sixteen bytes"))]))
        guard case .pub(let publish) = try decoder.next() else {
            Issue.record("expected a PUB")
            return
        }
        let own = publish.payload.compacted()
        #expect(own == publish.payload)
        #expect(own.storageIdentity != publish.payload.storageIdentity)
        #expect(publish.payload.storageIdentity == decoder.bufferIdentity)
    }

    @Test("a payload is a zero-based collection with contiguous bytes")
    func collection() {
        let payload: Payload = [1, 2, 3]
        #expect(payload.startIndex == 0)
        #expect(payload[2] == 3)
        #expect(Array(payload) == [1, 2, 3])
        #expect(payload.withContiguousStorageIfAvailable { Array($0) } == [1, 2, 3])
        #expect(payload.debugDescription == "Payload(3 bytes: 01 02 03)")
    }
}

@Suite("Headers")
struct HeadersTests {
    @Test("headers keep order and repeats; lookup finds the first")
    func orderAndRepeats() {
        var headers: Headers = ["a": "1", "b": "2"]
        headers.append(name: "a", value: "3")
        #expect(headers.count == 3)
        #expect(headers["a"] == "1")
        #expect(headers["missing"] == nil)
        #expect(headers.fields.map(\.value) == ["1", "2", "3"])
        #expect(headers.description == "[a: 1, b: 2, a: 3]")
    }
}
