import Glibc
public import SluiceChannels
public import SluiceIO
import SluiceWire
import Synchronization

/// The broker's server: accepts connections, runs one ``Session`` each, enforces the connection limit and idle
/// timeouts, and shuts down gracefully.
///
/// ```swift
/// let group = try EventLoopGroup(count: 2)
/// let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 7420), on: group.loops[0])
/// let (stop, stopped) = Watch<Bool>.channel(false)
/// Task { await Server.run(listener: listener, configuration: Configuration(), shutdown: stopped, loops: group) }
/// stop.send(true)   // stop accepting, GOODBYE to everyone, flush within the grace period, return
/// ```
///
/// Shutdown is a `Watch<Bool>`: the server returns after it turns true (or its sender goes away) and every session
/// has ended, or the grace period has passed and the rest were cut. Sessions report their end through an `MPSC`;
/// the connection limit is an `AsyncSemaphore`.
public enum Server {
    /// Serves `listener` until `shutdown` turns true; returns when every connection is closed.
    ///
    /// - Parameters:
    ///   - listener: bound already, so tests can bind port 0 and read the port back.
    ///   - configuration: limits, buffers and timeouts.
    ///   - shutdown: the signal to stop; dropping its sender counts as true.
    ///   - loops: the event loops connections are spread over; the listener's loop alone when nil.
    ///   - log: where events go.
    public static func run(
        listener: TCPListener,
        configuration: Configuration,
        shutdown: Watch<Bool>.Receiver,
        loops: EventLoopGroup? = nil,
        log: Log = Log()
    ) async {
        let next: @Sendable () -> EventLoop = { loops?.next() ?? listener.loop }
        let broker = Broker(
            configuration: configuration,
            log: log,
            loops: loops?.loops ?? [listener.loop],
            executors: { next() }
        )
        let sessions = SessionRegistry()
        let (endedSender, ended) = MPSC<SessionID>.unboundedChannel()
        let limit = AsyncSemaphore(permits: max(1, configuration.maxConnections))
        log(
            .info,
            "server.start",
            [
                "listen": listener.localAddress, "max_connections": configuration.maxConnections,
                "max_frame_size": configuration.maxFrameSize,
            ]
        )

        let acceptor = Task(executorPreference: listener.loop) {
            var nextID: SessionID = 0
            while !Task.isCancelled {
                let stream: TCPStream
                do {
                    stream = try await listener.accept(on: next())
                } catch is CancellationError {
                    return
                } catch {
                    if Task.isCancelled { return }
                    log(.error, "accept.failed", ["error": error])
                    try? await Task.sleep(for: .milliseconds(10))
                    continue
                }
                guard let permit = try? limit.tryAcquire() else {
                    broker.stats.connectionsRefused.add()
                    log(
                        .warn,
                        "conn.refused",
                        ["peer": stream.peer.map { "\($0)" } ?? "?", "reason": "max_connections"]
                    )
                    Task(executorPreference: stream.loop) {
                        await refuse(stream, maxConnections: configuration.maxConnections)
                    }
                    continue
                }
                permit.forget()  // given back when the session ends
                nextID += 1
                let id = nextID
                let session = Session(id: id, stream: stream, broker: broker) {
                    sessions.withLock { $0[id] = nil }
                    broker.stats.connections.wrappingSubtract(1, ordering: .relaxed)
                    limit.release(1)
                    _ = endedSender.trySend(id)
                }
                sessions.withLock { $0[session.id] = session }
                broker.stats.connections.wrappingAdd(1, ordering: .relaxed)
                broker.stats.connectionsTotal.add()
                session.start()
            }
        }
        let sweeper = Task(executorPreference: listener.loop) {
            await sweep(sessions: sessions, configuration: configuration)
        }
        let requestTimer = Task(executorPreference: listener.loop) { await broker.requests.runTimer() }

        // Wait for the signal.
        while !shutdown.borrowAndUpdate() {
            do { try await shutdown.changed() } catch { break }
        }
        let live = sessions.withLock { $0.count }
        log(
            .info,
            "server.shutdown",
            ["connections": live, "grace_ms": configuration.shutdownGrace.clampedMilliseconds]
        )
        acceptor.cancel()
        listener.close()
        await acceptor.value
        sweeper.cancel()

        // GOODBYE to everyone, then wait for the sessions to end within the grace period.
        for session in sessions.withLock({ Array($0.values) }) { session.closer.close(.shutdown) }
        let drained = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                while sessions.withLock({ !$0.isEmpty }) {
                    guard (try? await ended.recv()) != nil else { break }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: configuration.shutdownGrace)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if !drained {
            let stuck = sessions.withLock { Array($0.values) }
            log(.warn, "server.grace_expired", ["cut": stuck.count])
            for session in stuck { session.closer.force() }
            while sessions.withLock({ !$0.isEmpty }) {
                guard (try? await ended.recv()) != nil else { break }
            }
        }
        requestTimer.cancel()  // after the sessions: requests still time out during the grace period
        broker.queues.stop()
        let unacknowledged = broker.unacknowledgedSummary()
        log(
            .info,
            "server.stopped",
            ["unacked": unacknowledged.total, "unacked_by_queue": unacknowledged.perQueue]
        )
    }

    /// Tells a client over the connection limit why, and closes: ERROR `TOO_MANY_CONNECTIONS`, then reads what it
    /// sends (its HELLO) for up to a second so that closing does not reset the connection under unread data.
    private static func refuse(_ stream: TCPStream, maxConnections: Int) async {
        var encoder = FrameEncoder()
        try? encoder.encode(
            .error(
                Frame.ErrorReport(
                    requestID: 0,
                    code: .tooManyConnections,
                    message: "the server is at its limit of \(maxConnections) connections"
                )
            )
        )
        try? await stream.write(encoder.bytes)
        try? stream.shutdown(.write)
        let drain = Task(executorPreference: stream.loop) {
            while let bytes = try? await stream.read(), !bytes.isEmpty {}
        }
        try? await Task.sleep(for: .seconds(1))
        drain.cancel()
        stream.close()
    }

    /// Closes connections that stay silent past the idle timeout (PINGing them at half of it) or send no HELLO in
    /// time, and retires the reader task of a connection quiet for a whole period (see `Session.readerTurn`). One
    /// task for the whole server, instead of a timer per connection.
    private static func sweep(sessions: SessionRegistry, configuration: Configuration) async {
        let idle = configuration.idleTimeout
        let hello = configuration.helloTimeout
        var period = Duration.seconds(1)
        if idle.isEnabled { period = min(period, idle / 4) }
        if hello.isEnabled { period = min(period, hello / 4) }
        period = max(period, .milliseconds(5))
        let idleNanos = UInt64(idle.clampedMilliseconds) * 1_000_000
        let helloNanos = UInt64(hello.clampedMilliseconds) * 1_000_000
        let periodNanos = UInt64(period.clampedMilliseconds) * 1_000_000
        while !Task.isCancelled {
            do { try await Task.sleep(for: period) } catch { return }
            let now = Monotonic.now
            for session in sessions.withLock({ Array($0.values) }) {
                let welcomed = session.welcomed.load(ordering: .relaxed)
                if !welcomed {
                    if hello.isEnabled && elapsed(since: session.openedAt, now: now) > helloNanos {
                        session.closer.close(.idleTimeout("no HELLO within \(hello)"))
                    }
                    continue
                }
                let silent = elapsed(since: session.lastHeard.load(ordering: .relaxed), now: now)
                // Quiet for a whole sweep: its reader need not keep a task while it waits.
                if silent > periodNanos { session.retireReaderIfWaiting() }
                guard idle.isEnabled else { continue }
                guard silent > idleNanos / 2 else { continue }
                // Every close for idleness follows a PING that the client had half the timeout to answer, even if
                // this sweep comes late (a busy machine): a late sweep pings first and closes on a later one.
                let pingedAt = session.pingedAt.load(ordering: .relaxed)
                if pingedAt == 0 {
                    session.pingedAt.store(now, ordering: .relaxed)
                    if session.outbox.post(.ping) == .overLimit { session.closer.close(.slowConsumer) }
                } else if silent > idleNanos && elapsed(since: pingedAt, now: now) > idleNanos / 2 {
                    session.closer.close(.idleTimeout("nothing received for \(idle)"))
                }
            }
        }
    }
}

/// Nanoseconds from `start` to `now`, 0 when `start` is later: a session opened, or a read stamped, after the
/// sweeper took `now` must not look ancient (a wrapping subtraction made exactly that mistake).
func elapsed(since start: UInt64, now: UInt64) -> UInt64 {
    now > start ? now - start : 0
}

/// The live sessions by id: the sweeper scans them, shutdown closes them.
final class SessionRegistry: Sendable {
    private let sessions = Locked<[SessionID: Session]>([:])

    func withLock<Result>(_ body: (inout [SessionID: Session]) -> Result) -> Result {
        self.sessions.withLock { body(&$0) }
    }
}
