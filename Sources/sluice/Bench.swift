import Glibc
import SluiceClient
import SluiceIO
import SluiceWire
import Synchronization

/// `sluice bench`: N publishing and M subscribing connections on one subject, like `nats bench`.
///
/// Each publisher sends its share of the messages as fast as its connection takes them (no per-message
/// acknowledgement), then one PING so its last message has reached the broker. Each subscriber receives every
/// message; a message's first 8 bytes carry the monotonic time it was published, so each subscriber measures
/// delivery latency. The run stops when every subscriber has seen (or been told it missed) every message, or
/// at the time limit.
struct Bench {
    let invocation: Invocation
    let loop: EventLoop

    /// Counters the progress line reads while the run goes on.
    final class Progress: Sendable {
        let published = Atomic<Int>(0)
        let received = Atomic<Int>(0)
        let lagged = Atomic<Int>(0)
    }

    func run() async throws -> Int32 {
        let options = self.invocation.bench
        let group = try EventLoopGroup(count: max(1, EventLoopGroup.coreCount), name: "sluice-bench")
        defer { group.shutdown() }
        let commands = Commands(invocation: self.invocation, loop: self.loop)
        let subject = options.subject
        let total = options.publishers > 0 ? options.messages : 0
        let progress = Progress()
        let started = Monotonic.now
        let deadline =
            started + UInt64(options.duration.components.seconds) * 1_000_000_000
            + UInt64(options.duration.components.attoseconds / 1_000_000_000)

        var subscribers: [SluiceClient] = []
        var subscriptions: [Subscription] = []
        for index in 0..<options.subscribers {
            let client = try await self.connect(commands, group, "bench-sub-\(index)")
            subscribers.append(client)
            subscriptions.append(try await client.subscribe(subject, bufferSize: 4_096))
        }
        var publishers: [SluiceClient] = []
        for index in 0..<options.publishers {
            publishers.append(try await self.connect(commands, group, "bench-pub-\(index)"))
        }

        let reporter = Task(executorPreference: self.loop) {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let elapsed = Double(Monotonic.now - started) / 1e9
                guard elapsed >= 2, !Task.isCancelled else { continue }
                Output.error(
                    "bench: \(format(elapsed, 1)) s: published \(progress.published.load(ordering: .relaxed))"
                        + "/\(total), received \(progress.received.load(ordering: .relaxed))"
                        + "/\(total * options.subscribers)"
                )
            }
        }
        defer { reporter.cancel() }

        // Subscribers: count, measure latency, stop when every message is accounted for (or at the deadline).
        let receiving = subscriptions.map { subscription in
            Task(executorPreference: self.loop) { () -> [UInt64] in
                var latencies: [UInt64] = []
                latencies.reserveCapacity(min(total, 1_000_000))
                var accounted = 0
                guard total > 0 else { return latencies }
                var iterator = subscription.makeAsyncIterator()
                while accounted < total, Monotonic.now < deadline {
                    guard let event = try? await iterator.next() else { break }
                    switch event {
                    case .message(let message):
                        accounted += 1
                        progress.received.add(1, ordering: .relaxed)
                        if message.payload.count >= 8, latencies.count < 1_000_000 {
                            let sent = message.payload.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                            latencies.append(Monotonic.now &- sent)
                        }
                    case .lagged(let missed):
                        accounted += Int(missed)
                        progress.lagged.add(Int(missed), ordering: .relaxed)
                    }
                }
                return latencies
            }
        }
        // A subscriber that is waiting when the deadline passes is woken by cancelling it.
        let watchdog = Task(executorPreference: self.loop) {
            while Monotonic.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            for task in receiving { task.cancel() }
        }
        defer { watchdog.cancel() }

        // Publishers.
        let size = options.size
        let publishStart = Monotonic.now
        let sending = publishers.enumerated().map { index, client in
            let share = total / options.publishers + (index < total % options.publishers ? 1 : 0)
            return Task(executorPreference: client.loop) { () -> Int in
                var body = [UInt8](repeating: UInt8(ascii: "x"), count: size)
                var sent = 0
                while sent < share {
                    if sent % 1_024 == 0, Monotonic.now >= deadline { break }
                    if size >= 8 {
                        withUnsafeBytes(of: Monotonic.now) { stamp in
                            for byte in 0..<8 { body[byte] = stamp[byte] }
                        }
                    }
                    try await client.publish(subject, Payload(body))
                    sent += 1
                    if sent % 256 == 0 { progress.published.add(256, ordering: .relaxed) }
                }
                try await client.ping()
                progress.published.add(sent % 256, ordering: .relaxed)
                return sent
            }
        }
        var published = 0
        for task in sending { published += try await task.value }
        let publishEnd = Monotonic.now
        var latencies: [UInt64] = []
        for task in receiving { latencies += await task.value }
        let receiveEnd = Monotonic.now
        watchdog.cancel()
        reporter.cancel()
        for client in publishers + subscribers { await client.close() }

        let received = progress.received.load(ordering: .relaxed)
        let lagged = progress.lagged.load(ordering: .relaxed)
        let publishSeconds = max(Double(publishEnd - publishStart) / 1e9, 1e-9)
        let receiveSeconds = max(Double(receiveEnd - publishStart) / 1e9, 1e-9)
        if Monotonic.now >= deadline {
            Output.error("bench: stopped at the time limit of \(options.duration)")
        }
        Output.line(
            "bench: \(options.publishers) publisher(s), \(options.subscribers) subscriber(s), \(size)-byte messages,"
                + " subject \(subject)"
        )
        if options.publishers > 0 {
            Output.line(
                "pub:  \(published) msgs in \(format(publishSeconds, 3)) s  "
                    + rate(published, size, publishSeconds)
            )
        }
        if options.subscribers > 0 {
            Output.line(
                "sub:  \(received) msgs in \(format(receiveSeconds, 3)) s  "
                    + rate(received, size, receiveSeconds) + "  (lagged: \(lagged) missed)"
            )
        }
        if !latencies.isEmpty {
            latencies.sort()
            func percentile(_ p: Double) -> String {
                let index = min(latencies.count - 1, Int(Double(latencies.count) * p / 100))
                return format(Double(latencies[index]) / 1_000, 1)
            }
            Output.line(
                "latency (µs): p50 \(percentile(50))  p90 \(percentile(90))  p99 \(percentile(99))"
                    + "  p99.9 \(percentile(99.9))  max \(format(Double(latencies.last!) / 1_000, 1))"
            )
        }
        return 0
    }

    private func connect(_ commands: Commands, _ group: EventLoopGroup, _ name: String) async throws -> SluiceClient {
        let address = try SluiceClient.parseAddress(self.invocation.server)
        let token = self.invocation.token
        let loop = group.next()
        return try await withDeadline(self.invocation.timeout, "connecting to \(address)") {
            try await SluiceClient.connect(to: address, name: name, token: token, on: loop)
        }
    }
}

/// `1,234,567 msgs/s  158.02 MB/s`.
private func rate(_ count: Int, _ size: Int, _ seconds: Double) -> String {
    let perSecond = Double(count) / seconds
    return "\(format(perSecond, 0)) msgs/s  \(format(perSecond * Double(size) / 1_000_000, 2)) MB/s"
}

/// `value` with `digits` decimals.
func format(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "-" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (value * scale).rounded()
    let whole = Int(scaled / scale)
    guard digits > 0 else { return String(whole) }
    let fraction = Int(abs(scaled) - abs(Double(whole)) * scale)
    let text = String(fraction)
    return "\(whole).\(String(repeating: "0", count: digits - text.count))\(text)"
}
