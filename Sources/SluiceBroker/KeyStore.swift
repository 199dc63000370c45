import SluiceChannels
import SluiceWire

/// A key's value as stored: revision 0 means the key has none.
struct KeyValue: Sendable {
    var revision: UInt64 = 0
    var headers = Headers()
    var payload = Payload()
}

/// Keys, each a `Watch` channel: SET sends the new value, GET borrows the current one, WATCH subscribes.
///
/// A watcher holds at most one pending value (the watch channel's latest), so a slow watcher skips intermediate
/// values and always ends on the newest; nothing grows with the number of SETs. Keys live until the server stops,
/// as in Redis; there are at most `limit` of them (`--max-keys`).
final class KeyStore: Sendable {
    private let keys = Locked<[String: Watch<KeyValue>.Sender]>([:])
    private let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    /// The key's channel, created on first use; `nil` if it is new and the store already holds `limit` keys.
    private func channel(_ key: String) -> Watch<KeyValue>.Sender? {
        self.keys.withLock { keys in
            if let sender = keys[key] { return sender }
            guard keys.count < self.limit else { return nil }
            let (sender, _) = Watch<KeyValue>.channel(KeyValue())
            keys[key] = sender
            return sender
        }
    }

    /// Stores a new value and returns its revision, or `nil` if the key is new and the store is full.
    @discardableResult
    func set(_ key: String, headers: Headers, payload: Payload) -> UInt64? {
        guard let channel = self.channel(key) else { return nil }
        var revision: UInt64 = 0
        channel.sendModify { value in
            value = KeyValue(revision: value.revision + 1, headers: headers, payload: payload)
            revision = value.revision
        }
        return revision
    }

    /// The current value (revision 0 when never set).
    func get(_ key: String) -> KeyValue {
        self.keys.withLock { $0[key]?.borrow() } ?? KeyValue()
    }

    /// A receiver that has not yet seen the current value, or `nil` if the key is new and the store is full.
    func watch(_ key: String) -> Watch<KeyValue>.Receiver? {
        self.channel(key)?.subscribe()
    }

    /// Keys that have been set or watched.
    var count: Int { self.keys.withLock { $0.count } }
}
