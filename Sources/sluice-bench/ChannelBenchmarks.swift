import SluiceChannels
import SluiceIO
import Synchronization

/// `sluice-bench channels`: each SluiceChannels workload next to the toolchain's `AsyncStream` in the same run.
///
/// Every workload moves `count` small values (`Int`) and checks that what arrived adds up to what was sent, so a
/// fast wrong answer cannot pass. Tasks run on the global concurrent executor (two threads here) unless the row
/// says "one thread": those put producer and consumer on one SluiceIO ``EventLoop``, the way the daemon runs a
/// connection's tasks on its event loop, which shows the channel's own cost without cross-thread wake-ups.
struct ChannelBenchmarks {
    let count: Int
    let only: String?
    /// Runs per workload; the table shows the median. One by default, so that the whole table takes under a
    /// minute here (the AsyncStream baselines alone take ~5 s a run at 2,000,000 values).
    let runs: Int

    struct Row {
        let name: String
        let perSecond: Double
        /// Which AsyncStream row this one is compared with, if any.
        let baseline: String?
        let note: String
    }

    func run() async throws {
        var rows: [Row] = []
        func add(_ row: Row) {
            rows.append(row)
            print(String(describing: row.name).padding(46) + formatRate(row.perSecond) + "  " + row.note)
        }
        let n = self.count
        print("sluice-bench channels: \(n) values per workload, median of \(self.runs) run(s)\n")

        add(try await self.median("AsyncStream 1→1", baseline: nil) { try await asyncStream(n, producers: 1, on: nil) })
        add(try await self.median("AsyncStream 4→1", baseline: nil) { try await asyncStream(n, producers: 4, on: nil) })
        add(
            try await self.median("AsyncStream 1→1, one thread", baseline: nil) {
                try await asyncStream(n, producers: 1, on: try EventLoop(name: "bench-one-thread"))
            }
        )
        add(
            try await self.median("MPSC bounded(1024) 1→1 recv()", baseline: "AsyncStream 1→1") {
                try await mpsc(n, capacity: 1024, producers: 1, batch: nil, on: nil)
            }
        )
        add(
            try await self.median("MPSC bounded(1024) 1→1 recv(upTo: 64)", baseline: "AsyncStream 1→1") {
                try await mpsc(n, capacity: 1024, producers: 1, batch: 64, on: nil)
            }
        )
        add(
            try await self.median("MPSC bounded(1024) 4→1 recv()", baseline: "AsyncStream 4→1") {
                try await mpsc(n, capacity: 1024, producers: 4, batch: nil, on: nil)
            }
        )
        add(
            try await self.median("MPSC bounded(1024) 4→1 recv(upTo: 64)", baseline: "AsyncStream 4→1") {
                try await mpsc(n, capacity: 1024, producers: 4, batch: 64, on: nil)
            }
        )
        add(
            try await self.median("MPSC unbounded 1→1 recv()", baseline: "AsyncStream 1→1") {
                try await mpsc(n, capacity: nil, producers: 1, batch: nil, on: nil)
            }
        )
        add(
            try await self.median("MPSC bounded(1024) 1→1 recv(), one thread", baseline: "AsyncStream 1→1, one thread")
            {
                try await mpsc(n, capacity: 1024, producers: 1, batch: nil, on: try EventLoop(name: "bench-one-thread"))
            }
        )
        add(
            try await self.median("Broadcast(1024) 1→4, unpaced (deliveries/s)", baseline: nil) {
                try await broadcast(n, receivers: 4, paced: false)
            }
        )
        add(
            try await self.median("Broadcast(1024) 1→4, paced (deliveries/s)", baseline: nil) {
                try await broadcast(n, receivers: 4, paced: true)
            }
        )
        add(try await self.median("Watch 1→4 (sends/s)", baseline: nil) { try await watch(n, receivers: 4) })
        add(
            try await self.median("Oneshot create+send+recv, send in a new task", baseline: nil) {
                try await oneshot(n)
            }
        )
        add(try await self.median("AsyncSemaphore acquire+release", baseline: nil) { try await semaphore(n) })

        print("\n| workload | msgs/s | vs AsyncStream | notes |\n|---|---:|---:|---|")
        for row in rows where row.perSecond.isFinite {
            let base = row.baseline.flatMap { name in rows.first { $0.name == name } }
            let ratio = base.map { String(format2(row.perSecond / $0.perSecond)) + "×" } ?? "—"
            print("| \(row.name) | \(formatRate(row.perSecond)) | \(ratio) | \(row.note) |")
        }
    }

    /// Runs `body` `runs` times (unless filtered out by `--only`) and keeps the median rate.
    private func median(
        _ name: String,
        baseline: String?,
        _ body: () async throws -> Outcome
    ) async throws -> Row {
        if let only = self.only, !name.lowercased().contains(only.lowercased()),
            !(baseline ?? "").lowercased().contains(only.lowercased())
        {
            return Row(name: name, perSecond: .nan, baseline: baseline, note: "skipped")
        }
        var runs: [(Double, String)] = []
        for _ in 0..<self.runs {
            let clock = ContinuousClock()
            let start = clock.now
            let outcome = try await body()
            let seconds = (clock.now - start).seconds
            runs.append((Double(outcome.operations) / seconds, outcome.note))
        }
        runs.sort { $0.0 < $1.0 }
        return Row(name: name, perSecond: runs[runs.count / 2].0, baseline: baseline, note: runs[runs.count / 2].1)
    }
}

/// What one run did: operations counted for the rate, and anything worth printing beside it.
struct Outcome {
    var operations: Int
    var note: String = ""
}

struct BenchmarkFailure: Error, CustomStringConvertible {
    let description: String
}

/// Sum of 0..<n, to check that every value arrived exactly once.
func expectedSum(_ n: Int) -> Int { n * (n - 1) / 2 }

/// Values 0..<n split over `producers` senders: producer p sends p, p + producers, p + 2·producers, …
func share(_ n: Int, producer: Int, of producers: Int) -> StrideTo<Int> {
    stride(from: producer, to: n, by: producers)
}

// MARK: - Workloads

func asyncStream(_ n: Int, producers: Int, on executor: EventLoop?) async throws -> Outcome {
    defer { executor?.shutdown() }
    let (stream, continuation) = AsyncStream<Int>.makeStream()
    let remaining = Progress.Counter()
    for p in 0..<producers {
        Task.detached(executorPreference: executor) {
            for value in share(n, producer: p, of: producers) { continuation.yield(value) }
            if remaining.value.add(1, ordering: .relaxed).newValue == producers { continuation.finish() }
        }
    }
    let consumer = Task.detached(executorPreference: executor) { () async -> Int in
        var sum = 0
        for await value in stream { sum &+= value }
        return sum
    }
    let sum = await consumer.value
    guard sum == expectedSum(n) else { throw BenchmarkFailure(description: "AsyncStream lost values") }
    return Outcome(operations: n)
}

func mpsc(_ n: Int, capacity: Int?, producers: Int, batch: Int?, on executor: EventLoop?) async throws -> Outcome {
    defer { executor?.shutdown() }
    let (sender, receiver) = capacity.map { MPSC<Int>.channel(capacity: $0) } ?? MPSC<Int>.unboundedChannel()
    for p in 0..<producers {
        Task.detached(executorPreference: executor) {
            for value in share(n, producer: p, of: producers) { try await sender.send(value) }
        }
    }
    let consumer = Task.detached(executorPreference: executor) { () async throws -> Int in
        var sum = 0
        var received = 0
        if let batch {
            var values: [Int] = []
            values.reserveCapacity(batch)
            while received < n {
                values.removeAll(keepingCapacity: true)
                received += try await receiver.recv(upTo: batch, into: &values)
                for value in values { sum &+= value }
            }
        } else {
            while received < n, let value = try await receiver.recv() {
                sum &+= value
                received += 1
            }
        }
        return sum
    }
    let sum = try await consumer.value
    guard sum == expectedSum(n) else { throw BenchmarkFailure(description: "MPSC lost values") }
    return Outcome(operations: n)
}

func broadcast(_ n: Int, receivers: Int, paced: Bool) async throws -> Outcome {
    let capacity = 1024
    let (sender, first) = Broadcast<Int>.channel(capacity: capacity)
    var handles: [Broadcast<Int>.Receiver] = [first]
    for _ in 1..<receivers { handles.append(sender.subscribe()) }
    // Each receiver publishes how far it got, so a paced sender can stay within the buffer.
    let progress = Progress(count: receivers)
    var tasks: [Task<(delivered: Int, lagged: Int), any Error>] = []
    for (index, receiver) in handles.enumerated() {
        tasks.append(
            Task.detached {
                var delivered = 0
                var lagged = 0
                while true {
                    do {
                        let value = try await receiver.recv()
                        delivered += 1
                        progress.set(index, value + 1)
                    } catch Broadcast<Int>.RecvError.lagged(let missed) {
                        lagged += Int(missed)
                    } catch Broadcast<Int>.RecvError.closed {
                        return (delivered, lagged)
                    }
                }
            }
        )
    }
    handles.removeAll()
    for value in 0..<n {
        if paced && value % 64 == 0 {
            while value - progress.minimum() > capacity / 2 { await Task.yield() }
        }
        sender.send(value)
    }
    _ = consume sender  // the last sender goes: receivers drain, then see `.closed`
    var delivered = 0
    var lagged = 0
    for task in tasks {
        let result = try await task.value
        delivered += result.delivered
        lagged += result.lagged
    }
    guard delivered + lagged == n * receivers else {
        throw BenchmarkFailure(description: "Broadcast: delivered \(delivered) + lagged \(lagged) != \(n * receivers)")
    }
    return Outcome(operations: delivered, note: "lagged \(lagged) of \(n * receivers)")
}

func watch(_ n: Int, receivers: Int) async throws -> Outcome {
    let (sender, first) = Watch<Int>.channel(-1)
    var handles: [Watch<Int>.Receiver] = [first]
    for _ in 1..<receivers { handles.append(sender.subscribe()) }
    var tasks: [Task<Int, any Error>] = []
    for receiver in handles {
        tasks.append(
            Task.detached {
                var seen = 0
                while true {
                    do {
                        try await receiver.changed()
                    } catch Watch<Int>.RecvError.closed {
                        break
                    }
                    seen += 1
                }
                guard receiver.borrow() == n - 1 else {
                    throw BenchmarkFailure(description: "Watch did not end on the last value")
                }
                return seen
            }
        )
    }
    handles.removeAll()
    for value in 0..<n { sender.send(value) }
    _ = consume sender
    var observed: [Int] = []
    for task in tasks { observed.append(try await task.value) }
    return Outcome(
        operations: n,
        note: "changes seen per receiver: \(observed.map(String.init).joined(separator: ", "))"
    )
}

/// Carries a noncopyable oneshot sender into a new task (an escaping closure cannot capture a `~Copyable` value).
final class SenderCarrier: Sendable {
    let sender: Mutex<Oneshot<Int>.Sender?>
    init(_ sender: consuming Oneshot<Int>.Sender) { self.sender = Mutex(consume sender) }
    func send(_ value: Int) throws {
        try self.sender.withLock { $0.take() }?.send(value)
    }
}

func oneshot(_ n: Int) async throws -> Outcome {
    var sum = 0
    for value in 0..<n {
        let channel = Oneshot<Int>.channel()
        let carrier = SenderCarrier(channel.sender)
        let receiver = channel.receiver
        Task.detached { try carrier.send(value) }
        sum &+= try await receiver.value()
    }
    guard sum == expectedSum(n) else { throw BenchmarkFailure(description: "Oneshot lost values") }
    return Outcome(operations: n)
}

func semaphore(_ n: Int) async throws -> Outcome {
    let semaphore = AsyncSemaphore(permits: 4)
    for _ in 0..<n {
        let permit = try await semaphore.acquire()
        permit.release()
    }
    guard semaphore.availablePermits == 4 else { throw BenchmarkFailure(description: "semaphore lost units") }
    return Outcome(operations: n, note: "one task, uncontended")
}

/// One atomic counter per receiver, for pacing a broadcast sender.
final class Progress: Sendable {
    final class Counter: Sendable { let value = Atomic<Int>(0) }
    private let counters: [Counter]
    init(count: Int) { self.counters = (0..<count).map { _ in Counter() } }
    func set(_ index: Int, _ value: Int) { self.counters[index].value.store(value, ordering: .relaxed) }
    func minimum() -> Int { self.counters.map { $0.value.load(ordering: .relaxed) }.min() ?? 0 }
}

// MARK: - Formatting

func formatRate(_ perSecond: Double) -> String {
    guard perSecond.isFinite else { return "—" }
    return format2(perSecond / 1e6) + " M/s"
}

func format2(_ value: Double) -> String {
    guard value.isFinite else { return "—" }
    let hundredths = Int((value * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}

extension String {
    func padding(_ width: Int) -> String {
        self.count >= width ? self + " " : self + String(repeating: " ", count: width - self.count)
    }
}

extension Duration {
    var seconds: Double { Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18 }
}
