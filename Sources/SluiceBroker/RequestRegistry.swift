import SluiceChannels
import SluiceWire
import Synchronization

/// How a request ended, as its `Oneshot` carries it to the requester.
enum RequestOutcome: Sendable {
    /// The responder's REPLY.
    case reply(Headers, Payload)
    /// An ERROR for the requester (`TIMEOUT`).
    case failed(ErrorCode, String)
}

/// Requests waiting for their REPLY, by reply id: each holds the sending half of one `Oneshot` whose receiver the
/// requester's waiter task awaits.
///
/// Whoever removes the entry first decides the outcome: the responder's REPLY, the requester's timeout, or the
/// responder leaving. Timeouts are kept by one task for the whole server (``runTimer(tick:)``), not a timer per
/// request: it looks every `tick` while any request waits, so a request times out at most a tick late. A responder
/// that leaves simply has its entries removed: dropping an unsent `Oneshot.Sender` makes the receiver throw
/// `senderDropped`, which the waiter answers with `RESPONDER_GONE`. So every request is answered exactly once, and a
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
    /// since leaves it early, which costs one scan that finds nothing to time out). `UInt64.max` with none. Written
    /// only under the `pending` lock (atomic so that the type stays `Sendable` without another lock).
    private let earliest = Atomic<UInt64>(.max)
    /// A token when the first request arrives, waking ``runTimer(tick:)`` from its idle wait.
    private let wakeup: MPSC<Void>.Sender
    private let wakeups: MPSC<Void>.Receiver
    private let ids: DeliveryIDs

    init(ids: DeliveryIDs) {
        self.ids = ids
        (self.wakeup, self.wakeups) = MPSC<Void>.channel(capacity: 1)
    }

    /// Registers a request to `responder`, ending with `TIMEOUT` after `timeout`, and returns its reply id and the
    /// receiver to await.
    func begin(
        responder: ConsumerKey,
        requester: SessionID,
        timeout: Duration
    ) -> (UInt64, Oneshot<RequestOutcome>.Receiver) {
        let channel = Oneshot<RequestOutcome>.channel()
        let receiver = channel.receiver
        let entry = Pending(channel.sender, responder: responder, requester: requester, timeout: timeout)
        let id = self.ids.next()
        let first = self.pending.withLock { pending in
            pending[id] = entry
            // Load and store under the lock, which every writer holds. Not `Atomic.min`: in Swift 6.3.1 on Linux it
            // compares `UInt64` as signed, so `.max` (all ones, -1) stays the minimum (it returns the right
            // `newValue` while storing nothing).
            if entry.deadline < self.earliest.load(ordering: .relaxed) {
                self.earliest.store(entry.deadline, ordering: .relaxed)
            }
            return pending.count == 1
        }
        if first { _ = self.wakeup.trySend(()) }  // a token already waiting is as good
        return (id, receiver)
    }

    /// Ends every request whose deadline is past `now` with `TIMEOUT`; returns whether any request still waits.
    func expire(now: UInt64) -> Bool {
        let (expired, waiting) = self.pending.withLock { pending -> ([Pending], Bool) in
            guard self.earliest.load(ordering: .relaxed) <= now else { return ([], !pending.isEmpty) }
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
            return (expired, !pending.isEmpty)
        }
        for entry in expired { entry.resolve(.failed(.timeout, "no reply within \(entry.timeout)")) }
        return waiting
    }

    /// Times requests out until the task is cancelled: while any request waits it looks every `tick`; while none
    /// does it sleeps until one arrives.
    func runTimer(tick: Duration = .milliseconds(5)) async {
        while !Task.isCancelled {
            if self.expire(now: Monotonic.now) {
                do { try await Task.sleep(for: tick) } catch { return }
            } else {
                guard (try? await self.wakeups.recv()) != nil else { return }
            }
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
        _ = gone  // dropped here, outside the lock: each receiver throws `senderDropped`
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
