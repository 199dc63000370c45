import SluiceWire
import Synchronization

/// The server's counters, shared by every session; STATS reports them.
final class Stats: Sendable {
    /// Connections open now.
    let connections = Atomic<Int>(0)
    /// Connections whose reader holds a task now (a quiet one waits without, see `Session.readerTurn`).
    let readerTasks = Atomic<Int>(0)
    /// Connections accepted since start.
    let connectionsTotal = Atomic<UInt64>(0)
    /// Connections refused at the limit.
    let connectionsRefused = Atomic<UInt64>(0)
    /// PUB frames routed.
    let published = Atomic<UInt64>(0)
    /// MSG frames queued for subscribers, consumers and responders.
    let delivered = Atomic<UInt64>(0)
    /// Messages subscribers missed by lagging.
    let lagged = Atomic<UInt64>(0)
    /// Times a publisher was paused for a subscriber far behind (see `Configuration.publishStall`).
    let publisherStalls = Atomic<UInt64>(0)
    /// PUSH frames accepted.
    let pushed = Atomic<UInt64>(0)
    /// Queue messages ACKed.
    let acked = Atomic<UInt64>(0)
    /// Queue messages delivered again after NACK or a consumer leaving.
    let redelivered = Atomic<UInt64>(0)
    /// REQUEST frames handled.
    let requests = Atomic<UInt64>(0)
    /// Connections closed as slow consumers.
    let slowConsumers = Atomic<UInt64>(0)
    /// Bytes read from clients.
    let bytesIn = Atomic<UInt64>(0)
    /// Bytes written to clients.
    let bytesOut = Atomic<UInt64>(0)
    /// Frames that failed to decode (each closed its connection).
    let protocolErrors = Atomic<UInt64>(0)

    /// The counters as STATS_REPLY entries, in a fixed order; `extra` (router gauges) goes last.
    func entries(extra: [(String, UInt64)]) -> [Frame.StatsReply.Entry] {
        let counters: [(String, UInt64)] = [
            ("connections", UInt64(max(0, self.connections.load(ordering: .relaxed)))),
            ("connections_total", self.connectionsTotal.load(ordering: .relaxed)),
            ("reader_tasks", UInt64(max(0, self.readerTasks.load(ordering: .relaxed)))),
            ("connections_refused", self.connectionsRefused.load(ordering: .relaxed)),
            ("published", self.published.load(ordering: .relaxed)),
            ("delivered", self.delivered.load(ordering: .relaxed)),
            ("lagged", self.lagged.load(ordering: .relaxed)),
            ("publisher_stalls", self.publisherStalls.load(ordering: .relaxed)),
            ("pushed", self.pushed.load(ordering: .relaxed)),
            ("acked", self.acked.load(ordering: .relaxed)),
            ("redelivered", self.redelivered.load(ordering: .relaxed)),
            ("requests", self.requests.load(ordering: .relaxed)),
            ("slow_consumers", self.slowConsumers.load(ordering: .relaxed)),
            ("bytes_in", self.bytesIn.load(ordering: .relaxed)),
            ("bytes_out", self.bytesOut.load(ordering: .relaxed)),
            ("protocol_errors", self.protocolErrors.load(ordering: .relaxed)),
        ]
        return (counters + extra).map { Frame.StatsReply.Entry(name: $0.0, value: $0.1) }
    }
}

extension Atomic where Value == UInt64 {
    /// Adds `amount` (relaxed: counters order nothing).
    @inline(__always)
    func add(_ amount: UInt64 = 1) {
        self.wrappingAdd(amount, ordering: .relaxed)
    }
}
