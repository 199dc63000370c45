import SluiceIO

/// Everything a ``Server`` can be told: limits, buffers, timeouts and the optional shared token.
///
/// Every field has the default `sluiced` uses; `sluiced --help` lists them with their flags and `SLUICE_*`
/// variables. Durations of zero switch the matching timeout off.
public struct Configuration: Sendable, Equatable {
    /// Connections served at once; the next client gets ERROR `TOO_MANY_CONNECTIONS` and a close.
    public var maxConnections = 10_000
    /// The largest frame accepted, in bytes (the length field's value).
    public var maxFrameSize = 1 << 20
    /// SUB, CONSUME and WATCH subscriptions one connection may hold at once.
    public var maxSubscriptions = 1_024
    /// Outgoing bytes queued for one connection before it is closed with `SLOW_CONSUMER`. Subject deliveries
    /// use at most half of it and wait (so a slow subscriber lags instead); the other half is headroom for answers.
    public var maxPendingBytes = 8 << 20
    /// Messages each subscribed pattern buffers for its slowest subscriber; past it that subscriber gets LAGGED.
    public var subjectBuffer = 1_024
    /// Longest a publisher is paused (its socket not read) while a subscriber of what it published is more than
    /// three quarters of the subject buffer behind, so that a burst is delivered instead of lagged; zero never
    /// pauses (slow subscribers lag at once). A subscriber still behind after it lags, and that publisher is not
    /// paused again for a second.
    public var publishStall: Duration = .milliseconds(50)
    /// Messages a work queue holds before PUSH waits (or fails with `QUEUE_FULL` when it asked not to wait).
    public var queueCapacity = 1_024
    /// Distinct keys the server keeps; a SET or WATCH of a new key past it gets `LIMIT_REACHED`.
    public var maxKeys = 100_000
    /// Distinct work queues the server keeps; a PUSH or CONSUME of a new queue past it gets `LIMIT_REACHED`.
    public var maxQueues = 10_000
    /// The most unsettled messages one consumer may hold; a CONSUME asking for more credit gets this much.
    public var maxCredit = 1_024
    /// REQUESTs one connection may have waiting at once; the server stops reading it while at the cap.
    public var maxInflightRequests = 64
    /// A connection that sends nothing for this long is closed with `IDLE_TIMEOUT`; it is PINGed at half of it.
    public var idleTimeout: Duration = .seconds(30)
    /// A connection must send HELLO within this long.
    public var helloTimeout: Duration = .seconds(5)
    /// The timeout of a REQUEST that asks for none (`timeout_ms` 0).
    public var requestTimeout: Duration = .seconds(5)
    /// On shutdown, how long writers may take to flush before connections are cut.
    public var shutdownGrace: Duration = .seconds(5)
    /// When set, HELLO must carry this token.
    public var token: String?
    /// Event-loop threads; connections are spread across them.
    public var loops = EventLoopGroup.coreCount
    /// How long an event loop that runs out of work polls without blocking before it sleeps, yielding the core to
    /// any other runnable thread meanwhile; zero sleeps at once. See `EventLoop.init(name:spin:)`.
    public var spin: Duration = .microseconds(100)
    /// Sent in WELCOME.
    public var serverName = "sluiced 0.1.0"

    /// The defaults.
    public init() {}
}

extension Duration {
    /// Whole milliseconds, saturating at `UInt32.max`; negative durations are 0.
    var clampedMilliseconds: UInt32 {
        let (seconds, attoseconds) = self.components
        guard seconds >= 0 else { return 0 }
        let millis = seconds.multipliedReportingOverflow(by: 1_000)
        guard !millis.overflow else { return .max }
        let total = millis.partialValue + attoseconds / 1_000_000_000_000_000
        return UInt32(clamping: total)
    }

    /// Whether this is longer than zero (a timeout that is switched on).
    var isEnabled: Bool { self > .zero }
}
