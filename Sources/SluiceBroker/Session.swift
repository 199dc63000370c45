import Glibc
import SluiceChannels
import SluiceIO
import SluiceWire
import Synchronization

/// One client connection: a reader task that decodes frames and routes them, a writer task (started when a frame is
/// queued and none runs, ended when the outbox is empty) that drains the connection's ``Outbox`` into the socket,
/// and one forwarder task per subject subscription or watch.
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
    let closer: SessionCloser
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
    /// Released by the writer that wrote the last frame, or gave up on a cut connection: ``finish()`` waits for it
    /// before closing the socket.
    private let writerDone = AsyncSemaphore(permits: 0)
    /// The reader's state between its turns (see ``start()``); taken by the turn that runs.
    let readerState: Locked<ReaderState?>
    /// Runs once the connection has ended and its socket is closed.
    private let ended: @Sendable () -> Void

    /// A session for `stream`; `ended` runs once the connection has ended and its socket is closed.
    init(id: SessionID, stream: TCPStream, broker: Broker, ended: @escaping @Sendable () -> Void) {
        self.id = id
        self.stream = stream
        self.broker = broker
        self.ended = ended
        self.outbox = Outbox(limit: broker.configuration.maxPendingBytes)
        self.closer = SessionCloser(stream: stream, outbox: self.outbox)
        self.readerState = Locked(nil)
        self.inflight = AsyncSemaphore(permits: max(1, broker.configuration.maxInflightRequests))
        self.openedAt = Monotonic.now
        self.lastHeard.store(self.openedAt, ordering: .relaxed)
        // Strong, a cycle that ``finish()`` breaks: a weak reference would give the session a side table, and every
        // retain and release of it would take the runtime's slow path (~1,000 instructions a request/reply).
        self.outbox.onWork(
            writeNow: { frame in self.writeNow(first: frame) },
            start: { self.startWriter() }
        )
    }

    var log: Log { self.broker.log }
    var configuration: Configuration { self.broker.configuration }

    /// Starts serving the connection: its reader's first turn. The reader runs in turns, each a task on the
    /// connection's loop that reads, decodes and routes frames while the socket has bytes, then leaves a wait
    /// without a task behind (``readerTurn()``): an idle connection holds no task at all. Writers come and go with
    /// the traffic (``writeBurst(after:)``). The last turn closes the connection and runs `ended`.
    func start() {
        let peer = self.stream.peer.map { $0.description } ?? "?"
        self.log(.debug, "conn.open", ["id": self.id, "peer": peer])
        self.readerState.withLock { $0 = ReaderState(session: self) }
        self.startReaderTurn()
    }

    /// Starts a reader turn on the connection's loop, recorded with ``closer``, which cancels it to end the
    /// connection.
    func startReaderTurn() {
        self.closer.attach { Task(executorPreference: self.stream.loop) { await self.readerTurn() } }
    }

    /// Ends the reader's turn if it is waiting for bytes in its task, and lets go of a parked reader's read buffer:
    /// the sweeper's call for a connection that has been quiet for a while, so that it holds no task and no buffer
    /// (see ``readerTurn()``).
    func retireReaderIfWaiting() {
        self.stream.endReadWait(tasksOnly: true)
        self.readerState.withLock { $0?.decoder.releaseBufferIfIdle() }
    }

    /// The connection ended: the last frame is queued after everything already queued, written, and the socket
    /// closed. Called by the reader's last turn, after its cleanup.
    func finish() async {
        let loop = self.stream.loop
        let peer = self.stream.peer.map { $0.description } ?? "?"
        let reason = self.closer.reason ?? .endOfStream
        if await self.outbox.finish(with: reason.lastFrame) {
            // A writer writes up to the last frame (or fails, or finds the connection cut) and says so. The wait is
            // not this task's own (this task was cancelled to end the connection, so its waits would throw at once):
            // a task's value is awaited regardless of cancellation.
            let done = self.writerDone
            await Task(executorPreference: loop) { (try? await done.acquire())?.forget() }.value
        }
        // Else the connection was cut (`SessionCloser.force()`, or a writer that failed): a writer still running
        // fails on the closed socket or finds the outbox closed, and ends.
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
        self.outbox.stopWork()  // the outbox's reference to this session goes: see `init`
        self.ended()
    }

    // MARK: - Writer

    /// Bytes a writer took from the outbox and encoded but the socket has not taken yet, with the items they came
    /// from (given back once written).
    struct Unwritten: Sendable {
        let bytes: [UInt8]
        let items: [Outbox.Item]
        /// The items end with the last frame.
        let isLast: Bool
    }

    /// Starts a writer task on the connection's loop: the caller holds the writer's claim and hands it over, with
    /// what it could not write yet.
    private func startWriter(after unwritten: Unwritten? = nil) {
        Task(executorPreference: self.stream.loop) { await self.writeBurst(after: unwritten) }
    }

    /// Writes what is queued now, on the caller's thread, which may be another loop's: one batch and one `send` that
    /// does not wait, for a caller holding the writer's claim (``Outbox/writeClaimed()``). A loop delivering to a
    /// connection of another loop thus writes to its socket itself, as NATS does, instead of waking that loop's
    /// thread to write. What the socket does not take, or what was queued meanwhile, goes on in a writer task.
    /// `first`, when given, is written ahead of the queue (an answer that never went through it).
    func writeNow(first: Frame? = nil) {
        if let first {
            // This thread's encoder: its buffer is reused from write to write (see `EncoderScratch`).
            let scratch = EncoderScratch.current()
            scratch.encoder.removeAll()
            self.encode(first, into: &scratch.encoder)
            let bytes = scratch.encoder.takeEncoded()
            // A large buffer is not kept for the next frame (as in `writeBurst`); a small one is reused.
            if bytes.count > 4_096 { scratch.encoder.removeAll(keepingCapacity: false) }
            self.writeNow(bytes, completing: [], isLast: false)
            return
        }
        var batch: [Outbox.Item] = []
        let open = self.outbox.takeReady(upTo: Self.writeBatch, into: &batch)
        guard !batch.isEmpty else {
            if !open {
                self.writerDone.release(1)  // closed and drained: see `writeBurst`
            } else if !self.outbox.writerGoesIdle() {
                self.startWriter()
            }
            return
        }
        var encoder = FrameEncoder(reservingCapacity: 256)
        let (bytes, last) = self.bytes(of: batch, using: &encoder)
        self.writeNow(bytes, completing: batch, isLast: last)
    }

    /// One `send` of `bytes` without waiting, then what `batch` cost is given back; the rest goes to a writer task.
    private func writeNow(_ bytes: Payload, completing batch: [Outbox.Item], isLast last: Bool) {
        if !bytes.isEmpty {
            let sent: Int
            do {
                sent = try bytes.withUnsafeBytes { bytes throws(IOError) in try self.stream.tryWrite(bytes) }
            } catch {
                self.writeFailed(error, batch)
                return
            }
            self.broker.stats.bytesOut.add(UInt64(sent))
            if sent < bytes.count {
                // The send buffer is full: the loop's writer waits for room and writes the rest.
                let rest = bytes.withUnsafeBytes { Array($0[sent...]) }
                self.startWriter(after: Unwritten(bytes: rest, items: batch, isLast: last))
                return
            }
        }
        guard self.wrote(batch, isLast: last) else { return }
        if !self.outbox.writerGoesIdle() { self.startWriter() }
    }

    /// Items a writer takes from the outbox for one write.
    static let writeBatch = 256

    /// Writes what is queued, batch after batch, until the outbox is empty; then ends, and the next frame queued
    /// starts another (``Outbox/kick()``). An idle connection thus holds no writer task and none of its memory
    /// (the reader is its only task). One writer at a time: ``Outbox/writing`` says whether one runs. `unwritten`
    /// is written first.
    func writeBurst(after unwritten: Unwritten? = nil) async {
        if let unwritten {
            do {
                try await self.stream.write(unwritten.bytes)
            } catch {
                self.writeFailed(error, unwritten.items)
                return
            }
            self.broker.stats.bytesOut.add(UInt64(unwritten.bytes.count))
            guard self.wrote(unwritten.items, isLast: unwritten.isLast) else { return }
        }
        // Small to start (see the memory bar in DESIGN.md); it grows with the batches of this burst.
        var batch: [Outbox.Item] = []
        var encoder = FrameEncoder(reservingCapacity: 256)
        while true {
            batch.removeAll(keepingCapacity: true)
            let open = self.outbox.takeReady(upTo: Self.writeBatch, into: &batch)
            if batch.isEmpty {
                guard open else {
                    // Closed and drained without a last frame: the connection was cut, and `run()` queued no last
                    // frame, so it does not wait (the release is for symmetry, and harmless).
                    self.writerDone.release(1)
                    return
                }
                if self.outbox.writerGoesIdle() { return }
                continue
            }
            // No copy: the socket writes the encoder's buffer, which the encoder reuses once this is released.
            let (encoded, last) = self.bytes(of: batch, using: &encoder)
            let bytes = EncodedFrames(payload: encoded)
            // A large buffer is not kept for the next batch; a small one is reused.
            if bytes.count > 4_096 { encoder.removeAll(keepingCapacity: false) }
            if bytes.count > 0 {
                do {
                    try await self.stream.write(bytes)
                } catch {
                    self.writeFailed(error, batch)
                    return
                }
                self.broker.stats.bytesOut.add(UInt64(bytes.count))
            }
            guard self.wrote(batch, isLast: last) else { return }
        }
    }

    /// The bytes that write `batch`, and whether it ends with the last frame: a forwarder's encoded batch alone as it
    /// is (no copy), anything else encoded into `encoder` and taken from it.
    private func bytes(of batch: [Outbox.Item], using encoder: inout FrameEncoder) -> (Payload, isLast: Bool) {
        if batch.count == 1, case .encoded(let encoded) = batch[0].content { return (encoded, batch[0].isLast) }
        let last = self.encode(batch, into: &encoder)
        return (encoder.takeEncoded(), last)
    }

    /// Encodes `batch` up to its last frame, if it has one; true when it has.
    private func encode(_ batch: [Outbox.Item], into encoder: inout FrameEncoder) -> Bool {
        for item in batch {
            switch item.content {
            case .none: break
            case .one(let frame): self.encode(frame, into: &encoder)
            case .many(let frames): for frame in frames { self.encode(frame, into: &encoder) }
            case .encoded(let frames): encoder.append(encoded: frames)
            }
            if item.isLast { return true }
        }
        return false
    }

    /// `batch` is written: gives back what it cost. False after the last frame: the writer ends, and `writing` stays
    /// set, so nothing is written after it.
    private func wrote(_ batch: [Outbox.Item], isLast: Bool) -> Bool {
        for item in batch { self.outbox.written(item) }
        guard isLast else { return true }
        self.writerDone.release(1)
        return false
    }

    /// A write failed: the connection ends, and `writing` stays set, so no writer starts again for it.
    private func writeFailed(_ error: any Error, _ batch: [Outbox.Item]) {
        self.closer.close(.ioError("\(error)"))
        for item in batch { self.outbox.written(item) }
        self.outbox.close()
        self.writerDone.release(1)
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

/// One encoder per thread for ``Session/writeNow(first:)``, which encodes one frame and writes it at once: its
/// buffer is reused from write to write instead of allocated and freed for each (two allocations a request and two
/// a reply in request/reply). Safe to share across calls on one thread: the encoder checks that it owns its buffer
/// before each frame, so the bytes of a write still in progress (a write that re-enters on this thread, when a
/// failed write closes a connection whose reader then runs) are never overwritten; it moves to a fresh buffer then.
final class EncoderScratch {
    var encoder = FrameEncoder(reservingCapacity: 256)

    /// Each thread's encoder, released when the thread exits.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key) { box in
            if let box { Unmanaged<EncoderScratch>.fromOpaque(box).release() }
        }
        precondition(created == 0, "pthread_key_create failed for the encoder scratch: \(created)")
        return key
    }()

    /// The calling thread's encoder.
    @inline(__always)
    static func current() -> EncoderScratch {
        if let box = pthread_getspecific(Self.key) {
            return Unmanaged<EncoderScratch>.fromOpaque(box).takeUnretainedValue()
        }
        let box = EncoderScratch()
        pthread_setspecific(Self.key, Unmanaged.passRetained(box).toOpaque())
        return box
    }
}
