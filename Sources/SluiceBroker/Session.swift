import Glibc
import SluiceChannels
import SluiceIO
import SluiceWire
import Synchronization

/// One client connection: a reader task that decodes frames and routes them, a writer task that drains the
/// connection's ``Outbox`` into the socket, and one forwarder task per subject subscription or watch.
///
/// ```text
///  socket ─▶ reader ─▶ routing tables ─▶ (other sessions' outboxes)
///              │ answers                      forwarders ◀─ Broadcast / Watch
///              ▼                                 │
///            Outbox (bounded MPSC) ◀─────────────┘ ◀── queue dispatchers, request waiters
///              ▼
///            writer ─▶ socket (everything ready, one write)
/// ```
///
/// The reader owns the connection's subscriptions; it is the only task that changes them, so they need no lock.
/// Ending: whoever decides it (the reader at EOF or on a bad frame, the server's sweeper on idle, another session
/// finding this one's outbox over its limit, shutdown) calls ``SessionCloser/close(_:)``; the reader stops, undoes
/// its subscriptions (queue messages it held go back), the last frame (GOODBYE or ERROR) is queued after everything
/// already queued, the writer flushes it, and the socket closes.
final class Session: Sendable {
    let id: SessionID
    let stream: TCPStream
    let outbox: Outbox
    let closer = SessionCloser()
    let broker: Broker
    /// Monotonic nanoseconds when the client last sent anything; the sweeper reads it.
    let lastHeard = Atomic<UInt64>(0)
    /// Monotonic nanoseconds when the server PINGed for this silence, 0 if it has not; cleared by any input.
    let pingedAt = Atomic<UInt64>(0)
    /// Set once HELLO was accepted.
    let welcomed = Atomic<Bool>(false)
    /// Monotonic nanoseconds at accept.
    let openedAt: UInt64
    /// REQUESTs this connection may have waiting.
    let inflight: AsyncSemaphore

    init(id: SessionID, stream: TCPStream, broker: Broker) {
        self.id = id
        self.stream = stream
        self.broker = broker
        self.outbox = Outbox(limit: broker.configuration.maxPendingBytes)
        self.inflight = AsyncSemaphore(permits: max(1, broker.configuration.maxInflightRequests))
        self.openedAt = Monotonic.now
        self.lastHeard.store(self.openedAt, ordering: .relaxed)
    }

    var log: Log { self.broker.log }
    var configuration: Configuration { self.broker.configuration }

    /// Serves the connection until it ends; returns after the socket is closed. Run it in a task attached to
    /// ``closer`` (``SessionCloser/attach(reader:stream:outbox:)``), which cancels it to end the connection.
    func run() async {
        let loop = self.stream.loop
        let peer = self.stream.peer.map { $0.description } ?? "?"
        self.log(.debug, "conn.open", ["id": self.id, "peer": peer])
        let writer = Task(executorPreference: loop) { await self.runWriter() }
        // The reader runs in this task (the server attaches it to the closer, which cancels it to end the
        // connection): one task fewer per connection. What follows it does not depend on cancellation: the last
        // frame goes into an outbox that has room (or is dropped for a client that stopped reading, which the
        // grace period then cuts), and awaiting the writer is not cancellable.
        await self.runReader()
        let reason = self.closer.reason ?? .endOfStream
        await self.outbox.finish(with: reason.lastFrame)
        await writer.value
        self.outbox.close()
        if reason == .goodbye || reason == .shutdown {
            // Let the client see everything, then read what it still sends until it closes (bounded by the
            // server's grace), so that closing does not reset the connection under unread data.
            try? self.stream.shutdown(.write)
        }
        self.stream.close()
        let level: Log.Level =
            switch reason {
            case .protocolError, .slowConsumer, .ioError: .warn
            default: .info
            }
        if case .slowConsumer = reason { self.broker.stats.slowConsumers.add() }
        var detail = ""
        if case .protocolError(_, let message) = reason { detail = message }
        if case .refused(_, let message) = reason { detail = message }
        self.log(level, "conn.close", ["id": self.id, "peer": peer, "reason": reason, "detail": detail])
    }

    // MARK: - Writer

    private func runWriter() async {
        // Grows with the batches and shrinks back after a big one: an idle connection keeps a few slots at most.
        var batch: [Outbox.Item] = []
        // Small to start: an idle connection should hold little (see the memory bar in DESIGN.md); it grows with
        // the batches and is given back after a large one.
        var encoder = FrameEncoder(reservingCapacity: 256)
        while true {
            batch.removeAll(keepingCapacity: batch.count <= 8)
            guard let count = try? await self.outbox.receiver.recv(upTo: 256, into: &batch), count > 0 else { return }
            var last = false
            for item in batch {
                switch item.content {
                case .none: break
                case .one(let frame): self.encode(frame, into: &encoder)
                case .many(let frames): for frame in frames { self.encode(frame, into: &encoder) }
                }
                if item.isLast {
                    last = true
                    break
                }
            }
            if !encoder.isEmpty {
                // No copy: the socket writes the encoder's buffer, which the encoder reuses once this is released.
                let bytes = EncodedFrames(payload: encoder.takeEncoded())
                // A large buffer is not kept for the next batch (which may be hours away); a small one is reused.
                if bytes.count > 4_096 { encoder.removeAll(keepingCapacity: false) }
                do {
                    try await self.stream.write(bytes)
                } catch {
                    self.closer.close(.ioError("\(error)"))
                    for item in batch { self.outbox.written(item) }
                    self.outbox.close()
                    return
                }
                self.broker.stats.bytesOut.add(UInt64(bytes.count))
            }
            for item in batch { self.outbox.written(item) }
            if last { return }
        }
    }
}

extension Session {
    fileprivate func encode(_ frame: Frame, into encoder: inout FrameEncoder) {
        do {
            try encoder.encode(frame)
        } catch {
            // Only a frame over 4 GiB or a string over 64 KiB gets here, and the reader never makes one.
            self.log(.error, "frame.unencodable", ["id": self.id, "error": error])
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
enum Monotonic {
    static var now: UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
