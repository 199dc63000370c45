import SluiceIO
import SluiceWire

/// Everything sessions share: the four routing tables, the counters, the configuration and the log.
///
/// | kind | table | channel inside |
/// |---|---|---|
/// | subjects | ``SubjectTable`` | `Broadcast` per subscribed pattern |
/// | queues | ``QueueTable`` | bounded `MPSC` per queue |
/// | keys | ``KeyStore`` | `Watch` per key |
/// | requests | ``RequestRegistry`` | `Oneshot` per request |
final class Broker: Sendable {
    let configuration: Configuration
    let log: Log
    let stats = Stats()
    let ids = DeliveryIDs()
    let subjects: SubjectTable
    let queues: QueueTable
    let keys: KeyStore
    let requests: RequestRegistry
    /// The event loops the server runs on, for their spin counters in STATS.
    let loops: [EventLoop]

    init(
        configuration: Configuration,
        log: Log,
        loops: [EventLoop] = [],
        executors: @escaping @Sendable () -> (any TaskExecutor)?
    ) {
        self.configuration = configuration
        self.loops = loops
        self.log = log
        self.subjects = SubjectTable(buffer: configuration.subjectBuffer)
        self.queues = QueueTable(
            capacity: configuration.queueCapacity,
            limit: configuration.maxQueues,
            ids: self.ids,
            stats: self.stats,
            executors: executors
        )
        self.keys = KeyStore(limit: configuration.maxKeys)
        self.requests = RequestRegistry(ids: self.ids)
    }

    /// STATS_REPLY entries: the counters, then the routing gauges.
    func statsEntries() -> [Frame.StatsReply.Entry] {
        let queues = self.queues.all
        return self.stats.entries(extra: [
            ("subjects", UInt64(self.subjects.patternCount)),
            ("queues", UInt64(queues.count)),
            ("queue_depth", UInt64(queues.reduce(0) { $0 + $1.unacknowledgedCount })),
            ("keys", UInt64(self.keys.count)),
            ("requests_inflight", UInt64(self.requests.count)),
            ("loop_spins_found", self.loops.reduce(0) { $0 &+ $1.spins.found }),
            ("loop_spins_missed", self.loops.reduce(0) { $0 &+ $1.spins.missed }),
        ])
    }

    /// `orders=3,jobs=0`: unacknowledged messages per queue, for the last log line.
    func unacknowledgedSummary() -> (total: Int, perQueue: String) {
        let queues = self.queues.all
        let counts = queues.map { ($0.name, $0.unacknowledgedCount) }
        return (counts.reduce(0) { $0 + $1.1 }, counts.map { "\($0.0)=\($0.1)" }.joined(separator: ","))
    }
}
