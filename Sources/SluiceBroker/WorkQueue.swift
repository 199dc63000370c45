import SluiceChannels
import SluiceWire
import Synchronization

/// A message waiting in a work queue.
struct QueuedMessage: Sendable {
    /// The producer's headers.
    let headers: Headers
    /// The producer's bytes, compacted so that the queue does not hold read buffers.
    let payload: Payload
    /// Whether an earlier delivery was NACKed or its consumer left without ACK.
    var redelivered = false
}

/// Identifies one consumer: a CONSUME on a connection.
struct ConsumerKey: Hashable, Sendable {
    let session: SessionID
    let subscriptionID: UInt32
}

/// A named work queue: a bounded `MPSC` that producers send into, and a dispatcher task that hands each message to
/// one consumer with spare credit.
///
/// - PUSH is `MPSC.send`: when the queue is full the producer's reader waits, so the broker stops reading that
///   socket and TCP pushes back; `trySend` gives `QUEUE_FULL` for PUSH with NO_WAIT.
/// - The dispatcher takes messages only as far as the consumers have credit to spare (as many at once as that
///   allows), so messages pushed before any
///   consumer exists wait in the channel, and the queue's memory stays bounded by its capacity plus the consumers'
///   credit.
/// - A delivered message is kept in `unacked` until the consumer ACKs it. NACK, UNSUB and a consumer's
///   disconnection put its messages on `redeliver` (marked redelivered); those are delivered before anything from the
///   channel, by whichever task freed the credit, so they never wait for new pushes.
/// - The dispatcher sleeps on a `Watch` version that every credit change bumps: a change between its check and its
///   wait is never lost, because it marks the version seen before checking.
final class WorkQueue: Sendable {
    /// One consumer's place in the queue.
    struct Consumer {
        let key: ConsumerKey
        let outbox: Outbox
        let closer: SessionCloser
        /// The most unsettled messages it may hold.
        var credit: Int
        /// Messages delivered to it and not yet settled.
        var unsettled = 0
        /// Set when its connection could not take a delivery: it gets nothing more.
        var stalled = false

        /// Deliveries it may take now.
        var spareCredit: Int { self.stalled ? 0 : max(0, self.credit - self.unsettled) }
        var hasSpareCredit: Bool { self.spareCredit > 0 }
    }

    struct State {
        /// Consumers in arrival order; `cursor` makes the choice round robin.
        var consumers: [Consumer] = []
        var cursor = 0
        /// Messages to deliver again, before anything in the channel. Bounded by the consumers' credit.
        var redeliver: [QueuedMessage] = []
        /// Delivered and not settled, by delivery id.
        var unacked: [UInt64: (message: QueuedMessage, consumer: ConsumerKey)] = [:]
    }

    /// The queue's name.
    let name: String
    /// Producers' end.
    let sender: MPSC<QueuedMessage>.Sender
    private let receiver: MPSC<QueuedMessage>.Receiver
    private let state = Locked(State())
    private let wake: Watch<UInt64>.Sender
    private let ids: DeliveryIDs
    private let stats: Stats
    private let dispatcher = Locked<Task<Void, Never>?>(nil)

    init(name: String, capacity: Int, ids: DeliveryIDs, stats: Stats) {
        self.name = name
        (self.sender, self.receiver) = MPSC<QueuedMessage>.channel(capacity: max(1, capacity))
        (self.wake, _) = Watch<UInt64>.channel(0)
        self.ids = ids
        self.stats = stats
    }

    /// Starts the dispatcher task, preferring `executor`.
    func start(on executor: (any TaskExecutor)?) {
        let waker = self.wake.subscribe()
        let task = Task(executorPreference: executor) { [self] in await self.dispatch(waker) }
        self.dispatcher.withLock { $0 = task }
    }

    /// Stops the dispatcher; messages stay where they are.
    func stop() {
        self.dispatcher.withLock { $0?.cancel() }
    }

    private func dispatch(_ waker: Watch<UInt64>.Receiver) async {
        var batch: [QueuedMessage] = []
        while !Task.isCancelled {
            _ = waker.borrowAndUpdate()
            // As many messages as the consumers can take now, in one receive and one critical section.
            let spare = self.state.withLock {
                $0.redeliver.isEmpty ? $0.consumers.reduce(0) { $0 + $1.spareCredit } : 0
            }
            guard spare > 0 else {
                do { try await waker.changed() } catch { return }
                continue
            }
            batch.removeAll(keepingCapacity: batch.count <= 64)
            guard (try? await self.receiver.recv(upTo: min(spare, 256), into: &batch)) ?? 0 > 0 else { return }
            self.delivering { state in state.redeliver.append(contentsOf: batch) }
        }
    }

    /// Runs `body` under the lock, then delivers what consumers have credit for, and writes to each consumer's socket
    /// that has no writer running from this thread, after unlocking (`Session.writeNow`): no writer task is started
    /// on the consumer's loop for it, and no socket is written under the lock.
    private func delivering<Result>(_ body: (inout State) -> Result) -> Result {
        let (result, claimed) = self.state.withLock { state -> (Result, [Outbox]) in
            let result = body(&state)
            var claimed: [Outbox] = []
            self.drain(&state, claimed: &claimed)
            return (result, claimed)
        }
        for outbox in claimed { outbox.writeClaimed() }
        return result
    }

    /// Delivers redeliveries while some consumer has spare credit. Called under the lock; `claimed` gets each outbox
    /// whose writer this call became, to write after unlocking.
    private func drain(_ state: inout State, claimed: inout [Outbox]) {
        while !state.redeliver.isEmpty, let index = self.nextConsumer(&state) {
            let message = state.redeliver[0]
            let id = self.ids.next()
            let consumer = state.consumers[index]
            let frame = Frame.msg(
                Frame.Message(
                    subscriptionID: consumer.key.subscriptionID,
                    delivery: .queue(deliveryID: id, redelivered: message.redelivered),
                    subject: self.name,
                    headers: message.headers,
                    payload: message.payload
                )
            )
            let (posted, mustWrite) = consumer.outbox.postWritingIfIdle(frame)
            if mustWrite { claimed.append(consumer.outbox) }
            switch posted {
            case .queued:
                state.redeliver.removeFirst()
                state.unacked[id] = (message, consumer.key)
                state.consumers[index].unsettled += 1
                self.stats.delivered.add()
                if message.redelivered { self.stats.redelivered.add() }
            case .overLimit:
                state.consumers[index].stalled = true
                consumer.closer.close(.slowConsumer)
            case .closed:
                state.consumers[index].stalled = true
            }
        }
    }

    /// The next consumer with spare credit, round robin.
    private func nextConsumer(_ state: inout State) -> Int? {
        let count = state.consumers.count
        guard count > 0 else { return nil }
        for step in 0..<count {
            let index = (state.cursor + step) % count
            if state.consumers[index].hasSpareCredit {
                state.cursor = (index + 1) % count
                return index
            }
        }
        return nil
    }

    private func wakeDispatcher() {
        self.wake.sendModify { $0 &+= 1 }
    }

    /// Adds a consumer, or changes the credit of an existing one with the same key.
    func addConsumer(_ key: ConsumerKey, outbox: Outbox, closer: SessionCloser, credit: Int) {
        self.delivering { state in
            if let index = state.consumers.firstIndex(where: { $0.key == key }) {
                state.consumers[index].credit = credit
            } else {
                state.consumers.append(Consumer(key: key, outbox: outbox, closer: closer, credit: credit))
            }
        }
        self.wakeDispatcher()
    }

    /// Removes a consumer; everything it held is delivered again, marked redelivered, ahead of newer messages.
    func removeConsumer(_ key: ConsumerKey) {
        self.delivering { state in
            state.consumers.removeAll { $0.key == key }
            if state.cursor >= state.consumers.count { state.cursor = 0 }
            let held = state.unacked.filter { $0.value.consumer == key }.keys.sorted()
            var returned: [QueuedMessage] = []
            for id in held {
                guard var message = state.unacked.removeValue(forKey: id)?.message else { continue }
                message.redelivered = true
                returned.append(message)
            }
            state.redeliver.insert(contentsOf: returned, at: 0)
        }
        self.wakeDispatcher()
    }

    /// ACK (`requeue` false) or NACK (`requeue` true) delivery `id` for `key`; false when that consumer does not
    /// hold that delivery.
    func settle(_ id: UInt64, by key: ConsumerKey, requeue: Bool) -> Bool {
        let found = self.delivering { state -> Bool in
            guard let entry = state.unacked[id], entry.consumer == key else { return false }
            state.unacked[id] = nil
            if let index = state.consumers.firstIndex(where: { $0.key == key }) {
                state.consumers[index].unsettled -= 1
            }
            if requeue {
                var message = entry.message
                message.redelivered = true
                state.redeliver.insert(message, at: 0)
            } else {
                self.stats.acked.add()
            }
            return true
        }
        if found { self.wakeDispatcher() }
        return found
    }

    /// Messages not yet acknowledged: waiting, to be redelivered, and delivered but unsettled.
    var unacknowledgedCount: Int {
        let held = self.state.withLock { $0.redeliver.count + $0.unacked.count }
        return held + self.receiver.count
    }
}

/// Hands out delivery and reply ids, unique for the server's life.
final class DeliveryIDs: Sendable {
    private let counter = Atomic<UInt64>(0)

    func next() -> UInt64 { self.counter.wrappingAdd(1, ordering: .relaxed).newValue }
}

/// Work queues by name, created by the first PUSH or CONSUME that names them.
final class QueueTable: Sendable {
    private let queues = Locked<[String: WorkQueue]>([:])
    private let capacity: Int
    /// The most queues kept (`--max-queues`).
    private let limit: Int
    private let ids: DeliveryIDs
    private let stats: Stats
    private let executors: @Sendable () -> (any TaskExecutor)?

    init(
        capacity: Int,
        limit: Int,
        ids: DeliveryIDs,
        stats: Stats,
        executors: @escaping @Sendable () -> (any TaskExecutor)?
    ) {
        self.capacity = capacity
        self.limit = limit
        self.ids = ids
        self.stats = stats
        self.executors = executors
    }

    /// The queue named `name` (already validated), created if new.
    func queue(_ name: String) -> WorkQueue? {
        let found = self.queues.withLock { queues -> (WorkQueue, Bool)? in
            if let queue = queues[name] { return (queue, false) }
            guard queues.count < self.limit else { return nil }
            let queue = WorkQueue(name: name, capacity: self.capacity, ids: self.ids, stats: self.stats)
            queues[name] = queue
            return (queue, true)
        }
        guard let (queue, isNew) = found else { return nil }
        if isNew { queue.start(on: self.executors()) }
        return queue
    }

    /// Every queue, by name.
    var all: [WorkQueue] { self.queues.withLock { Array($0.values) }.sorted { $0.name < $1.name } }

    /// Stops every dispatcher.
    func stop() {
        for queue in self.all { queue.stop() }
    }
}
