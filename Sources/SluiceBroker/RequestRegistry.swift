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
/// responder leaving. A responder that leaves simply has its entries removed: dropping an unsent `Oneshot.Sender`
/// makes the receiver throw `senderDropped`, which the waiter answers with `RESPONDER_GONE`. So every request is
/// answered exactly once, and a late REPLY finds nothing (`UNKNOWN_ID`).
final class RequestRegistry: Sendable {
    /// One request in flight. A class because `Oneshot.Sender` is noncopyable and dictionary values are not.
    final class Pending: Sendable {
        let sender: Locked<Oneshot<RequestOutcome>.Sender?>
        /// The subscription that was asked.
        let responder: ConsumerKey
        /// The connection that asked.
        let requester: SessionID

        init(_ sender: consuming Oneshot<RequestOutcome>.Sender, responder: ConsumerKey, requester: SessionID) {
            self.sender = Locked(consume sender)
            self.responder = responder
            self.requester = requester
        }

        func resolve(_ outcome: RequestOutcome) {
            try? self.sender.withLock { $0.take() }?.send(outcome)
        }
    }

    private let pending = Locked<[UInt64: Pending]>([:])
    private let ids: DeliveryIDs

    init(ids: DeliveryIDs) {
        self.ids = ids
    }

    /// Registers a request to `responder` and returns its reply id and the receiver to await.
    func begin(responder: ConsumerKey, requester: SessionID) -> (UInt64, Oneshot<RequestOutcome>.Receiver) {
        let channel = Oneshot<RequestOutcome>.channel()
        let receiver = channel.receiver
        let entry = Pending(channel.sender, responder: responder, requester: requester)
        let id = self.ids.next()
        self.pending.withLock { $0[id] = entry }
        return (id, receiver)
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

    /// Ends request `id` with an ERROR (its timeout), if it is still waiting.
    func fail(_ id: UInt64, code: ErrorCode, message: String) {
        self.pending.withLock { $0.removeValue(forKey: id) }?.resolve(.failed(code, message))
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
