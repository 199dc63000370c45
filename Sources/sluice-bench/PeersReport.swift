import Glibc

/// The tables (Markdown, pasted into docs/BENCHMARKS.md) and the chart (a hand-written SVG) of `sluice-bench peers`.
/// Every figure is the median of the runs; every ratio is Sluice ÷ peer from the same run set.
struct PeersReport {
    typealias Scenario = PeersCommand.Scenario
    typealias Measurement = PeersCommand.Measurement

    let command: PeersCommand
    let results: [Scenario: [Broker: [Measurement]]]
    let ceilings: [Int: [Broker: [PeersCommand.Ceiling]]]
    let versions: [Broker: String]
    let failures: [String]

    /// The median of the finite values, or NaN.
    static func median(_ values: [Double]) -> Double {
        let finite = values.filter(\.isFinite).sorted()
        guard !finite.isEmpty else { return .nan }
        let middle = finite.count / 2
        return finite.count % 2 == 1 ? finite[middle] : (finite[middle - 1] + finite[middle]) / 2
    }

    /// The median of `value` over the runs of `scenario` on `broker`.
    func median(_ scenario: Scenario, _ broker: Broker, _ value: (Measurement) -> Double) -> Double {
        Self.median((self.results[scenario]?[broker] ?? []).map(value))
    }

    /// Whether any run of `scenario` on `broker` was incomplete.
    func incomplete(_ scenario: Scenario, _ broker: Broker) -> Bool {
        (self.results[scenario]?[broker] ?? []).contains(where: \.incomplete)
    }

    var peers: [Broker] { self.command.brokers.filter { $0 != .sluice } }

    /// A rate that stays readable far below 1 M/s: "1.23 M/s", "845 k/s", "1.6 k/s".
    static func rate(_ perSecond: Double) -> String {
        guard perSecond.isFinite else { return "—" }
        if perSecond >= 1e6 { return format2(perSecond / 1e6) + " M/s" }
        if perSecond >= 1e4 { return "\(Int((perSecond / 1e3).rounded())) k/s" }
        return format2(perSecond / 1e3) + " k/s"
    }

    /// "1.23×", or "—".
    static func ratio(_ sluice: Double, _ peer: Double) -> String {
        guard sluice.isFinite, peer.isFinite, peer != 0 else { return "—" }
        let ratio = sluice / peer
        guard ratio < 0.1 else { return format2(ratio) + "×" }
        // Small ratios get four decimals, so 0.0016× does not print as 0.00×.
        let digits = String(Int((ratio * 10_000).rounded()))
        return "0." + String(repeating: "0", count: max(0, 4 - digits.count)) + digits + "×"
    }

    static func mebibytes(_ bytes: Double) -> String { bytes.isFinite ? format2(bytes / 1_048_576) : "—" }

    static func micros(_ value: Double) -> String { value.isFinite ? format2(value) : "—" }

    func markdown() -> String {
        var lines: [String] = []
        let brokers = self.command.brokers
        lines.append("Brokers: " + brokers.map { "\($0.name) (\(self.versions[$0] ?? "?"))" }.joined(separator: ", "))
        lines.append("Command: `\(self.command.commandLine)`; medians of \(self.command.runs) run(s).")
        lines.append("")

        // Summary: one line per scenario, absolute numbers and Sluice ÷ peer.
        let peerColumns = self.peers.map { "Sluice/\($0.name)" }
        lines.append("| scenario | metric | " + (brokers.map(\.name) + peerColumns).joined(separator: " | ") + " |")
        lines.append("|---|---|" + String(repeating: "---:|", count: brokers.count + self.peers.count))
        for scenario in self.command.scenarios {
            let (metric, value, show): (String, (Measurement) -> Double, (Double) -> String)
            switch scenario {
            case .fanOut1x16, .fanOut4x16, .fanOut1x1K, .fanOut4x1K:
                (metric, value, show) = ("msgs/s at slowest subscriber (higher is better)", \.rate, Self.rate)
            case .workQueue:
                (metric, value, show) = ("msgs/s consumed (higher is better)", \.rate, Self.rate)
            case .requestReply:
                (metric, value, show) = ("p99 µs (lower is better)", \.p99, Self.micros)
            case .idle:
                (metric, value, show) = (
                    "RSS bytes per connection (lower is better)", \.perConnection, { $0.isFinite ? "\(Int($0))" : "—" }
                )
            }
            let values = brokers.map { self.median(scenario, $0, value) }
            let sluice = self.median(scenario, .sluice, value)
            let cells =
                zip(brokers, values).map { broker, v in
                    v.isFinite ? show(v) + (self.incomplete(scenario, broker) ? " (capped)" : "") : "n/a"
                } + self.peers.map { Self.ratio(sluice, self.median(scenario, $0, value)) }
            lines.append("| \(scenario.title) | \(metric) | " + cells.joined(separator: " | ") + " |")
        }

        // Fan-out detail.
        let fanOuts = self.command.scenarios.filter { $0.fanOut != nil }
        if !fanOuts.isEmpty {
            lines.append("")
            lines.append(
                "| fan-out | broker | msgs/s at slowest | deliveries/s, all subscribers | lost (of published × subscribers) | broker CPU s | CPU µs per delivery | peak RSS MiB |"
            )
            lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
            for scenario in fanOuts {
                let (subscribers, payloadSize) = scenario.fanOut!
                let deliveries = Double(self.command.sizes.count(payloadSize) * subscribers)
                for broker in brokers {
                    let cpu = self.median(scenario, broker, \.cpuSeconds)
                    let lost = self.median(scenario, broker) { Double($0.lost) }
                    let lagged = self.median(scenario, broker) { Double($0.lagged) }
                    let lostText =
                        lost.isFinite
                        ? "\(Int(lost)) (\(format2(100 * lost / deliveries))%)"
                            + (broker == .sluice && lagged > 0 ? ", LAGGED \(Int(lagged))" : "") : "—"
                    let all = self.median(scenario, broker) { Double($0.received.reduce(0, +)) / $0.seconds }
                    let cells = [
                        scenario.title, broker.name, Self.rate(self.median(scenario, broker, \.rate)), Self.rate(all),
                        lostText,
                        format2(cpu), format2(cpu * 1e6 / max(deliveries - lost, 1)),
                        Self.mebibytes(self.median(scenario, broker) { Double($0.peakRSS) }),
                    ]
                    lines.append("| " + cells.joined(separator: " | ") + " |")
                }
            }
            lines.append("")
            lines.append("Engine ceiling (the same publish and receive code against a discarding sink and a blasting")
            lines.append("source in this process, no broker):")
            lines.append("")
            lines.append("| protocol | payload | publish side | receive side |")
            lines.append("|---|---:|---:|---:|")
            for payloadSize in self.ceilings.keys.sorted() {
                for broker in brokers {
                    let runs = self.ceilings[payloadSize]?[broker] ?? []
                    let cells = [
                        broker.name, "\(payloadSize) B", Self.rate(Self.median(runs.map(\.publish))),
                        Self.rate(Self.median(runs.map(\.receive))),
                    ]
                    lines.append("| " + cells.joined(separator: " | ") + " |")
                }
            }
        }

        if self.command.scenarios.contains(.requestReply) {
            lines.append("")
            lines.append("| request/reply | p50 µs | p99 µs | p99.9 µs | broker CPU s | method |")
            lines.append("|---|---:|---:|---:|---:|---|")
            for broker in brokers {
                let cells = [
                    broker.name, Self.micros(self.median(.requestReply, broker, \.p50)),
                    Self.micros(self.median(.requestReply, broker, \.p99)),
                    Self.micros(self.median(.requestReply, broker, \.p999)),
                    format2(self.median(.requestReply, broker, \.cpuSeconds)), peerClient(broker).requestReplyMethod,
                ]
                lines.append("| " + cells.joined(separator: " | ") + " |")
            }
        }

        if self.command.scenarios.contains(.idle) {
            lines.append("")
            lines.append("| \(self.command.sizes.idle) idle connections | RSS bytes per connection | peak RSS MiB |")
            lines.append("|---|---:|---:|")
            for broker in brokers {
                let perConnection = self.median(.idle, broker, \.perConnection)
                let cells = [
                    broker.name, perConnection.isFinite ? "\(Int(perConnection))" : "—",
                    Self.mebibytes(self.median(.idle, broker) { Double($0.peakRSS) }),
                ]
                lines.append("| " + cells.joined(separator: " | ") + " |")
            }
        }

        if self.command.scenarios.contains(.workQueue) {
            lines.append("")
            lines.append("| work queue | msgs/s | broker CPU s | CPU µs per message | peak RSS MiB | method |")
            lines.append("|---|---:|---:|---:|---:|---|")
            for broker in brokers {
                let client = peerClient(broker)
                guard let method = client.workQueueMethod else {
                    lines.append("| \(broker.name) | n/a | | | | no work queue with acknowledgements |")
                    continue
                }
                let cpu = self.median(.workQueue, broker, \.cpuSeconds)
                let cells = [
                    broker.name, Self.rate(self.median(.workQueue, broker, \.rate)), format2(cpu),
                    format2(cpu * 1e6 / Double(self.command.sizes.work)),
                    Self.mebibytes(self.median(.workQueue, broker) { Double($0.peakRSS) }), method,
                ]
                lines.append("| " + cells.joined(separator: " | ") + " |")
            }
        }

        // How disturbed the run was: steal is time this VM wanted a CPU and the hypervisor gave it to someone else.
        let all = self.results.flatMap { scenario, byBroker in
            byBroker.flatMap { broker, runs in runs.map { (scenario, broker, $0) } }
        }
        if let worst = all.max(by: { $0.2.stealSeconds < $1.2.stealSeconds }) {
            let total = all.reduce(0) { $0 + $1.2.stealSeconds }
            lines.append("")
            lines.append(
                "VM steal during the measurements (CPU time the hypervisor gave to other guests, from /proc/stat): "
                    + "\(format2(total)) s in all; the most in one: \(format2(worst.2.stealSeconds)) s "
                    + "(run \(worst.2.run), \(worst.0.rawValue), \(worst.1.name))."
            )
        }

        if !self.failures.isEmpty {
            lines.append("")
            lines.append("Failures:")
            for failure in self.failures { lines.append("- \(failure)") }
        }
        return lines.joined(separator: "\n")
    }

    // MARK: Chart

    /// Colours per broker, in report order.
    static let colours: [Broker: String] = [
        .sluice: "#2b6cb0", .nats: "#38a169", .redis: "#c53030", .mosquitto: "#805ad5",
    ]

    /// A short rate label: 1.2M, 850k.
    static func shortRate(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        if value >= 1e6 {
            let text = format2(value / 1e6)
            return (text.hasSuffix(".00") ? String(text.dropLast(3)) : text) + "M"
        }
        return "\(Int((value / 1e3).rounded()))k"
    }

    /// Grouped bars: msgs/s at the slowest subscriber per broker, one group per fan-out scenario.
    func svg() -> String {
        let scenarios = self.command.scenarios.filter { $0.fanOut != nil }
        let brokers = self.command.brokers
        let width = 880.0
        let height = 420.0
        let left = 70.0
        let right = 20.0
        let top = 50.0
        let bottom = 70.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let top1 =
            scenarios.flatMap { scenario in brokers.map { self.median(scenario, $0, \.rate) } }
            .filter(\.isFinite).max() ?? 1
        // A round axis maximum: 1, 2 or 5 times a power of ten, at or above the largest bar.
        var magnitude = 1.0
        while magnitude * 10 <= top1 { magnitude *= 10 }
        let axisMax = [1.0, 2.0, 5.0, 10.0].map { $0 * magnitude }.first { $0 >= top1 } ?? top1
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Int(width / 2))" y="24" text-anchor="middle" font-size="15">Fan-out: messages/s at the slowest subscriber (median of \(self.command.runs) run(s), higher is better)</text>

            """
        for step in 0...5 {
            let value = axisMax * Double(step) / 5
            let y = top + plotHeight - plotHeight * Double(step) / 5
            svg += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(width - right)\" y2=\"\(y)\" stroke=\"#ddd\"/>\n"
            svg +=
                "<text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\" fill=\"#555\">\(step == 0 ? "0" : Self.shortRate(value))</text>\n"
        }
        let groupWidth = plotWidth / Double(max(scenarios.count, 1))
        let barWidth = groupWidth * 0.8 / Double(max(brokers.count, 1))
        for (group, scenario) in scenarios.enumerated() {
            let groupLeft = left + groupWidth * Double(group) + groupWidth * 0.1
            for (index, broker) in brokers.enumerated() {
                let value = self.median(scenario, broker, \.rate)
                guard value.isFinite else { continue }
                let barHeight = plotHeight * value / axisMax
                let x = groupLeft + barWidth * Double(index)
                let y = top + plotHeight - barHeight
                svg +=
                    "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(barWidth - 2)\" height=\"\(barHeight)\" fill=\"\(Self.colours[broker]!)\"><title>\(broker.name) \(scenario.title): \(Self.rate(value))</title></rect>\n"
                svg +=
                    "<text x=\"\(x + barWidth / 2 - 1)\" y=\"\(y - 4)\" text-anchor=\"middle\" font-size=\"10\">\(Self.shortRate(value))</text>\n"
            }
            svg +=
                "<text x=\"\(groupLeft + groupWidth * 0.4)\" y=\"\(top + plotHeight + 18)\" text-anchor=\"middle\">\(scenario.title)</text>\n"
        }
        for (index, broker) in brokers.enumerated() {
            let x = left + Double(index) * 130
            let y = height - 24
            svg += "<rect x=\"\(x)\" y=\"\(y - 10)\" width=\"12\" height=\"12\" fill=\"\(Self.colours[broker]!)\"/>\n"
            svg += "<text x=\"\(x + 18)\" y=\"\(y)\">\(broker.name)</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }
}
