import SluiceChannels
import SluiceIO
import SluiceWire
import Synchronization

/// The engine under ``SluiceClient``: one socket, one reader task, one writer task, and the tables that connect
/// callers to answers.
///
/// ```text
///  callers ──frames──▶ outbound (bounded MPSC) ──▶ writer ──▶ socket (every ready frame, one write)
///     ▲                                                          │
///     │ AnswerSlot (Oneshot) by request id                       ▼
///     └──────────────── reader ◀──────────────────────────── socket
///                         │ MSG / LAGGED by subscription id
///                         ├──▶ subscriptions and consumers (bounded MPSC each)
///                         └──▶ watches (Watch: only the newest value)
/// ```
///
/// Both tasks run on the socket's event loop. The reader is the only task that delivers to subscriptions and
/// resolves waiters; the routing tables live in one `Mutex` because callers add and remove entries from their own
/// tasks. When the connection ends (GOODBYE, a closing ERROR, end of stream, an I/O or decoding failure),
/// ``finish(_:)`` fails every waiter with that reason, drops every route (so subscription sequences end after
/// what they buffered), and closes the outbound channel so later calls fail at once.
final class Connection: Sendable {
    /// The socket; its loop runs both tasks.
    let stream: TCPStream
    /// Frames for the writer. Bounded: a caller publishing faster than the socket drains waits here, which is
    /// the client's backpressure. Held by callers (through this class) and drained by the writer alone.
    let outbound: MPSC<Frame>.Sender
    /// The writer's end of `outbound`; ``finish(_:)`` closes it so that sends fail once the connection is over.
    private let outboundReceiver: MPSC<Frame>.Receiver
    /// Everything callers and the reader share.
    private let state = Locked(State())
    /// Resolved by the reader with the first frame (WELCOME or ERROR), or by ``finish(_:)``.
    let handshake = AnswerSlot()
    /// The reader and writer tasks, for ``close(timeout:)`` and ``abort()``.
    private let tasks = Locked<(reader: Task<Void, Never>?, writer: Task<Void, Never>?)>((nil, nil))

    /// Frames the writer may hold queued before callers wait.
    static let outboundCapacity = 1_024
    /// The largest frame this client accepts from a server; the server never sends more than its own maximum
    /// (at most 64 MiB) plus 64 bytes.
    static let maxIncomingFrameSize = (64 << 20) + 64

    /// Where a subscription id's deliveries go.
    enum Route: Sendable {
        /// A SUB (``SluiceClient/subscribe(_:queueGroup:bufferSize:)`` and ``SluiceClient/replies(_:queueGroup:bufferSize:)``).
        case subject(MPSC<Delivery>.Sender)
        /// A CONSUME.
        case queue(MPSC<Frame.Message>.Sender)
        /// A WATCH: the newest value only; nil until the first VALUE.
        case watch(Watch<KeyValue?>.Sender)
    }

    /// What the reader hands a SUB's channel.
    enum Delivery: Sendable {
        case message(Frame.Message)
        case lagged(UInt64)
    }

    /// The shared tables.
    private struct State {
        /// The last request id handed out (ids wrap and skip 0 and ids still waiting).
        var lastRequestID: UInt32 = 0
        /// The last subscription id handed out.
        var lastSubscriptionID: UInt32 = 0
        /// Calls waiting for an answer, by request id.
        var waiting: [UInt32: AnswerSlot] = [:]
        /// ``ping()`` calls waiting for a PONG, oldest first (PONGs come back in order).
        var pings: [AnswerSlot] = []
        /// Subscriptions, consumers and watches, by subscription id.
        var routes: [UInt32: Route] = [:]
        /// Set once, when the connection has ended.
        var end: SluiceError.ConnectionEnd?
        /// Set by ``close(timeout:)``: the end is then reported as ``SluiceError/ConnectionEnd/closedByClient``.
        var closing = false
    }

    init(stream: TCPStream) {
        self.stream = stream
        (self.outbound, self.outboundReceiver) = MPSC<Frame>.channel(capacity: Self.outboundCapacity)
    }

    var loop: EventLoop { self.stream.loop }

    /// Starts the writer and the reader on the socket's loop.
    func start() {
        let writer = Task(executorPreference: self.loop) { await self.runWriter() }
        let reader = Task(executorPreference: self.loop) { await self.runReader() }
        self.tasks.withLock { $0 = (reader, writer) }
    }

    // MARK: - Calls

    /// Why the connection ended, or what it will be called if it ends now.
    var endReason: SluiceError.ConnectionEnd {
        self.state.withLock { $0.end ?? ($0.closing ? .closedByClient : .endOfStream) }
    }

    /// Whether ``close(timeout:)`` was called or the connection ended.
    var isOver: Bool { self.state.withLock { $0.end != nil || $0.closing } }

    /// Queues `frame` for the writer, waiting while the queue is full.
    ///
    /// ## Errors
    /// ``SluiceError/connectionClosed(_:)`` once the connection is over; `CancellationError`.
    func send(_ frame: Frame) async throws {
        do {
            try await self.outbound.send(frame)
        } catch is SendError<Frame> {
            throw SluiceError.connectionClosed(self.endReason)
        }
    }

    /// A fresh subscription id.
    func nextSubscriptionID() -> UInt32 {
        self.state.withLock { state in
            repeat {
                state.lastSubscriptionID &+= 1
            } while state.lastSubscriptionID == 0
                || state.routes[state.lastSubscriptionID] != nil
            return state.lastSubscriptionID
        }
    }

    /// Sends the frame `make` builds with a fresh request id, and waits for the answer.
    ///
    /// The waiter is registered before the frame is queued, so the answer cannot overtake it. An ERROR answer is
    /// thrown as ``SluiceError/server(code:message:)``.
    ///
    /// - Parameter timeout: if set, the call fails with `TIMEOUT` when no answer came by then (a backstop for a
    ///   server that never answers; requests carry their own timeout to the server).
    func call(timeout: Duration? = nil, _ make: (UInt32) -> Frame) async throws -> Frame {
        let slot = AnswerSlot()
        let id = try self.state.withLock { state throws(SluiceError) -> UInt32 in
            if let end = state.end { throw .connectionClosed(end) }
            if state.closing { throw .connectionClosed(.closedByClient) }
            repeat {
                state.lastRequestID &+= 1
            } while state.lastRequestID == 0
                || state.waiting[state.lastRequestID] != nil
            state.waiting[state.lastRequestID] = slot
            return state.lastRequestID
        }
        do {
            try await self.send(make(id))
        } catch {
            self.forget(id)
            throw error
        }
        var backstop: Task<Void, Never>?
        if let timeout {
            backstop = Task(executorPreference: self.loop) {
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                slot.resolve(.failure(.server(code: .timeout, message: "no answer from the server within \(timeout)")))
            }
        }
        defer { backstop?.cancel() }
        let answer: Answer
        do {
            answer = try await slot.value()
        } catch {
            self.forget(id)
            throw error
        }
        self.forget(id)
        let frame = try answer.get()
        if case .error(let report) = frame {
            throw SluiceError.server(code: report.code, message: report.message)
        }
        return frame
    }

    private func forget(_ id: UInt32) {
        _ = self.state.withLock { $0.waiting.removeValue(forKey: id) }
    }

    /// Sends PING and waits for the PONG.
    func ping() async throws {
        let slot = AnswerSlot()
        try self.state.withLock { state throws(SluiceError) in
            if let end = state.end { throw .connectionClosed(end) }
            state.pings.append(slot)
        }
        try await self.send(.ping)
        _ = try await slot.value().get()
    }

    // MARK: - Routes

    /// Registers where subscription `id`'s deliveries go. Call before sending the SUB, CONSUME or WATCH.
    func addRoute(_ id: UInt32, _ route: Route) throws(SluiceError) {
        try self.state.withLock { state throws(SluiceError) in
            if let end = state.end { throw .connectionClosed(end) }
            state.routes[id] = route
        }
    }

    /// Forgets subscription `id`: later deliveries for it are dropped (queue deliveries are NACKed).
    @discardableResult
    func removeRoute(_ id: UInt32) -> Route? {
        self.state.withLock { $0.routes.removeValue(forKey: id) }
    }

    /// A subscription's owner went away without unsubscribing: forget it and tell the server, without waiting.
    func abandon(_ id: UInt32) {
        guard self.removeRoute(id) != nil, !self.isOver else { return }
        // Request id 0: the OK (or UNKNOWN_ID, if an UNSUB already went) answers nobody and is ignored.
        _ = self.outbound.trySend(.unsub(Frame.Unsubscribe(requestID: 0, subscriptionID: id)))
    }

    // MARK: - Closing

    /// Sends GOODBYE, then waits until the server has closed the connection (it flushes what it queued for us
    /// first), at most `timeout`; after that the socket is closed from this side.
    func close(timeout: Duration) async {
        let first = self.state.withLock { state -> Bool in
            defer { state.closing = true }
            return !state.closing && state.end == nil
        }
        guard let reader = self.tasks.withLock({ $0.reader }) else { return }
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                if first { try? await self.outbound.send(.goodbye) }
                await reader.value
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            // The server did not close in time: close from this side, which also ends the reader.
            if await group.next() == false { self.abort() }
            group.cancelAll()
        }
        await self.tasks.withLock({ $0.writer })?.value
    }

    /// Ends the connection now: closes the socket and stops both tasks.
    func abort() {
        self.state.withLock { $0.closing = true }
        self.stream.close()
        let (reader, writer) = self.tasks.withLock { $0 }
        reader?.cancel()
        writer?.cancel()
        self.outboundReceiver.close()
    }

    /// Records the end (the first one wins), fails every waiter with it and drops every route.
    func finish(_ end: SluiceError.ConnectionEnd) {
        let (reason, slots, routes) = self.state.withLock { state in
            if state.end == nil { state.end = state.closing ? .closedByClient : end }
            let slots = Array(state.waiting.values) + state.pings
            state.waiting.removeAll()
            state.pings.removeAll()
            let routes = state.routes
            state.routes.removeAll()
            return (state.end!, slots, routes)
        }
        self.outboundReceiver.close()
        let failure = Answer.failure(.connectionClosed(reason))
        self.handshake.resolve(failure)
        for slot in slots { slot.resolve(failure) }
        // Dropping the routes drops the channels' senders: each subscription sequence ends after what it buffered.
        _ = consume routes
    }

    // MARK: - Writer

    /// Drains the outbound channel: every frame ready, encoded into one buffer, one write. Stops after GOODBYE.
    private func runWriter() async {
        var batch: [Frame] = []
        batch.reserveCapacity(256)
        var encoder = FrameEncoder(reservingCapacity: 16 * 1024)
        while true {
            batch.removeAll(keepingCapacity: true)
            guard let count = try? await self.outboundReceiver.recv(upTo: 256, into: &batch), count > 0 else { return }
            var last = false
            for frame in batch {
                // Callers check names and sizes before queueing, so a frame that cannot be encoded is a bug in
                // this client; it is dropped rather than corrupting the stream.
                try? encoder.encode(frame)
                if case .goodbye = frame {
                    last = true
                    break
                }
            }
            if !encoder.isEmpty {
                let bytes = encoder.bytes
                encoder.removeAll()
                do {
                    try await self.stream.write(bytes)
                } catch {
                    // The reader sees the same failure (or the end of stream) and finishes the connection.
                    self.outboundReceiver.close()
                    return
                }
            }
            if last {
                // We send nothing after GOODBYE; calls made from now on fail at once.
                self.outboundReceiver.close()
                return
            }
        }
    }

    // MARK: - Reader

    /// Reads and routes frames until the connection ends, then ``finish(_:)``es it and closes the socket.
    private func runReader() async {
        var decoder = FrameDecoder(maxFrameSize: Self.maxIncomingFrameSize, initialCapacity: 16 * 1024)
        var welcomed = false
        var end: SluiceError.ConnectionEnd
        reading: while true {
            let bytes: [UInt8]
            do {
                bytes = try await self.stream.read(maxBytes: 64 * 1024)
            } catch {
                end = self.isOver ? .closedByClient : .failure("\(error)")
                break
            }
            if bytes.isEmpty {
                end = .endOfStream
                break
            }
            decoder.append(bytes)
            do {
                while let frame = try decoder.next() {
                    if !welcomed {
                        switch frame {
                        case .welcome:
                            welcomed = true
                            self.handshake.resolve(.success(frame))
                            continue
                        case .error(let report):
                            self.handshake.resolve(.failure(.server(code: report.code, message: report.message)))
                            end = .error(code: report.code, message: report.message)
                        default:
                            end = .failure("the server answered HELLO with \(frame.opcode)")
                        }
                        break reading
                    }
                    if let over = await self.route(frame) {
                        end = over
                        break reading
                    }
                }
            } catch {
                end = .failure("the server sent a malformed frame: \(error)")
                break
            }
        }
        self.finish(end)
        self.stream.close()
    }

    /// Handles one frame after WELCOME; returns how the connection ends if this frame ends it.
    private func route(_ frame: Frame) async -> SluiceError.ConnectionEnd? {
        switch frame {
        case .ok(let id):
            self.resolve(id, frame)
        case .error(let report):
            if report.code.closesConnection { return .error(code: report.code, message: report.message) }
            self.resolve(report.requestID, frame)
        case .statsReply(let reply):
            self.resolve(reply.requestID, frame)
        case .response(let response):
            self.resolve(response.requestID, frame)
        case .value(let value):
            switch value.target {
            case .get(let id):
                self.resolve(id, frame)
            case .watch(let id):
                if case .watch(let sender) = self.state.withLock({ $0.routes[id] }) {
                    sender.send(
                        KeyValue(
                            key: value.key,
                            revision: value.revision,
                            headers: value.headers,
                            payload: value.payload.compacted()
                        )
                    )
                }
            }
        case .msg(let message):
            return await self.deliver(message)
        case .lagged(let lagged):
            if case .subject(let sender) = self.state.withLock({ $0.routes[lagged.subscriptionID] }) {
                return await self.hand(.lagged(lagged.missed), to: sender, id: lagged.subscriptionID)
            }
        case .ping:
            // If the outbound queue is full we are sending anyway, and anything we send counts as life; never
            // wait here, or a full queue could stall the reader.
            _ = self.outbound.trySend(.pong)
        case .pong:
            let slot = self.state.withLock { $0.pings.isEmpty ? nil : $0.pings.removeFirst() }
            slot?.resolve(.success(frame))
        case .goodbye:
            return .goodbye
        default:
            return .failure("the server sent an unexpected \(frame.opcode) frame")
        }
        return nil
    }

    /// Resolves the waiter for request id `id`, if there is one (answers to fire-and-forget frames have none).
    private func resolve(_ id: UInt32, _ frame: Frame) {
        guard id != 0, let slot = self.state.withLock({ $0.waiting.removeValue(forKey: id) }) else { return }
        slot.resolve(.success(frame))
    }

    /// Routes a MSG to its subscription or consumer.
    private func deliver(_ message: Frame.Message) async -> SluiceError.ConnectionEnd? {
        let id = message.subscriptionID
        switch self.state.withLock({ $0.routes[id] }) {
        case .subject(let sender):
            return await self.hand(.message(message), to: sender, id: id)
        case .queue(let sender):
            do {
                try await sender.send(message)
            } catch is CancellationError {
                return .closedByClient
            } catch {
                self.abandon(id)  // the UNSUB makes the server deliver this message again
            }
        case .watch, nil:
            // Unsubscribed (or never ours). A queue message goes back at once rather than wait for the UNSUB.
            if case .queue(let deliveryID, _) = message.delivery {
                _ = self.outbound.trySend(.nack(Frame.Acknowledgement(deliveryID: deliveryID)))
            }
        }
        return nil
    }

    /// Hands a delivery to a SUB's channel, waiting while it is full: a slow consumer of the subscription pushes
    /// back on this reader, so the server's buffer (not this client's memory) absorbs the difference and the server
    /// reports what it had to skip with LAGGED.
    private func hand(
        _ delivery: Delivery,
        to sender: MPSC<Delivery>.Sender,
        id: UInt32
    ) async -> SluiceError.ConnectionEnd? {
        do {
            try await sender.send(delivery)
        } catch is CancellationError {
            return .closedByClient
        } catch {
            self.abandon(id)  // its consumer went away without unsubscribing
        }
        return nil
    }
}
