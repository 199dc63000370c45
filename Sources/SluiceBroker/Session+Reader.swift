import SluiceChannels
import SluiceIO
import SluiceWire
import Synchronization

/// Stops the read loop; the reason is already recorded with the closer.
struct SessionEnded: Error {}

/// What a connection's reader keeps between its turns: its subscriptions and routing state, the bytes of a
/// frame not yet complete, and a frame decoded by a read on the loop's thread that needs a turn (``unhandled``).
struct ReaderState: ~Copyable, Sendable {
    var reader: Reader
    var decoder: FrameDecoder
    /// A frame that ``Session/readParked()`` decoded but could not handle without a task: the next turn handles it
    /// first, before the frames after it in ``decoder``.
    var unhandled: Frame? = nil

    init(session: Session) {
        self.reader = Reader(session: session)
        self.decoder = FrameDecoder(maxFrameSize: session.configuration.maxFrameSize)
    }
}

extension Session {
    /// One turn of the connection's reader: a task on the connection's loop that reads, decodes and routes frames.
    ///
    /// A turn that finds the socket empty stores its state, leaves a read wait without a task (``park(_:)``), and
    /// ends. Data that arrives then is read on the loop's thread, in the wait's action, without a task
    /// (``readParked()``), as long as every frame has a handler that needs no suspension (PUB without OK, REQUEST,
    /// REPLY): the connections of a request/reply or a publisher cost no task switch per message. A frame that needs
    /// one (SUB, an OK to send, a full outbox, a congested subject...) starts a turn. A turn that just handled such
    /// a frame waits for the next bytes in its task instead of parking, since more are likely (a task per burst
    /// would cost a task's start and its allocations each time), until the sweeper finds the connection quiet
    /// (``retireReaderIfWaiting()``). So an idle connection holds no task, and none of the memory a task keeps (its
    /// allocator keeps the slabs of its deepest moment, ~8 KB after a HELLO, for as long as it lives). When the
    /// connection ends, the turn undoes its subscriptions and closes it (``finish()``).
    func readerTurn() async {
        guard var state = self.readerState.withLock({ $0.take() }) else { return }  // the connection has ended
        self.broker.stats.readerTasks.wrappingAdd(1, ordering: .relaxed)
        defer { self.broker.stats.readerTasks.wrappingSubtract(1, ordering: .relaxed) }
        var idle = false
        do {
            // One cancellation handler for the reads' waits (the closer cancels this task to end the connection),
            // not one per wait: see `TCPStream.withCancellationHandler(for:_:)`.
            try await self.stream.withCancellationHandler(for: .read) { () async throws -> Void in
                idle = try await self.read(into: &state)
            }
        } catch {
            self.readFailed(error)
        }
        if idle && !Task.isCancelled {
            self.closer.detach()
            // Swapped out, not consumed: the read loop's closure captured `state`.
            var parked = ReaderState(session: self)
            swap(&parked, &state)
            self.park(parked)
            return
        }
        await state.reader.cleanUp()
        await self.finish()
    }

    /// Records why reading stopped (a protocol error, an I/O error), unless the reason is recorded already.
    private func readFailed(_ error: any Error) {
        switch error {
        case let error as WireError:
            self.broker.stats.protocolErrors.add()
            self.closer.close(.protocolError(error.code, error.description))
        case is SessionEnded, is CancellationError, is OutboxClosed:
            break  // the reason is recorded (closed from elsewhere, or the writer failed)
        default:
            self.closer.close(.ioError("\(error)"))
        }
    }

    /// Stores the reader's state and leaves a read wait without a task: the socket's next bytes are read by
    /// ``readParked()`` (at once, on this thread, if there are some already).
    private func park(_ state: consuming ReaderState) {
        self.store(state)
        self.stream.whenReadable { [self] in self.readParked() }
        // A close that came before the wait was stored found nothing to end: end it now (whoever takes the wait
        // first goes on, and finds the reason).
        if self.closer.reason != nil { self.stream.endReadWait() }
    }

    /// Keeps the reader's state for the next turn, or the next ``readParked()``.
    private func store(_ state: consuming ReaderState) {
        var kept: ReaderState? = consume state
        self.readerState.withLock { $0 = kept.take() }
    }

    /// The parked reader's wait is over: reads and handles the socket's bytes here, on the loop's thread, while every
    /// frame can be handled without a suspension, then parks again. Anything else goes on in a turn
    /// (``startReaderTurn()``): a frame that needs a task, a spent budget, a congested subject, the end of the
    /// connection, a wait ended from another thread (a close).
    func readParked() {
        guard self.stream.loop.isCurrent, self.closer.reason == nil,
            var state = self.readerState.withLock({ $0.take() })
        else { return self.startReaderTurn() }
        while true {
            var needsTurn = true
            do {
                needsTurn = try self.readWithoutSuspending(into: &state)
            } catch {
                self.readFailed(error)
            }
            self.store(state)
            if needsTurn || self.closer.reason != nil { return self.startReaderTurn() }
            // The socket is empty: wait without a task, unless bytes came in meanwhile; then read on.
            if self.stream.whenReadableLater({ [self] in self.readParked() }) {
                if self.closer.reason != nil { self.stream.endReadWait() }
                return
            }
            guard let next = self.readerState.withLock({ $0.take() }) else { return }
            state = next
        }
    }
}

extension Session {
    /// The read loop of one reader turn, on its state as an `inout` parameter (a variable the loop's closure
    /// captured would be checked for exclusive access at run time on every use: ~4% of the broker's instructions in
    /// fan-out). Returns true when it stopped idle, false when the connection ends.
    ///
    /// It first handles what a read on the loop's thread left (``ReaderState/unhandled``, then the frames buffered
    /// after it). When the socket is empty, it waits in this task if the last bytes needed a task (more such frames
    /// are likely), and stops idle otherwise, or in the turn that began before the handshake.
    nonisolated(nonsending) private func read(into state: inout ReaderState) async throws -> Bool {
        let handshakeTurn = !self.welcomed.load(ordering: .relaxed)
        var budget = Reader.framesPerTurn
        var usedTask = false
        // A turn cancelled before it ran (the connection was closed meanwhile) handles nothing more.
        if let frame = state.unhandled.take(), !Task.isCancelled {
            try await state.reader.handle(frame)
            usedTask = true
        }
        if Task.isCancelled { return false }
        try await self.route(&state, budget: &budget, usedTask: &usedTask)
        while !Task.isCancelled {
            // The bytes arrive in a pooled buffer that is valid only inside the closure: the decoder copies them once
            // into its own buffer, which the frames' payloads then share.
            var ready = try self.stream.readIfReady { bytes in
                state.decoder.append(bytes)
                return bytes.count
            }
            if ready == nil {
                guard usedTask && !handshakeTurn else { return true }
                do {
                    ready = try await self.stream.read { bytes in
                        state.decoder.append(bytes)
                        return bytes.count
                    }
                } catch is CancellationError where !Task.isCancelled {
                    // The wait was ended without cancelling the task: the sweeper retires a quiet reader.
                }
            }
            guard let count = ready else { return true }
            guard count > 0 else {
                self.closer.close(.endOfStream)
                return false
            }
            self.heard(count)
            usedTask = false
            try await self.route(&state, budget: &budget, usedTask: &usedTask)
        }
        return false
    }

    /// Decodes and handles the frames buffered in `state`; `usedTask` is set when one needed the async handler.
    nonisolated(nonsending) private func route(
        _ state: inout ReaderState,
        budget: inout Int,
        usedTask: inout Bool
    ) async throws {
        while true {
            // PUBs first, as their own struct (see `FrameDecoder.nextPublish()`); most need no answer and no
            // suspension. Anything else comes out of `next()`.
            if let publish = try state.decoder.nextPublish() {
                if !state.reader.publishedWithoutAnswer(publish) {
                    try await state.reader.handle(.pub(publish))
                    usedTask = true
                }
            } else if let frame = try state.decoder.next() {
                if !state.reader.handledAtOnce(frame) {
                    try await state.reader.handle(frame)
                    usedTask = true
                }
            } else {
                break
            }
            // A read that finds data does not suspend, so a client that never stops sending would keep this
            // loop's thread: give the other tasks on it a turn every so often (Tokio's coop budget).
            budget -= 1
            if budget == 0 {
                budget = Reader.framesPerTurn
                state.reader.flushPublishes()
                await Task.yield()
                await state.reader.stallWhileCongested()
            }
        }
        state.reader.flushPublishes()
        await state.reader.stallWhileCongested()
        state.decoder.releaseBufferIfIdle()
    }

    /// ``read(into:)`` on the loop's thread, without a task (``readParked()``): reads and handles frames until the
    /// socket is empty. True when a turn must go on from here: a frame that needs the async handler (kept in
    /// ``ReaderState/unhandled``), the budget spent, a congested subject, the end of the stream.
    private func readWithoutSuspending(into state: inout ReaderState) throws -> Bool {
        var budget = Reader.framesPerTurn
        while true {
            let ready = try self.stream.readIfReady { bytes in
                state.decoder.append(bytes)
                return bytes.count
            }
            guard let count = ready else { return false }
            guard count > 0 else {
                self.closer.close(.endOfStream)
                return true
            }
            self.heard(count)
            while true {
                if let publish = try state.decoder.nextPublish() {
                    if !state.reader.publishedWithoutAnswer(publish) {
                        state.unhandled = .pub(publish)
                        return true
                    }
                } else if let frame = try state.decoder.next() {
                    if !state.reader.handledAtOnce(frame) {
                        state.unhandled = frame
                        return true
                    }
                } else {
                    break
                }
                budget -= 1
                if budget == 0 { return true }
            }
            state.reader.flushPublishes()
            if !state.reader.congested.isEmpty { return true }
            // A small read buffer is kept for the next bytes (a block per read would cost two allocations a message
            // in request/reply); the sweeper lets it go once the connection is quiet (``retireReaderIfWaiting()``).
            // One that grew for a large frame goes now.
            state.decoder.releaseBufferIfIdle(keepingUpTo: Reader.keptReadBuffer)
        }
    }

    /// The client sent `count` bytes.
    private func heard(_ count: Int) {
        self.lastHeard.store(Monotonic.now, ordering: .relaxed)
        self.pingedAt.store(0, ordering: .relaxed)
        self.broker.stats.bytesIn.add(UInt64(count))
    }
}

/// The reader's state: the connection's subscriptions, and the handler of every client frame.
struct Reader: Sendable {
    enum Subscription: Sendable {
        /// SUB: the pattern's member entry and the task forwarding its Broadcast into the outbox (none for a queue
        /// group member: the group's forwarder posts to it).
        case subject(pattern: String, group: String?, member: Member, forwarder: Task<Void, Never>?)
        /// CONSUME on a queue.
        case consumer(WorkQueue)
        /// WATCH: the task forwarding the key's Watch into the outbox.
        case watch(forwarder: Task<Void, Never>)
    }

    /// Deliveries a forwarder takes from its Broadcast at once (a quarter of the default subject buffer): one wake-up
    /// and one outbox item for all of them.
    static let forwardBatch = 256

    /// Frames handled before the reader yields its thread.
    static let framesPerTurn = 128

    /// The largest read buffer a reader on the loop's thread keeps between reads (the decoder's default first
    /// buffer is 4 KiB; one that grew past this for a large frame is let go at once).
    static let keptReadBuffer = 16 * 1024

    /// Publishes not yet handed to the subject table: consecutive PUBs are routed together, one lock per batch.
    static let publishBatch = 64

    let session: Session
    var subscriptions: [UInt32: Subscription] = [:]
    /// PUBs validated and waiting to be routed, in arrival order; flushed before any other frame is handled, when a
    /// read's frames are done, before an OK for a PUB, and at `publishBatch`.
    var pendingPublishes: [Delivery] = []
    /// Subject channels this connection published to whose slowest subscriber is far behind (see
    /// ``stallWhileCongested()``); empty almost always.
    var congested: [Broadcast<Delivery>.Sender] = []
    /// After a stall that reached `publishStall` without the subscriber catching up, this publisher is not stalled
    /// again before this time (monotonic nanoseconds): a stuck subscriber costs it at most one stall per second.
    var stallsResumeAt: UInt64 = 0
    var welcomed = false
    /// The subject of the last PUB that passed validation (see ``publishedWithoutAnswer(_:)``).
    var lastValidSubject: String? = nil
    /// The queue of the last PUSH that passed validation.
    var lastValidQueue: String? = nil
    /// The subject of the last REQUEST that passed validation (see ``handledAtOnce(_:)``).
    var lastValidRequestSubject: String? = nil

    init(session: Session) {
        self.session = session
    }

    private var broker: Broker { self.session.broker }
    private var outbox: Outbox { self.session.outbox }

    // MARK: - Answers

    nonisolated(nonsending) private func answer(_ frame: Frame) async throws {
        try await self.outbox.answer(frame)
    }

    nonisolated(nonsending) private func ok(_ requestID: UInt32) async throws {
        try await self.answer(.ok(requestID: requestID))
    }

    nonisolated(nonsending) private func fail(_ requestID: UInt32, _ code: ErrorCode, _ message: String) async throws {
        try await self.answer(.error(Frame.ErrorReport(requestID: requestID, code: code, message: message)))
    }

    /// Answers `LIMIT_REACHED`: a new key or queue would pass the server's limit on their number.
    nonisolated(nonsending) private func limitReached(_ requestID: UInt32, _ what: String, _ limit: Int) async throws {
        try await self.fail(requestID, .limitReached, "the server keeps at most \(limit) \(what)")
    }

    /// Ends the connection with a connection-level error.
    private func end(_ reason: CloseReason) throws -> Never {
        self.session.closer.close(reason)
        throw SessionEnded()
    }

    /// Validates `name`; on failure answers ERROR and returns false.
    nonisolated(nonsending) private func valid(_ name: String, as kind: NameKind, _ requestID: UInt32) async throws
        -> Bool
    {
        do throws(NameError) {
            try Subject.validate(name, as: kind)
            return true
        } catch {
            try await self.fail(requestID, error.code, error.description)
            return false
        }
    }

    /// Checks a new subscription id: unused and under the limit; on failure answers ERROR and returns false.
    nonisolated(nonsending) private func canSubscribe(_ subscriptionID: UInt32, _ requestID: UInt32) async throws
        -> Bool
    {
        if self.subscriptions[subscriptionID] != nil {
            try await self.fail(requestID, .duplicateID, "subscription id \(subscriptionID) is in use")
            return false
        }
        if self.subscriptions.count >= self.session.configuration.maxSubscriptions {
            try await self.fail(
                requestID,
                .tooManySubscriptions,
                "at most \(self.session.configuration.maxSubscriptions) subscriptions per connection"
            )
            return false
        }
        return true
    }

    // MARK: - Frames

    nonisolated(nonsending) mutating func handle(_ frame: Frame) async throws {
        guard self.welcomed else { return try await self.handshake(frame) }
        if case .pub(let publish) = frame { return try await self.publish(publish) }
        // Everything else sees the effects of every PUB before it.
        self.flushPublishes()
        switch frame {
        case .ping:
            try await self.answer(.pong)
        case .pong:
            break
        case .goodbye:
            try self.end(.goodbye)
        case .stats(let requestID):
            try await self.answer(
                .statsReply(Frame.StatsReply(requestID: requestID, entries: self.broker.statsEntries()))
            )
        case .pub:
            break  // handled above
        case .sub(let subscribe):
            try await self.subscribe(subscribe)
        case .unsub(let unsubscribe):
            try await self.unsubscribe(unsubscribe)
        case .push(let push):
            try await self.push(push)
        case .consume(let consume):
            try await self.consume(consume)
        case .ack(let settle):
            try await self.settle(settle, requeue: false)
        case .nack(let settle):
            try await self.settle(settle, requeue: true)
        case .set(let set):
            guard try await self.valid(set.key, as: .key, set.requestID) else { return }
            guard self.broker.keys.set(set.key, headers: set.headers, payload: set.payload.compacted()) != nil else {
                try await self.limitReached(set.requestID, "keys", self.session.configuration.maxKeys)
                return
            }
            if set.ackWanted { try await self.ok(set.requestID) }
        case .get(let get):
            guard try await self.valid(get.key, as: .key, get.requestID) else { return }
            let value = self.broker.keys.get(get.key)
            try await self.answer(
                .value(
                    Frame.Value(
                        target: .get(requestID: get.requestID),
                        key: get.key,
                        revision: value.revision,
                        headers: value.headers,
                        payload: value.payload
                    )
                )
            )
        case .watch(let watch):
            try await self.watch(watch)
        case .request(let request):
            try await self.request(request)
        case .reply(let reply):
            let known = self.broker.requests.reply(
                reply.replyID,
                from: self.session.id,
                headers: reply.headers,
                payload: reply.payload.compacted()
            )
            if !known {
                try await self.fail(reply.requestID, .unknownID, "no request waits for reply id \(reply.replyID)")
            } else if reply.ackWanted {
                try await self.ok(reply.requestID)
            }
        case .hello:
            try self.end(.protocolError(.unexpectedFrame, "HELLO was already accepted"))
        case .welcome, .ok, .error, .statsReply, .msg, .lagged, .value, .response:
            try self.end(.protocolError(.unexpectedFrame, "\(frame.opcode) is sent by the server, not the client"))
        }
    }

    nonisolated(nonsending) private mutating func handshake(_ frame: Frame) async throws {
        guard case .hello(let hello) = frame else {
            try self.end(.protocolError(.helloRequired, "the first frame must be HELLO, not \(frame.opcode)"))
        }
        let configuration = self.session.configuration
        guard hello.version == Frame.protocolVersion else {
            try self.end(
                .refused(.unsupportedVersion, "this server speaks protocol version \(Frame.protocolVersion) only")
            )
        }
        if let token = configuration.token, hello.token != token {
            try self.end(.refused(.authenticationFailed, hello.token == nil ? "a token is required" : "wrong token"))
        }
        self.welcomed = true
        self.session.welcomed.store(true, ordering: .relaxed)
        try await self.answer(
            .welcome(
                Frame.Welcome(
                    maxFrameSize: UInt32(clamping: configuration.maxFrameSize),
                    idleTimeoutMilliseconds: configuration.idleTimeout.clampedMilliseconds,
                    maxInflightRequests: UInt32(clamping: configuration.maxInflightRequests),
                    maxSubscriptions: UInt32(clamping: configuration.maxSubscriptions),
                    serverName: configuration.serverName
                )
            )
        )
        self.broker.log(
            .debug,
            "conn.hello",
            ["id": self.session.id, "client": hello.clientName]
        )
    }

    // MARK: Subjects

    nonisolated(nonsending) private mutating func publish(_ publish: Frame.Publish) async throws {
        guard try await self.valid(publish.subject, as: .subject, publish.requestID) else { return }
        self.queue(publish)
        if publish.ackWanted {
            self.flushPublishes()
            try await self.ok(publish.requestID)
        }
    }

    /// The common case of ``handle(_:)``, without a suspension or an async call: a PUB after the handshake that wants
    /// no OK, to a valid subject. True when it was that and is queued for routing; false for ``handle(_:)`` to deal
    /// with (a PUB that wants an answer: OK, or ERROR for its subject; or one before the handshake).
    mutating func publishedWithoutAnswer(_ publish: Frame.Publish) -> Bool {
        guard self.welcomed, !publish.ackWanted else { return false }
        // A publisher mostly repeats its subject: one validation per new subject, not per message.
        if publish.subject != self.lastValidSubject {
            guard (try? Subject.validate(publish.subject, as: .subject)) != nil else { return false }
            self.lastValidSubject = publish.subject
        }
        self.queue(publish)
        return true
    }

    /// Adds a valid PUB to the ones waiting to be routed; routes them at ``publishBatch``.
    private mutating func queue(_ publish: Frame.Publish) {
        self.pendingPublishes.append(
            Delivery(subject: publish.subject, headers: publish.headers, payload: publish.payload)
        )
        if self.pendingPublishes.count >= Reader.publishBatch { self.flushPublishes() }
    }

    /// Routes the pending PUBs, in order.
    mutating func flushPublishes() {
        guard !self.pendingPublishes.isEmpty else { return }
        self.broker.subjects.publish(self.pendingPublishes[...], congested: &self.congested)
        self.broker.stats.published.add(UInt64(self.pendingPublishes.count))
        self.pendingPublishes.removeAll(keepingCapacity: self.pendingPublishes.count <= 8)
    }

    /// Pauses this publisher (it reads no more from its socket) while a subject it published to has a subscriber
    /// more than three quarters of the buffer behind, until that subscriber is back within half of it, for at most
    /// `publishStall`; NATS stalls a fast producer the same way. The subscriber's forwarder gets the loop (or the
    /// other core) meanwhile, so a burst that would have overrun the buffer is delivered instead of lagged. Past
    /// the limit the subscriber lags (and gets LAGGED), and this publisher is not stalled again for a second.
    nonisolated(nonsending) mutating func stallWhileCongested() async {
        guard !self.congested.isEmpty else { return }
        defer { self.congested.removeAll() }
        let limit = self.session.configuration.publishStall
        let start = Monotonic.now
        guard limit > .zero, start >= self.stallsResumeAt else { return }
        let deadline = start + UInt64(limit.clampedMilliseconds) * 1_000_000
        self.broker.stats.publisherStalls.add()
        while !self.congested.allSatisfy(SubjectTable.hasDrained) {
            if Monotonic.now >= deadline {
                self.stallsResumeAt = Monotonic.now + 1_000_000_000
                return
            }
            // A forwarder on this loop runs now; one on the other loop gets this core while we sleep.
            await Task.yield()
            if self.congested.allSatisfy(SubjectTable.hasDrained) { break }
            do {
                try await Task.sleep(for: .microseconds(200))
            } catch {
                return  // the connection is ending
            }
        }
    }

    nonisolated(nonsending) private mutating func subscribe(_ subscribe: Frame.Subscribe) async throws {
        guard try await self.valid(subscribe.pattern, as: .pattern, subscribe.requestID) else { return }
        if let group = subscribe.queueGroup {
            guard try await self.valid(group, as: .queueGroup, subscribe.requestID) else { return }
        }
        guard try await self.canSubscribe(subscribe.subscriptionID, subscribe.requestID) else { return }
        let member = Member(
            session: self.session.id,
            subscriptionID: subscribe.subscriptionID,
            outbox: self.outbox,
            closer: self.session.closer
        )
        if let group = subscribe.queueGroup {
            self.broker.subjects.subscribe(
                subscribe.pattern,
                group: group,
                member: member,
                executor: self.session.stream.loop
            )
            try await self.ok(subscribe.requestID)
            self.subscriptions[subscribe.subscriptionID] = .subject(
                pattern: subscribe.pattern,
                group: group,
                member: member,
                forwarder: nil
            )
            return
        }
        let receiver = self.broker.subjects.subscribe(subscribe.pattern, member: member)
        try await self.ok(subscribe.requestID)
        let forwarder = Task(executorPreference: self.session.stream.loop) { [outbox, broker] in
            await Reader.forward(receiver, subscriptionID: subscribe.subscriptionID, to: outbox, stats: broker.stats)
        }
        self.subscriptions[subscribe.subscriptionID] = .subject(
            pattern: subscribe.pattern,
            group: nil,
            member: member,
            forwarder: forwarder
        )
    }

    /// Moves a subscription's messages from its pattern's Broadcast into the outbox, waiting for room there; while
    /// it waits the subscriber falls behind in the Broadcast, and a LAGGED with the exact count follows.
    private static func forward(
        _ receiver: Broadcast<Delivery>.Receiver,
        subscriptionID: UInt32,
        to outbox: Outbox,
        stats: Stats
    ) async {
        var batch: [Delivery] = []
        while true {
            do {
                batch.removeAll(keepingCapacity: batch.count <= 8)  // an idle subscription keeps a few slots at most
                _ = try await receiver.recv(upTo: Reader.forwardBatch, into: &batch)
                // Encoded here, on the subscriber's loop, straight from the deliveries: no frame values, and the
                // writer writes the bytes as they are.
                var encoder = FrameEncoder(reservingCapacity: batch.count * (32 + (batch.first?.payload.count ?? 0)))
                for delivery in batch {
                    do throws(FrameEncodingError) {
                        try encoder.encodeMessage(
                            subscriptionID: subscriptionID,
                            subject: delivery.subject,
                            headers: delivery.headers,
                            payload: delivery.payload
                        )
                    } catch {
                        // The reader never routes a subject or headers that cannot be encoded; see `Session.encode`.
                    }
                }
                try await outbox.deliver(encoded: encoder.takeEncoded())
                stats.delivered.add(UInt64(batch.count))
            } catch Broadcast<Delivery>.RecvError.lagged(let missed) {
                stats.lagged.add(missed)
                do {
                    try await outbox.deliver(.lagged(Frame.Lagged(subscriptionID: subscriptionID, missed: missed)))
                } catch {
                    return
                }
            } catch {
                return  // closed, cancelled (UNSUB, disconnect) or the outbox is gone
            }
        }
    }

    nonisolated(nonsending) private mutating func unsubscribe(_ unsubscribe: Frame.Unsubscribe) async throws {
        guard let subscription = self.subscriptions.removeValue(forKey: unsubscribe.subscriptionID) else {
            try await self.fail(
                unsubscribe.requestID,
                .unknownID,
                "no subscription with id \(unsubscribe.subscriptionID)"
            )
            return
        }
        await self.end(subscription, id: unsubscribe.subscriptionID)
        try await self.ok(unsubscribe.requestID)
    }

    /// Undoes one subscription; returns once its forwarder has stopped, so no MSG for it follows.
    nonisolated(nonsending) private func end(_ subscription: Subscription, id: UInt32) async {
        switch subscription {
        case .subject(let pattern, let group, let member, let forwarder):
            if let group {
                self.broker.subjects.unsubscribe(pattern, group: group, member: member)
            } else {
                self.broker.subjects.unsubscribe(pattern, member: member)
            }
            self.broker.requests.responderGone(session: self.session.id, subscriptionID: id)
            forwarder?.cancel()
            await forwarder?.value
        case .consumer(let queue):
            queue.removeConsumer(ConsumerKey(session: self.session.id, subscriptionID: id))
        case .watch(let forwarder):
            forwarder.cancel()
            await forwarder.value
        }
    }

    /// Undoes every subscription and forgets the connection's requests, when the connection ends.
    nonisolated(nonsending) mutating func cleanUp() async {
        self.flushPublishes()
        let subscriptions = self.subscriptions
        self.subscriptions = [:]
        for (id, subscription) in subscriptions.sorted(by: { $0.key < $1.key }) {
            await self.end(subscription, id: id)
        }
        self.broker.requests.responderGone(session: self.session.id)
        self.broker.requests.requesterGone(session: self.session.id)
    }

    // MARK: Queues

    nonisolated(nonsending) private mutating func push(_ push: Frame.Push) async throws {
        // A producer mostly repeats its queue: one validation per new name.
        if push.queue != self.lastValidQueue {
            guard try await self.valid(push.queue, as: .queue, push.requestID) else { return }
            self.lastValidQueue = push.queue
        }
        guard let queue = self.broker.queues.queue(push.queue) else {
            try await self.limitReached(push.requestID, "queues", self.session.configuration.maxQueues)
            return
        }
        let message = QueuedMessage(headers: push.headers, payload: push.payload.compacted())
        if push.noWait {
            if case .failure = queue.sender.trySend(message) {
                try await self.fail(push.requestID, .queueFull, "queue \(push.queue) is full")
                return
            }
        } else {
            // Waits while the queue is full: this connection is not read meanwhile, so TCP pushes back.
            try await queue.sender.send(message)
        }
        self.broker.stats.pushed.add()
        if push.ackWanted { try await self.ok(push.requestID) }
    }

    nonisolated(nonsending) private mutating func consume(_ consume: Frame.Consume) async throws {
        guard try await self.valid(consume.queue, as: .queue, consume.requestID) else { return }
        let credit = min(Int(consume.credit), self.session.configuration.maxCredit)
        let key = ConsumerKey(session: self.session.id, subscriptionID: consume.subscriptionID)
        if let existing = self.subscriptions[consume.subscriptionID] {
            guard case .consumer(let queue) = existing, queue.name == consume.queue else {
                try await self.fail(
                    consume.requestID,
                    .duplicateID,
                    "subscription id \(consume.subscriptionID) is in use"
                )
                return
            }
            try await self.ok(consume.requestID)
            queue.addConsumer(key, outbox: self.outbox, closer: self.session.closer, credit: credit)
            return
        }
        guard try await self.canSubscribe(consume.subscriptionID, consume.requestID) else { return }
        guard let queue = self.broker.queues.queue(consume.queue) else {
            try await self.limitReached(consume.requestID, "queues", self.session.configuration.maxQueues)
            return
        }
        self.subscriptions[consume.subscriptionID] = .consumer(queue)
        try await self.ok(consume.requestID)
        queue.addConsumer(key, outbox: self.outbox, closer: self.session.closer, credit: credit)
    }

    nonisolated(nonsending) private func settle(_ settle: Frame.Acknowledgement, requeue: Bool) async throws {
        var found = false
        for (id, subscription) in self.subscriptions {
            guard case .consumer(let queue) = subscription else { continue }
            let key = ConsumerKey(session: self.session.id, subscriptionID: id)
            if queue.settle(settle.deliveryID, by: key, requeue: requeue) {
                found = true
                break
            }
        }
        if !found {
            try await self.fail(settle.requestID, .unknownID, "no unsettled delivery with id \(settle.deliveryID)")
        } else if settle.ackWanted {
            try await self.ok(settle.requestID)
        }
    }

    // MARK: Keys

    nonisolated(nonsending) private mutating func watch(_ watch: Frame.WatchKey) async throws {
        guard try await self.valid(watch.key, as: .key, watch.requestID) else { return }
        guard try await self.canSubscribe(watch.subscriptionID, watch.requestID) else { return }
        guard let receiver = self.broker.keys.watch(watch.key) else {
            try await self.limitReached(watch.requestID, "keys", self.session.configuration.maxKeys)
            return
        }
        try await self.ok(watch.requestID)
        let forwarder = Task(executorPreference: self.session.stream.loop) { [outbox] in
            // The current value at once, then the newest after each change; waiting for room in the outbox is
            // what coalesces a slow watcher's values.
            while true {
                let value = receiver.borrowAndUpdate()
                let frame = Frame.value(
                    Frame.Value(
                        target: .watch(subscriptionID: watch.subscriptionID),
                        key: watch.key,
                        revision: value.revision,
                        headers: value.headers,
                        payload: value.payload
                    )
                )
                do {
                    try await outbox.deliver(frame)
                    try await receiver.changed()
                } catch {
                    return
                }
            }
        }
        self.subscriptions[watch.subscriptionID] = .watch(forwarder: forwarder)
    }

    // MARK: Requests

    /// The frames whose common case needs no suspension and no async call: a REQUEST to a valid subject that has a
    /// responder, under the in-flight cap; a REPLY that finds its request and wants no OK. True when it was handled;
    /// false, with nothing done, for ``handle(_:)`` (which repeats the checks, and answers or waits).
    mutating func handledAtOnce(_ frame: Frame) -> Bool {
        guard self.welcomed else { return false }
        switch frame {
        case .request(let request):
            // A requester mostly repeats its subject: one validation per new subject.
            if request.subject != self.lastValidRequestSubject {
                guard (try? Subject.validate(request.subject, as: .subject)) != nil else { return false }
                self.lastValidRequestSubject = request.subject
            }
            guard let permit = try? self.session.inflight.tryAcquire() else { return false }
            guard let responder = self.broker.subjects.responder(for: request.subject) else { return false }
            permit.forget()  // given back when the request is answered (see `ask(_:of:)`)
            self.flushPublishes()
            self.broker.stats.requests.add()
            self.ask(request, of: responder)
            return true
        case .reply(let reply):
            guard !reply.ackWanted else { return false }
            self.flushPublishes()
            return self.broker.requests.reply(
                reply.replyID,
                from: self.session.id,
                headers: reply.headers,
                payload: reply.payload.compacted()
            )
        default:
            return false
        }
    }

    nonisolated(nonsending) private func request(_ request: Frame.Request) async throws {
        guard try await self.valid(request.subject, as: .subject, request.requestID) else { return }
        self.broker.stats.requests.add()
        // At the cap this waits, and the connection is not read meanwhile.
        let permit = try await self.session.inflight.acquire()
        guard let responder = self.broker.subjects.responder(for: request.subject) else {
            try await self.fail(request.requestID, .noResponders, "nobody serves \(request.subject)")
            return
        }
        permit.forget()  // given back when the request is answered (see `ask(_:of:)`)
        self.ask(request, of: responder)
    }

    /// Registers `request` with `responder` and posts it the MSG. Holds one in-flight permit, given back with the
    /// answer.
    private func ask(_ request: Frame.Request, of responder: Member) {
        let requests = self.broker.requests
        let timeout =
            request.timeoutMilliseconds == 0
            ? self.session.configuration.requestTimeout : .milliseconds(Int64(request.timeoutMilliseconds))
        let session = self.session
        let requestID = request.requestID
        // The answer, whichever comes first: the REPLY, the timeout (`RequestRegistry.runTimer`), the responder gone.
        // It is written by the thread that decides it (the responder's reader, for a REPLY), with no task between:
        // neither this loop's thread nor a waiter's job is woken for it.
        let replyID = requests.begin(
            responder: ConsumerKey(session: responder.session, subscriptionID: responder.subscriptionID),
            requester: session.id,
            timeout: timeout
        ) { outcome in
            let answer: Frame
            switch outcome {
            case .success(.reply(let headers, let payload)):
                answer = .response(Frame.Response(requestID: requestID, headers: headers, payload: payload))
            case .success(.failed(let code, let message)):
                answer = .error(Frame.ErrorReport(requestID: requestID, code: code, message: message))
            case .failure:
                answer = .error(
                    Frame.ErrorReport(requestID: requestID, code: .responderGone, message: "the responder left")
                )
            }
            // Written from this thread when no writer runs, rather than by a writer started for it.
            session.inflight.release(1)
            if session.outbox.postOrWrite(answer) == .overLimit { session.closer.close(.slowConsumer) }
        }
        let ask = Frame.msg(
            Frame.Message(
                subscriptionID: responder.subscriptionID,
                delivery: .request(replyID: replyID),
                subject: request.subject,
                headers: request.headers,
                payload: request.payload.compacted()
            )
        )
        // Written from this thread when the responder's connection has no writer running (see `Session.writeNow()`):
        // its loop's thread is not woken just to write it.
        switch responder.outbox.postOrWrite(ask) {
        case .queued:
            self.broker.stats.delivered.add()
            // The responder may be ending: its reason is recorded before its reader undoes its subscriptions and
            // fails its requests. If that cleanup ran between our look-up and `begin`, it missed this request,
            // which would wait for its timeout: fail it now. (Seen unset here, the cleanup comes later and finds it.)
            if responder.closer.reason != nil { requests.responderGone(session: responder.session) }
        case .overLimit:
            responder.closer.close(.slowConsumer)
            requests.responderGone(session: responder.session)
        case .closed:
            requests.responderGone(session: responder.session)
        }
    }
}
