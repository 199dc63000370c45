import SluiceChannels
import SluiceWire
import Synchronization

/// One connection's outgoing frames: a bounded `MPSC` that every producer sends into and the connection's writer
/// task drains, plus the byte accounting that bounds it.
///
/// Three ways in, by who produces the frame:
/// - ``answer(_:)``: the connection's own reader (OK, ERROR, PONG, VALUE for GET, STATS_REPLY). It **waits** when
///   the outbox is full, which stops the reader: a client that does not read its answers is pushed back by TCP.
/// - ``deliver(_:)``: the connection's subscription forwarders (MSG, LAGGED, watch VALUE). They wait for room in
///   their half of the budget, so a slow subscriber stops pulling from its subjects and lags there instead of
///   growing memory here.
/// - ``post(_:)``: other connections' work (a queue delivery, a request to a responder, a RESPONSE). It never
///   waits; past ``limit`` it fails, and the caller closes the connection with `SLOW_CONSUMER`.
///
/// Every frame costs its wire size plus ``frameOverhead`` (what it holds in memory beyond its shared payload), and
/// every queued item (one frame, or a forwarder's batch) costs at least `minimumCost` bytes, until the writer has
/// written it. So the byte limit bounds the memory held, and also how many items can be queued: the channel's
/// capacity is exactly that many, so it never fills before the byte budget does. A batch of small messages is
/// charged what it holds, not a minimum per message, so the budget buffers as many small messages as fit in it
/// (a subscriber's client that stalls for a few milliseconds must not cost it messages).
final class Outbox: Sendable {
    /// What one queued item writes.
    enum Content: Sendable {
        /// Nothing (a last item without a frame).
        case none
        /// One frame.
        case one(Frame)
        /// Several frames queued at once: one channel slot and one credit wait for all.
        case many([Frame])
        /// Frames already encoded (a forwarder's batch of MSGs): written as they are.
        case encoded(Payload)
    }

    /// One queued item with what it costs.
    struct Item: Sendable {
        /// The frames to write.
        let content: Content
        /// Bytes charged against ``Outbox/pending`` until written.
        let cost: Int
        /// Bytes of the subject budget it holds (``deliver(_:)`` only).
        let credit: Int
        /// The last frame: the writer writes it and stops.
        let isLast: Bool
    }

    /// The channel; made by the first frame queued (``channel``).
    private final class Channel: Sendable {
        let sender: MPSC<Item>.Sender
        let receiver: MPSC<Item>.Receiver

        init(capacity: Int) {
            // + 1: the last frame. A small lock-free ring (bursts beyond it wait in the channel's spill): an idle
            // connection should not hold a 1,024-slot ring.
            (self.sender, self.receiver) = MPSC<Item>.channel(capacity: capacity + 1, ringLimit: 8)
        }
    }

    /// Made when the first frame is queued: a connection that has only said HELLO holds no channel (its ring, its
    /// lock-side buffers and its objects are ~2 KB, half of the memory bar for an idle connection).
    private let lazyChannel = LazyObject<Channel>()
    /// Frames the channel holds.
    private let capacity: Int
    /// True while a writer drains the outbox. A producer that queues a frame starts one when it is false
    /// (``kick()``); the writer sets it false when it finds the outbox empty, then looks once more
    /// (``writerGoesIdle()``). So an idle connection has no writer task, and holds none of its memory.
    let writing = Atomic<Bool>(false)
    /// Starts a writer; set once by the session (``onWork(writeNow:start:)``) before anything is queued.
    private let starter = Locked<WriterStarter?>(nil)

    /// What ``onWork(writeNow:start:)`` was given. A class: a closure kept directly in the `Locked` state and read
    /// through its `inout` access came back wrapped in one more reabstraction thunk on every read (Swift 6.3.1), so
    /// each start ran through all the earlier wrappers: the broker slowed without bound.
    private final class WriterStarter: Sendable {
        let start: @Sendable () -> Void
        let writeNow: @Sendable (Frame?) -> Void
        init(start: @escaping @Sendable () -> Void, writeNow: @escaping @Sendable (Frame?) -> Void) {
            self.start = start
            self.writeNow = writeNow
        }
    }
    /// The subject deliveries' half of the budget, in bytes.
    private let credit: AsyncSemaphore
    private let creditLimit: Int
    /// Bytes queued and not yet written.
    private let pending = Atomic<Int>(0)
    /// The budget for everything queued, in bytes.
    let limit: Int
    /// The least a frame costs: `limit / capacity`.
    private let minimumCost: Int

    /// An outbox of at most `limit` bytes and `capacity` frames.
    init(limit: Int, capacity: Int = 4_096) {
        self.limit = max(limit, 1_024)
        self.minimumCost = max(1, self.limit / capacity)
        self.capacity = capacity
        self.creditLimit = self.limit / 2
        self.credit = AsyncSemaphore(permits: self.creditLimit)
    }

    /// Bytes queued and not yet written.
    var pendingBytes: Int { self.pending.load(ordering: .relaxed) }

    /// The channel, made now if no frame was queued before.
    private var channel: Channel {
        if let channel = self.lazyChannel.load() { return channel }
        return self.lazyChannel.storeIfNil(Channel(capacity: self.capacity))
    }

    /// The producers' end.
    private var sender: MPSC<Item>.Sender { self.channel.sender }

    /// Sets what writes when a frame is queued and no writer runs: `start` starts a writer task, `writeNow` writes
    /// at once, on the caller's thread, without waiting: the frame it is given, if any, then what is queued
    /// (``writeClaimed()``; `start` when nil, for tests without a socket).
    func onWork(writeNow: (@Sendable (Frame?) -> Void)? = nil, start: @escaping @Sendable () -> Void) {
        let starter = WriterStarter(start: start, writeNow: writeNow ?? { _ in start() })
        self.starter.withLock { $0 = starter }
    }

    /// Forgets what ``onWork(writeNow:start:)`` set (and whatever it holds): for the connection's end, when nothing
    /// is written any more. A writer claimed later writes nothing.
    func stopWork() {
        self.starter.withLock { $0 = nil }
    }

    /// Something was queued: true when no writer runs and the caller is the writer now (it must write, or start
    /// one); false when a running writer will take it.
    private func claimWriter() -> Bool {
        // Our send, then our look at `writing`; the writer stores `writing`, then looks at the queue. With a full
        // fence between each pair, one of the two sees the other's write: no item is left without a writer.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        guard !self.writing.load(ordering: .relaxed) else { return false }
        return !self.writing.exchange(true, ordering: .acquiringAndReleasing)
    }

    /// Something was queued: start a writer unless one runs.
    private func kick() {
        if self.claimWriter() { self.starter.withLock { $0 }?.start() }
    }

    /// Writes what is queued now, on the caller's thread: for a caller that holds the writer's claim
    /// (``postWritingIfIdle(_:)`` said `mustWrite`). What the socket does not take at once goes on in a writer task.
    func writeClaimed() {
        self.starter.withLock { $0 }?.writeNow(nil)
    }

    /// The writer found nothing to write: clears ``writing``, then looks once more. True when the writer should
    /// end (the outbox is empty, or another writer took over since); false when it should go on (it is the writer
    /// again).
    func writerGoesIdle() -> Bool {
        self.writing.store(false, ordering: .releasing)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if (self.lazyChannel.load()?.receiver.count ?? 0) == 0 { return true }
        return self.writing.exchange(true, ordering: .acquiringAndReleasing)
    }

    /// Moves up to `limit` queued items into `items` without waiting. Returns false once the outbox is closed and
    /// nothing is left in it.
    func takeReady(upTo limit: Int, into items: inout [Item]) -> Bool {
        guard let receiver = self.lazyChannel.load()?.receiver else { return true }  // nothing was ever queued
        while items.count < limit {
            do {
                items.append(try receiver.tryRecv())
            } catch .empty {
                return true
            } catch {
                return false
            }
        }
        return true
    }

    /// Bytes a queued frame holds beyond its wire size: the `Frame` value in the batch array and its share of
    /// reference counts (the payload itself is shared with the subject's buffer and counted in the wire size).
    static let frameOverhead = 64

    /// What one frame alone in an item costs.
    private func cost(of frame: Frame) -> Int { max(frame.estimatedSize + Self.frameOverhead, self.minimumCost) }

    /// What a batch of frames in one item costs.
    private func cost(of frames: [Frame]) -> Int {
        max(frames.reduce(0) { $0 + $1.estimatedSize + Self.frameOverhead }, self.minimumCost)
    }

    /// Queues an answer from the connection's own reader, waiting while the outbox is full.
    ///
    /// ## Errors
    /// `CancellationError`; ``OutboxClosed`` once the connection is ending.
    nonisolated(nonsending) func answer(_ frame: Frame) async throws {
        if self.lazyChannel.load() == nil, self.wroteIfIdle(frame) {
            // Nothing was ever queued and no writer runs: written now, without making the channel. A connection that
            // only said HELLO (and got WELCOME) thus never holds one. Not for every answer to a connection with an
            // empty outbox: a reader answers a burst of frames one by one, and queued answers go out in one write.
            return
        }
        let cost = self.cost(of: frame)
        self.pending.wrappingAdd(cost, ordering: .relaxed)
        do {
            try await self.sender.send(Item(content: .one(frame), cost: cost, credit: 0, isLast: false))
        } catch {
            self.pending.wrappingSubtract(cost, ordering: .relaxed)
            if error is CancellationError { throw error }
            throw OutboxClosed()
        }
        self.kick()
    }

    /// Queues a subject delivery, waiting for room in the subjects' half of the budget.
    ///
    /// ## Errors
    /// `CancellationError`; ``OutboxClosed`` once the connection is ending.
    nonisolated(nonsending) func deliver(_ frame: Frame) async throws {
        try await self.deliver(.one(frame), cost: self.cost(of: frame))
    }

    /// Queues a batch of subject deliveries as one item: one wait for credit and one channel send for all of them.
    nonisolated(nonsending) func deliver(_ frames: [Frame]) async throws {
        guard !frames.isEmpty else { return }
        try await self.deliver(.many(frames), cost: self.cost(of: frames))
    }

    /// Queues a batch of subject deliveries already encoded (``FrameEncoder/encodeMessage(subscriptionID:subject:
    /// headers:payload:)``) as one item. It costs its bytes (its own copy of them, payloads included) plus
    /// ``frameOverhead`` once.
    nonisolated(nonsending) func deliver(encoded frames: Payload) async throws {
        guard !frames.isEmpty else { return }
        try await self.deliver(.encoded(frames), cost: max(frames.count + Self.frameOverhead, self.minimumCost))
    }

    nonisolated(nonsending) private func deliver(_ content: Content, cost: Int) async throws {
        let credit = min(cost, self.creditLimit)
        do {
            let permit = try await self.credit.acquire(credit)
            permit.forget()  // given back by `written(_:)`, possibly from another task
        } catch {
            if error is CancellationError { throw error }
            throw OutboxClosed()
        }
        self.pending.wrappingAdd(cost, ordering: .relaxed)
        do {
            try await self.sender.send(Item(content: content, cost: cost, credit: credit, isLast: false))
        } catch {
            self.pending.wrappingSubtract(cost, ordering: .relaxed)
            self.credit.release(credit)
            if error is CancellationError { throw error }
            throw OutboxClosed()
        }
        // A forwarder runs on the connection's loop and has just waited for this batch: it writes the batch itself
        // when no writer runs (one write, no writer task to start), and goes back to its channel.
        if self.claimWriter() { self.writeClaimed() }
    }

    /// What ``post(_:)`` did.
    enum PostResult: Equatable {
        /// Queued.
        case queued
        /// The connection is past its limit: close it as a slow consumer.
        case overLimit
        /// The connection is ending; the frame was dropped.
        case closed
    }

    /// Queues a frame from another connection's work without waiting.
    func post(_ frame: Frame) -> PostResult {
        let result = self.enqueue(frame)
        if result == .queued { self.kick() }
        return result
    }

    /// ``post(_:)`` that writes the frame itself, on the caller's thread, rather than start a writer task on the
    /// connection's loop (a wake-up of that loop's thread): when nothing is queued and no writer runs, the frame is
    /// not queued at all (one `send`, see ``wroteIfIdle(_:)``); otherwise it is queued, and written here if no writer
    /// took it (``writeClaimed()``).
    func postOrWrite(_ frame: Frame) -> PostResult {
        if self.wroteIfIdle(frame) { return .queued }
        let result = self.enqueue(frame)
        if result == .queued && self.claimWriter() { self.writeClaimed() }
        return result
    }

    /// When nothing is queued or being written and no writer runs, writes `frame` at once, on the caller's thread,
    /// without queuing it (no channel send and receive); what the socket does not take goes on in a writer task, as
    /// with ``writeClaimed()``. False, with nothing done, otherwise. Frames from one producer keep their order: one
    /// that was queued is counted in ``pending`` until written, so the next goes through the queue behind it.
    private func wroteIfIdle(_ frame: Frame) -> Bool {
        // A frame over the limit is not written this way either: queued, it closes the connection as a slow
        // consumer, and whether the outbox happened to be empty must not decide that.
        guard self.pending.load(ordering: .relaxed) == 0, !self.writing.load(ordering: .relaxed),
            self.cost(of: frame) <= self.limit, let starter = self.starter.withLock({ $0 }), self.claimWriter()
        else { return false }
        starter.writeNow(frame)
        return true
    }

    /// ``post(_:)`` for a caller that would rather write the frame itself, on its own thread, than start a writer
    /// task on the connection's loop (a wake-up of that loop's thread): `mustWrite` true means no writer ran, this
    /// caller is the writer now, and it must call ``writeClaimed()``.
    func postWritingIfIdle(_ frame: Frame) -> (result: PostResult, mustWrite: Bool) {
        let result = self.enqueue(frame)
        return (result, result == .queued && self.claimWriter())
    }

    /// The queuing half of ``post(_:)``: no writer is started.
    private func enqueue(_ frame: Frame) -> PostResult {
        let cost = self.cost(of: frame)
        let total = self.pending.wrappingAdd(cost, ordering: .relaxed).newValue
        guard total <= self.limit else {
            self.pending.wrappingSubtract(cost, ordering: .relaxed)
            return .overLimit
        }
        switch self.sender.trySend(Item(content: .one(frame), cost: cost, credit: 0, isLast: false)) {
        case .success:
            return .queued
        case .failure(let failure):
            self.pending.wrappingSubtract(cost, ordering: .relaxed)
            if case .full = failure { return .overLimit }
            return .closed
        }
    }

    /// Queues the connection's last frame (GOODBYE, a closing ERROR, or none) after everything already queued: the
    /// writer writes up to it and stops. Waits while the outbox is full, even in a cancelled task (the reader's
    /// task is cancelled when its connection ends). False when the outbox is closed (the connection was cut):
    /// nothing was queued, and no writer will write a last frame.
    nonisolated(nonsending) func finish(with frame: Frame?) async -> Bool {
        let item = Item(content: frame.map { .one($0) } ?? .none, cost: 0, credit: 0, isLast: true)
        switch self.sender.trySend(item) {
        case .success:
            break
        case .failure(.closed):
            return false
        case .failure(.full(let item)):
            let sender = self.sender
            guard await Task(operation: { (try? await sender.send(item)) != nil }).value else { return false }
        }
        self.kick()
        return true
    }

    /// Closes the outbox: producers fail from now on, waiting ones at once.
    func close() {
        self.channel.receiver.close()
        self.credit.close()
    }

    /// The writer wrote `item`: give back what it cost.
    func written(_ item: Item) {
        self.pending.wrappingSubtract(item.cost, ordering: .relaxed)
        if item.credit > 0 { self.credit.release(item.credit) }
    }
}

/// The connection is ending; nothing more can be queued for it.
struct OutboxClosed: Error {}

/// An object made at most once, by whichever thread needs it first, and read without a lock: `AtomicLazyReference`
/// without its cost. In Swift 6.3.1 `AtomicLazyReference.load()` is not inlined: each call goes through the
/// library's generic code and looks up `Unmanaged<Instance>`'s metadata, some 330 instructions where this is a
/// load and a compare (callgrind, the request/reply benchmark: 4.1 M of 82 M instructions).
struct LazyObject<Object: AnyObject & Sendable>: ~Copyable, Sendable {
    /// The object's address, retained once; 0 while none is stored.
    private let address = Atomic<UInt>(0)

    init() {}

    deinit {
        let bits = self.address.load(ordering: .acquiring)
        if bits != 0 { Unmanaged<Object>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).release() }
    }

    /// The object, if one was stored.
    @inline(__always)
    func load() -> Object? {
        let bits = self.address.load(ordering: .acquiring)
        guard bits != 0 else { return nil }
        return Unmanaged<Object>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).takeUnretainedValue()
    }

    /// Stores `object` unless one is stored already; returns the one stored.
    func storeIfNil(_ object: Object) -> Object {
        let retained = Unmanaged.passRetained(object)
        let bits = UInt(bitPattern: retained.toOpaque())
        let (stored, current) = self.address.compareExchange(
            expected: 0,
            desired: bits,
            ordering: .acquiringAndReleasing
        )
        if stored { return object }
        retained.release()
        return Unmanaged<Object>.fromOpaque(UnsafeRawPointer(bitPattern: current)!).takeUnretainedValue()
    }
}
