import Glibc
import SluiceIO

/// The scenarios of `sluice-bench peers`, each generic over the protocol client so that every broker is driven by
/// the same code. Each is bounded twice: a fixed amount of work and a wall-clock `deadline`.
enum PeersScenarios {
    /// The fan-out marker's payload: one byte, where data payloads are 16 B or 1 KiB, so a subscriber tells it
    /// apart by size alone.
    static let marker: [UInt8] = [0x45]

    /// What one subscriber saw.
    struct Received: Sendable {
        /// Data messages received.
        var messages = 0
        /// Sluice LAGGED totals (messages the broker says this subscriber missed).
        var lagged = 0
        /// Error frames.
        var errors = 0
        /// When the marker arrived, or when receiving stopped without it.
        var last: Int64 = 0
        /// Whether the marker arrived (false: the connection closed or the deadline passed).
        var sawMarker = false
    }

    /// Receives fan-out deliveries of `payloadSize` bytes until the marker, a close or `deadline`.
    static func receive<Client: PeerClient>(
        _ client: Client,
        _ fd: Int32,
        payloadSize: Int,
        deadline: Int64
    ) -> Received {
        var reader = PeerReader()
        var result = Received()
        _ = pump(client, fd, &reader, deadline: deadline) { event, _ in
            switch event.kind {
            case .message:
                guard event.payloadCount != Self.marker.count else {
                    result.sawMarker = true
                    return true
                }
                result.messages += 1
            case .lagged:
                result.lagged += Int(event.id)
            case .ping:
                _ = try? peerSend(fd, client.pong())
            case .error:
                result.errors += 1
            case .acknowledged:
                break
            }
            return false
        }
        result.last = monotonicNanoseconds()
        return result
    }

    /// What the publisher did.
    struct Sent: Sendable {
        var start: Int64 = 0
        var end: Int64 = 0
        var messages = 0
        var failure: String?
    }

    /// Publishes `count` messages of `payloadSize` bytes as fast as the socket takes them (about 64 KiB per write),
    /// then the marker. Stops early at `deadline`.
    static func publish<Client: PeerClient>(
        _ client: Client,
        _ fd: Int32,
        topic: String,
        payloadSize: Int,
        count: Int,
        deadline: Int64
    ) -> Sent {
        let one = client.publish(topic: topic, payload: [UInt8](repeating: 0x78, count: payloadSize))
        let perWrite = max(1, 65536 / one.count)
        let batch = Array([[UInt8]](repeating: one, count: perWrite).joined())
        var sent = Sent(start: monotonicNanoseconds())
        do {
            try batch.withUnsafeBytes { batch in
                while sent.messages < count {
                    let n = min(perWrite, count - sent.messages)
                    try peerSend(fd, UnsafeRawBufferPointer(rebasing: batch[0..<n * one.count]))
                    sent.messages += n
                    if sent.messages % (perWrite * 16) == 0 && monotonicNanoseconds() > deadline { break }
                }
            }
            try peerSend(fd, client.publish(topic: topic, payload: Self.marker))
        } catch {
            sent.failure = "\(error)"
        }
        sent.end = monotonicNanoseconds()
        return sent
    }

    /// Reads and discards what the broker sends a publisher (Redis answers every PUBLISH) until `stop`.
    static func drain<Client: PeerClient>(_ client: Client, _ fd: Int32, stop: PeerCounter) -> PeerThread {
        PeerThread {
            var reader = PeerReader()
            _ = pump(client, fd, &reader, deadline: .max, stop: stop) { _, _ in false }
        }
    }

    // MARK: Fan-out

    /// One publisher to `subscribers` subscribers on one topic.
    struct FanOut {
        /// Messages per second at the slowest subscriber: what it received over the time from the first send to its
        /// marker.
        var rate: Double
        /// Messages published but not received, summed over subscribers.
        var lost: Int
        /// Sluice LAGGED totals, summed (they should equal `lost`).
        var lagged: Int
        /// A subscriber never saw the marker (deadline or close).
        var incomplete: Bool
        /// Seconds from the first send to the last subscriber's marker.
        var seconds: Double
        /// Messages each subscriber received.
        var received: [Int]
    }

    static func fanOut<Client: PeerClient>(
        _ client: Client,
        port: UInt16,
        subscribers: Int,
        payloadSize: Int,
        count: Int,
        deadline: Int64
    ) throws -> FanOut {
        let topic = client.topic("bench.fanout")
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        for index in 0..<subscribers {
            let fd = try peerConnect(port: port)
            sockets.append(fd)
            var reader = PeerReader(capacity: 1 << 16)
            try client.handshake(fd, &reader, name: "bench-sub-\(index)")
            try client.subscribe(fd, &reader, topic: topic, id: 1)
        }
        let publisher = try peerConnect(port: port)
        sockets.append(publisher)
        var reader = PeerReader(capacity: 1 << 16)
        try client.handshake(publisher, &reader, name: "bench-pub")

        let results = (0..<subscribers).map { _ in PeerSlot(Received()) }
        let threads = sockets.prefix(subscribers).enumerated().map { index, fd in
            PeerThread { results[index].set(receive(client, fd, payloadSize: payloadSize, deadline: deadline)) }
        }
        let stop = PeerCounter()
        let drainer = drain(client, publisher, stop: stop)
        let sent = publish(client, publisher, topic: topic, payloadSize: payloadSize, count: count, deadline: deadline)
        for thread in threads { thread.join() }
        stop.stop()
        drainer.join()
        if let failure = sent.failure {
            throw BenchmarkFailure(description: "\(client.broker.name) publish: \(failure)")
        }
        let received = results.map { $0.get() }
        let rate = received.map { Double($0.messages) / (Double($0.last - sent.start) / 1e9) }.min() ?? 0
        return FanOut(
            rate: rate,
            lost: received.reduce(0) { $0 + (sent.messages - $1.messages) },
            lagged: received.reduce(0) { $0 + $1.lagged },
            incomplete: received.contains { !$0.sawMarker },
            seconds: Double((received.map(\.last).max() ?? sent.start) - sent.start) / 1e9,
            received: received.map(\.messages)
        )
    }

    // MARK: The engine's ceiling

    /// The same `publish` against a sink that discards, and the same `receive` from a source that blasts
    /// pre-encoded deliveries: how fast the engine itself goes with this protocol, with no broker in the way.
    static func ceiling<Client: PeerClient>(
        _ client: Client,
        payloadSize: Int,
        count: Int,
        deadline: Int64
    ) throws -> (publish: Double, receive: Double) {
        let topic = client.topic("bench.fanout")
        // Publisher side: a sink thread reads and drops everything.
        let (sinkListener, sinkPort) = try peerListen()
        defer { close(sinkListener) }
        let sink = PeerThread {
            let fd = peerAccept(sinkListener)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            while true {
                let n = recv(fd, buffer, 1 << 20, 0)
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { break }
            }
            close(fd)
        }
        let publisher = try peerConnect(port: sinkPort)
        let sent = publish(client, publisher, topic: topic, payloadSize: payloadSize, count: count, deadline: deadline)
        close(publisher)
        sink.join()

        // Subscriber side: a source thread writes `count` deliveries and the marker, 64 KiB per write.
        let (sourceListener, sourcePort) = try peerListen()
        defer { close(sourceListener) }
        let started = PeerSlot<Int64>(0)
        let source = PeerThread {
            let fd = peerAccept(sourceListener)
            defer { close(fd) }
            let one = client.delivery(topic: topic, payload: [UInt8](repeating: 0x78, count: payloadSize))
            let perWrite = max(1, 65536 / one.count)
            let batch = Array([[UInt8]](repeating: one, count: perWrite).joined())
            started.set(monotonicNanoseconds())
            var written = 0
            batch.withUnsafeBytes { batch in
                while written < count {
                    let n = min(perWrite, count - written)
                    guard (try? peerSend(fd, UnsafeRawBufferPointer(rebasing: batch[0..<n * one.count]))) != nil else {
                        return
                    }
                    written += n
                }
            }
            _ = try? peerSend(fd, client.delivery(topic: topic, payload: Self.marker))
            // Stay open until the reader is done, so it sees the marker, not a close.
            var byte: UInt8 = 0
            while recv(fd, &byte, 1, 0) < 0 && monotonicNanoseconds() < deadline {}
        }
        let subscriber = try peerConnect(port: sourcePort)
        let received = receive(client, subscriber, payloadSize: payloadSize, deadline: deadline)
        close(subscriber)
        source.join()
        return (
            Double(sent.messages) / (Double(sent.end - sent.start) / 1e9),
            Double(received.messages) / (Double(received.last - started.get()) / 1e9)
        )
    }

    // MARK: Request/reply

    /// `count` sequential round trips, one in flight, after `warmUp` unmeasured ones: latencies in microseconds.
    static func requestReply<Client: PeerClient>(
        _ client: Client,
        port: UInt16,
        count: Int,
        warmUp: Int,
        deadline: Int64
    ) throws -> [Double] {
        let payload = [UInt8](repeating: 0x72, count: 16)
        let responder = try peerConnect(port: port)
        defer { close(responder) }
        let requester = try peerConnect(port: port)
        defer { close(requester) }
        var responderReader = PeerReader(capacity: 1 << 16)
        try client.handshake(responder, &responderReader, name: "bench-responder")
        try client.prepareResponder(responder, &responderReader)
        var reader = PeerReader(capacity: 1 << 16)
        try client.handshake(requester, &reader, name: "bench-requester")
        try client.prepareRequester(requester, &reader)

        let stop = PeerCounter()
        let serving = PeerThread {
            var reader = PeerReader(capacity: 1 << 16)
            let template = client.replyTemplate(payload: payload)
            var out: [UInt8] = []
            _ = pump(
                client,
                responder,
                &reader,
                deadline: deadline,
                stop: stop,
                afterScan: {
                    guard !out.isEmpty else { return }
                    _ = try? peerSend(responder, out)
                    out.removeAll(keepingCapacity: true)
                }
            ) { event, bytes in
                if event.kind == .message { client.appendReply(to: event, in: bytes, template: template, into: &out) }
                return false
            }
        }
        defer {
            stop.stop()
            serving.join()
        }
        let request = client.request(payload: payload)
        var samples: [Double] = []
        samples.reserveCapacity(count)
        for index in 0..<(warmUp + count) {
            let start = monotonicNanoseconds()
            try peerSend(requester, request)
            var failed = false
            let end = pump(client, requester, &reader, deadline: deadline) { event, _ in
                if event.kind == .error { failed = true }
                return event.kind == .message || failed
            }
            guard end == .stopped, !failed else {
                if end == .deadline && samples.count > 0 { break }
                throw BenchmarkFailure(description: "\(client.broker.name) request/reply: no reply (\(end))")
            }
            if index >= warmUp { samples.append(Double(monotonicNanoseconds() - start) / 1000) }
        }
        return samples
    }

    // MARK: Idle connections

    /// Opens `count` connections, each through its handshake, and returns the broker's resident memory growth per
    /// connection in bytes (VmRSS after − before, over `count`).
    static func idleConnections<Client: PeerClient>(
        _ client: Client,
        broker: BrokerProcess,
        count: Int,
        deadline: Int64
    ) throws -> Double {
        usleep(200_000)
        let before = broker.statusBytes("VmRSS")
        var sockets: [Int32] = []
        sockets.reserveCapacity(count)
        defer { for fd in sockets { close(fd) } }
        for index in 0..<count {
            let fd = try peerConnect(port: broker.port, small: true)
            sockets.append(fd)
            var reader = PeerReader(capacity: 1 << 17)
            try client.handshake(fd, &reader, name: "bench-idle-\(index)")
            if monotonicNanoseconds() > deadline {
                throw BenchmarkFailure(description: "\(client.broker.name): only \(index + 1) idle connections in time")
            }
        }
        usleep(500_000)
        let after = broker.statusBytes("VmRSS")
        return Double(after - before) / Double(count)
    }

    // MARK: Work queue

    /// One producer, two consumers each holding up to `window` unsettled messages, every message settled (ACK in
    /// Sluice; the next BRPOP in Redis). Messages per second from the first push to the last message received.
    static func workQueue<Client: PeerClient>(
        _ client: Client,
        port: UInt16,
        count: Int,
        window: Int,
        deadline: Int64
    ) throws -> (rate: Double, received: Int) {
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        for index in 0..<2 {
            let fd = try peerConnect(port: port)
            sockets.append(fd)
            var reader = PeerReader(capacity: 1 << 16)
            try client.handshake(fd, &reader, name: "bench-consumer-\(index)")
            try client.prepareConsumer(fd, &reader, window: window)
        }
        let producer = try peerConnect(port: port)
        sockets.append(producer)
        var reader = PeerReader(capacity: 1 << 16)
        try client.handshake(producer, &reader, name: "bench-producer")

        let total = PeerCounter()
        let finished = PeerSlot<Int64>(0)
        let consumers = sockets.prefix(2).map { fd in
            PeerThread {
                var reader = PeerReader()
                var out: [UInt8] = []
                _ = pump(
                    client,
                    fd,
                    &reader,
                    deadline: deadline,
                    stop: total,
                    afterScan: {
                        guard !out.isEmpty else { return }
                        _ = try? peerSend(fd, out)
                        out.removeAll(keepingCapacity: true)
                    }
                ) { event, _ in
                    guard event.kind == .message else { return false }
                    client.appendSettle(event, into: &out)
                    if total.add(1) == count {
                        finished.set(monotonicNanoseconds())
                        total.stop()
                    }
                    return false
                }
            }
        }
        let stop = PeerCounter()
        let drainer = drain(client, producer, stop: stop)
        let one = client.push(payload: [UInt8](repeating: 0x77, count: 16))
        let perWrite = max(1, 65536 / one.count)
        let batch = Array([[UInt8]](repeating: one, count: perWrite).joined())
        let start = monotonicNanoseconds()
        var pushed = 0
        var failure: (any Error)?
        do {
            try batch.withUnsafeBytes { batch in
                while pushed < count && monotonicNanoseconds() < deadline {
                    let n = min(perWrite, count - pushed)
                    try peerSend(producer, UnsafeRawBufferPointer(rebasing: batch[0..<n * one.count]))
                    pushed += n
                }
            }
        } catch {
            failure = error
        }
        for consumer in consumers { consumer.join() }
        stop.stop()
        drainer.join()
        if let failure { throw failure }
        let end = finished.get() == 0 ? monotonicNanoseconds() : finished.get()
        return (Double(total.value) / (Double(end - start) / 1e9), total.value)
    }
}
