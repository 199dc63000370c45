import SluiceChannels
import SluiceIO
import SluiceWire
import Synchronization

/// How a request ended, as its `Oneshot` carries it to the requester.
enum RequestOutcome: Sendable {
    /// The responder's REPLY.
    case reply(Headers, Payload)
    /// An ERROR for the requester (`TIMEOUT`).
    case failed(ErrorCode, String)
}

/// Requests waiting for their REPLY, by reply id: each holds the sending half of one `Oneshot` whose receiving half
/// answers the requester (`Oneshot.channel(deliveringTo:)`): no task waits per request. The answer is written on the
/// thread that decides the outcome: the responder's reader for a REPLY, the timer for a timeout, whoever removes the
/// responder when it leaves.
///
/// Whoever removes the entry first decides the outcome: the responder's REPLY, the requester's timeout, or the
/// responder leaving. Timeouts are kept by one task for the whole server (``runTimer()``), not a timer per request:
/// it sleeps until the earliest deadline, and a request with an earlier one wakes it. It does not tick while
/// requests come and go: a periodic wake-up of a loop thread (and of the timer's own thread) lands in the middle of
/// a round trip now and then, and showed in the request/reply p99. A responder
/// that leaves simply has its entries removed: dropping an unsent `Oneshot.Sender` delivers `senderDropped`, which
/// is answered with `RESPONDER_GONE`. So every request is answered exactly once, and a
/// late REPLY finds nothing (`UNKNOWN_ID`).
final class RequestRegistry: Sendable {
    /// One request in flight. A class because `Oneshot.Sender` is noncopyable and dictionary values are not.
    final class Pending: Sendable {
        let sender: Locked<Oneshot<RequestOutcome>.Sender?>
        /// The subscription that was asked.
        let responder: ConsumerKey
        /// The connection that asked.
        let requester: SessionID
        /// Monotonic nanoseconds after which the request ends with `TIMEOUT`.
        let deadline: UInt64
        /// The timeout it was given, for the ERROR's message.
        let timeout: Duration

        init(
            _ sender: consuming Oneshot<RequestOutcome>.Sender,
            responder: ConsumerKey,
            requester: SessionID,
            timeout: Duration
        ) {
            self.sender = Locked(consume sender)
            self.responder = responder
            self.requester = requester
            self.timeout = timeout
            self.deadline = Monotonic.now &+ UInt64(timeout.clampedMilliseconds) * 1_000_000
        }

        func resolve(_ outcome: RequestOutcome) {
            try? self.sender.withLock { $0.take() }?.send(outcome)
        }
    }

    private let pending = Locked<[UInt64: Pending]>([:])
    /// No request waits past this (monotonic nanoseconds): the earliest deadline, or earlier (an entry answered
    /// since leaves it early, which costs one scan that finds nothing to time out). `UInt64.max` with none. The
    /// timer looks again at this time. Written only under the `pending` lock (atomic so that the type stays
    /// `Sendable` without another lock).
    private let earliest = Atomic<UInt64>(.max)
    /// A token when a request's deadline comes before every other's, or a sleep of the timer ends: wakes
    /// ``runTimer()``.
    private let wakeup: MPSC<Void>.Sender
    private let wakeups: MPSC<Void>.Receiver
    private let ids: DeliveryIDs
    /// Times the timer looked for expired requests (for tests: it must not tick while requests come and go).
    let scans = Atomic<Int>(0)

    init(ids: DeliveryIDs) {
        self.ids = ids
        (self.wakeup, self.wakeups) = MPSC<Void>.channel(capacity: 1)
    }

    /// Registers a request to `responder`, ending with `TIMEOUT` after `timeout`, and returns its reply id.
    /// `answer` gets the outcome, once, on the thread that decides it (see the type's discussion).
    func begin(
        responder: ConsumerKey,
        requester: SessionID,
        timeout: Duration,
        answer: @escaping Oneshot<RequestOutcome>.Delivery
    ) -> UInt64 {
        let entry = Pending(
            Oneshot<RequestOutcome>.channel(deliveringTo: answer),
            responder: responder,
            requester: requester,
            timeout: timeout
        )
        let id = self.ids.next()
        let earlier = self.pending.withLock { pending in
            pending[id] = entry
            // Load and store under the lock, which every writer holds (the timer's scan too, so it either sees this
            // deadline or is woken for it). Not `Atomic.min`: in Swift 6.3.1 on Linux it compares `UInt64` as
            // signed, so `.max` (all ones, -1) stays the minimum (it returns the right `newValue` while storing
            // nothing).
            guard entry.deadline < self.earliest.load(ordering: .relaxed) else { return false }
            self.earliest.store(entry.deadline, ordering: .relaxed)
            return true
        }
        if earlier { _ = self.wakeup.trySend(()) }  // a token already waiting is as good
        return id
    }

    /// Ends every request whose deadline is past `now` with `TIMEOUT`; returns when to look again (monotonic
    /// nanoseconds; `UInt64.max` while no request waits).
    func expire(now: UInt64) -> UInt64 {
        self.scans.wrappingAdd(1, ordering: .relaxed)
        let (expired, next) = self.pending.withLock { pending -> ([Pending], UInt64) in
            let due = self.earliest.load(ordering: .relaxed)
            guard due <= now else { return ([], due) }
            var expired: [Pending] = []
            var earliest = UInt64.max
            for (id, entry) in pending {
                if entry.deadline <= now {
                    expired.append(entry)
                    pending[id] = nil
                } else {
                    earliest = Swift.min(earliest, entry.deadline)
                }
            }
            self.earliest.store(earliest, ordering: .relaxed)
            return (expired, earliest)
        }
        for entry in expired { entry.resolve(.failed(.timeout, "no reply within \(entry.timeout)")) }
        return next
    }

    /// Times requests out until the task is cancelled. It waits for a token: from a sleeper task it starts to wake
    /// it at the earliest deadline, or from ``begin(responder:requester:timeout:)`` when a request's deadline is
    /// earlier still. While no request waits, nothing sleeps.
    func runTimer() async {
        var sleeper: (task: Task<Void, Never>, until: UInt64)? = nil
        defer { sleeper?.task.cancel() }
        while !Task.isCancelled {
            let now = Monotonic.now
            let next = self.expire(now: now)
            if next != .max, sleeper.map({ $0.until <= now || next < $0.until }) ?? true {
                sleeper?.task.cancel()
                let wakeup = self.wakeup
                let task = Task {
                    guard (try? await Task.sleep(for: .nanoseconds(next - now))) != nil else { return }
                    _ = wakeup.trySend(())
                }
                sleeper = (task, next)
            }
            guard (try? await self.wakeups.recv()) != nil else { return }
        }
    }

    /// The REPLY for `id` from connection `session`; false when no such request waits for that connection.
    func reply(_ id: UInt64, from session: SessionID, headers: Headers, payload: Payload) -> Bool {
        let entry = self.pending.withLock { pending -> Pending? in
            guard let entry = pending[id], entry.responder.session == session else { return nil }
            pending[id] = nil
            return entry
        }
        entry?.resolve(.reply(headers, payload))
        return entry != nil
    }

    /// The responder left (its connection, or `subscriptionID` when given): its requests end with
    /// `RESPONDER_GONE`.
    func responderGone(session: SessionID, subscriptionID: UInt32? = nil) {
        let gone = self.pending.withLock { pending -> [Pending] in
            let ids = pending.filter { _, entry in
                entry.responder.session == session
                    && (subscriptionID == nil || entry.responder.subscriptionID == subscriptionID)
            }.keys
            return ids.compactMap { pending.removeValue(forKey: $0) }
        }
        _ = gone  // dropped here, outside the lock: each delivers `senderDropped`
    }

    /// The requester left: forget its requests (nobody waits for their answers any more).
    func requesterGone(session: SessionID) {
        let gone = self.pending.withLock { pending -> [Pending] in
            let ids = pending.filter { $0.value.requester == session }.keys
            return ids.compactMap { pending.removeValue(forKey: $0) }
        }
        _ = gone
    }

    /// Requests waiting for a reply.
    var count: Int { self.pending.withLock { $0.count } }
}
