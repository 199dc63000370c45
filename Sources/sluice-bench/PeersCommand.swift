import Glibc

/// `sluice-bench peers`: Sluice against NATS, Redis and Mosquitto, each started by the benchmark on a free
/// loopback port, driven by the same engine in one run (issue 6). See docs/BENCHMARKS.md for the method.
struct PeersCommand {
    static let usage = """
          peers [--runs R] [--only SCENARIO] [--peers sluice,nats,redis,mosquitto] [--quick] [--svg PATH]
                                               Sluice against NATS, Redis and Mosquitto (fan-out, request/reply,
                                               idle connections, work queue), medians of R runs (default 3);
                                               --quick is a fast smoke (1 run, a tenth of the work)
        """

    /// What is measured, in report order.
    enum Scenario: String, CaseIterable {
        case fanOut1x16 = "fanout-1x16B"
        case fanOut4x16 = "fanout-4x16B"
        case fanOut1x1K = "fanout-1x1KiB"
        case fanOut4x1K = "fanout-4x1KiB"
        case requestReply = "reqrep"
        case idle = "idle"
        case workQueue = "workqueue"

        /// Subscribers and payload size of a fan-out scenario.
        var fanOut: (subscribers: Int, payloadSize: Int)? {
            switch self {
            case .fanOut1x16: (1, 16)
            case .fanOut4x16: (4, 16)
            case .fanOut1x1K: (1, 1024)
            case .fanOut4x1K: (4, 1024)
            case .requestReply, .idle, .workQueue: nil
            }
        }

        var title: String {
            switch self {
            case .fanOut1x16: "fan-out 1→1, 16 B"
            case .fanOut4x16: "fan-out 1→4, 16 B"
            case .fanOut1x1K: "fan-out 1→1, 1 KiB"
            case .fanOut4x1K: "fan-out 1→4, 1 KiB"
            case .requestReply: "request/reply, 16 B, one in flight"
            case .idle: "idle connections"
            case .workQueue: "work queue 1→2 with acks, 16 B"
            }
        }
    }

    /// How much work each scenario does, and its wall-clock cap.
    struct Sizes {
        var fanOutSmall = 500_000
        var fanOutLarge = 100_000
        var roundTrips = 20_000
        var warmUp = 1_000
        var idle = 5_000
        var work = 200_000
        var window = 256
        var capSeconds = 20

        static let quick = Sizes(
            fanOutSmall: 50_000,
            fanOutLarge: 10_000,
            roundTrips: 2_000,
            warmUp: 100,
            idle: 500,
            work: 20_000,
            window: 256,
            capSeconds: 5
        )

        func count(_ payloadSize: Int) -> Int { payloadSize <= 16 ? self.fanOutSmall : self.fanOutLarge }
    }

    let runs: Int
    let scenarios: [Scenario]
    let brokers: [Broker]
    let sizes: Sizes
    let svgPath: String
    let commandLine: String

    init(_ arguments: [String]) throws {
        let quick = arguments.contains("--quick")
        let options = try Options(
            arguments.filter { $0 != "--quick" },
            defaults: ["runs": quick ? "1" : "3", "peers": "sluice,nats,redis,mosquitto", "svg": "docs/peers.svg"]
        )
        self.runs = try options.int("runs")
        self.sizes = quick ? .quick : Sizes()
        self.svgPath = options.string("svg") ?? "docs/peers.svg"
        let only = options.string("only")
        self.scenarios = Scenario.allCases.filter { only == nil || $0.rawValue.contains(only!) }
        guard !self.scenarios.isEmpty else {
            throw Options.Failure(message: "--only matches none of \(Scenario.allCases.map(\.rawValue))")
        }
        var brokers: [Broker] = []
        for name in (options.string("peers") ?? "").split(separator: ",") {
            guard let broker = Broker(rawValue: String(name)) else {
                throw Options.Failure(message: "--peers: unknown broker '\(name)' (sluice, nats, redis, mosquitto)")
            }
            brokers.append(broker)
        }
        self.brokers = Broker.allCases.filter { brokers.contains($0) }
        self.commandLine = (["sluice-bench", "peers"] + arguments).joined(separator: " ")
    }

    /// One scenario on one broker in one run.
    struct Measurement {
        /// Messages per second (fan-out: at the slowest subscriber; work queue: received).
        var rate = Double.nan
        /// Fan-out: published but not received, summed over subscribers; and Sluice's LAGGED total.
        var lost = 0
        var lagged = 0
        /// A subscriber never saw the end marker, or the work queue did not finish, before the cap.
        var incomplete = false
        /// Fan-out: seconds from the first send to the last marker; messages per subscriber.
        var seconds = Double.nan
        var received: [Int] = []
        /// Broker CPU (user + system) during the scenario, from /proc/PID/stat.
        var cpuSeconds = Double.nan
        /// Broker peak resident memory (VmHWM) at the end of the scenario.
        var peakRSS = 0
        /// Request/reply latency percentiles, microseconds.
        var p50 = Double.nan
        var p99 = Double.nan
        var p999 = Double.nan
        /// Idle: resident bytes per connection.
        var perConnection = Double.nan
        /// The machine's steal time during the scenario (``vmStealSeconds()``), and the run it belongs to.
        var stealSeconds = 0.0
        var run = 0
    }

    /// The engine's ceiling for one protocol and payload size.
    struct Ceiling {
        var publish: Double
        var receive: Double
    }

    func run() throws {
        let sluiced = Self.sluicedPath()
        if self.brokers.contains(.sluice) && access(sluiced, X_OK) != 0 {
            throw BenchmarkFailure(
                description: "\(sluiced) not found: build it first with `swift build -c release --product sluiced`"
            )
        }
        let missing = self.brokers.filter { $0 != .sluice && access($0.installedPath, X_OK) != 0 }
        if !missing.isEmpty {
            throw BenchmarkFailure(
                description:
                    "missing \(missing.map(\.installedPath).joined(separator: ", ")): run `sudo sh docs/install-peers.sh`"
            )
        }
        let files = raiseFileLimit()
        if files < self.sizes.idle + 64 {
            print("note: open-file limit \(files) is below \(self.sizes.idle + 64); idle connections may fail")
        }
        print("sluice-bench peers: \(self.brokers.map(\.name).joined(separator: ", ")); \(self.runs) run(s)\n")

        var results: [Scenario: [Broker: [Measurement]]] = [:]
        var ceilings: [Int: [Broker: [Ceiling]]] = [:]
        var failures: [String] = []
        for run in 1...self.runs {
            for scenario in self.scenarios {
                for broker in self.brokers {
                    do {
                        guard var measurement = try self.measure(scenario, broker, sluiced: sluiced) else { continue }
                        measurement.run = run
                        results[scenario, default: [:]][broker, default: []].append(measurement)
                        print("run \(run) \(scenario.rawValue) \(broker.name): \(Self.describe(measurement))")
                    } catch {
                        failures.append("run \(run) \(scenario.rawValue) \(broker.name): \(error)")
                        print("run \(run) \(scenario.rawValue) \(broker.name): FAILED \(error)")
                    }
                }
            }
            for payloadSize in Set(self.scenarios.compactMap { $0.fanOut?.payloadSize }).sorted() {
                for broker in self.brokers {
                    let ceiling = try Self.ceiling(
                        peerClient(broker),
                        payloadSize: payloadSize,
                        count: self.sizes.count(payloadSize),
                        capSeconds: self.sizes.capSeconds
                    )
                    ceilings[payloadSize, default: [:]][broker, default: []].append(ceiling)
                    print(
                        "run \(run) engine ceiling \(broker.name) \(payloadSize) B: publish \(PeersReport.rate(ceiling.publish)), receive \(PeersReport.rate(ceiling.receive))"
                    )
                }
            }
        }
        let report = PeersReport(
            command: self,
            results: results,
            ceilings: ceilings,
            versions: brokerVersions(self.brokers),
            failures: failures
        )
        print("")
        print(report.markdown())
        if self.scenarios.contains(where: { $0.fanOut != nil }) {
            try writeFile(self.svgPath, report.svg())
            print("chart written to \(self.svgPath)")
        }
    }

    /// `sluiced` beside this executable (`swift build -c release` puts both in .build/release).
    static func sluicedPath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return ".build/release/sluiced" }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return ".build/release/sluiced" }
        return String(path[...slash]) + "sluiced"
    }

    /// Runs one scenario on a freshly started broker; nil when the broker has no such thing.
    private func measure(_ scenario: Scenario, _ broker: Broker, sluiced: String) throws -> Measurement? {
        let client = peerClient(broker)
        if scenario == .workQueue && client.workQueueMethod == nil { return nil }
        let process = try BrokerProcess(broker, sluiced: sluiced, maxConnections: self.sizes.idle + 1000)
        defer { process.stop() }
        let cpuBefore = process.cpuNanoseconds()
        let stealBefore = vmStealSeconds()
        var measurement = try Self.drive(client, scenario, process: process, sizes: self.sizes)
        measurement.cpuSeconds = Double(process.cpuNanoseconds() - cpuBefore) / 1e9
        measurement.stealSeconds = vmStealSeconds() - stealBefore
        measurement.peakRSS = process.statusBytes("VmHWM")
        return measurement
    }

    /// The scenario itself, generic so that the client's scanner is specialized into the engine's loops.
    private static func drive<Client: PeerClient>(
        _ client: Client,
        _ scenario: Scenario,
        process: BrokerProcess,
        sizes: Sizes
    ) throws -> Measurement {
        let deadline = monotonicNanoseconds() + Int64(sizes.capSeconds) * 1_000_000_000
        var measurement = Measurement()
        switch scenario {
        case .fanOut1x16, .fanOut4x16, .fanOut1x1K, .fanOut4x1K:
            let (subscribers, payloadSize) = scenario.fanOut!
            let result = try PeersScenarios.fanOut(
                client,
                port: process.port,
                subscribers: subscribers,
                payloadSize: payloadSize,
                count: sizes.count(payloadSize),
                deadline: deadline
            )
            measurement.rate = result.rate
            measurement.lost = result.lost
            measurement.lagged = result.lagged
            measurement.incomplete = result.incomplete
            measurement.seconds = result.seconds
            measurement.received = result.received
        case .requestReply:
            var samples = try PeersScenarios.requestReply(
                client,
                port: process.port,
                count: sizes.roundTrips,
                warmUp: sizes.warmUp,
                deadline: deadline
            )
            samples.sort()
            measurement.incomplete = samples.count < sizes.roundTrips
            measurement.p50 = samples[samples.count / 2]
            measurement.p99 = samples[min(samples.count - 1, samples.count * 99 / 100)]
            measurement.p999 = samples[min(samples.count - 1, samples.count * 999 / 1000)]
        case .idle:
            measurement.perConnection = try PeersScenarios.idleConnections(
                client,
                broker: process,
                count: sizes.idle,
                deadline: deadline
            )
        case .workQueue:
            let result = try PeersScenarios.workQueue(
                client,
                port: process.port,
                count: sizes.work,
                window: sizes.window,
                deadline: deadline
            )
            measurement.rate = result.rate
            measurement.lost = sizes.work - result.received
            measurement.incomplete = result.received < sizes.work
        }
        return measurement
    }

    private static func ceiling<Client: PeerClient>(
        _ client: Client,
        payloadSize: Int,
        count: Int,
        capSeconds: Int
    ) throws -> Ceiling {
        let deadline = monotonicNanoseconds() + Int64(capSeconds) * 1_000_000_000
        let (publish, receive) = try PeersScenarios.ceiling(
            client,
            payloadSize: payloadSize,
            count: count,
            deadline: deadline
        )
        return Ceiling(publish: publish, receive: receive)
    }

    /// One progress line.
    static func describe(_ m: Measurement) -> String {
        var parts: [String] = []
        if m.rate.isFinite { parts.append(PeersReport.rate(m.rate)) }
        if m.seconds.isFinite { parts.append("\(format2(m.seconds)) s, received \(m.received)") }
        if m.p50.isFinite {
            parts.append("p50 \(format2(m.p50)) µs, p99 \(format2(m.p99)) µs, p99.9 \(format2(m.p999)) µs")
        }
        if m.perConnection.isFinite { parts.append("\(Int(m.perConnection)) B/connection") }
        if m.lost > 0 || m.lagged > 0 { parts.append("lost \(m.lost) (LAGGED \(m.lagged))") }
        if m.incomplete { parts.append("INCOMPLETE (cap or close)") }
        parts.append("CPU \(format2(m.cpuSeconds)) s, peak RSS \(format2(Double(m.peakRSS) / 1_048_576)) MiB")
        parts.append("VM steal \(format2(m.stealSeconds)) s")
        return parts.joined(separator: ", ")
    }
}
