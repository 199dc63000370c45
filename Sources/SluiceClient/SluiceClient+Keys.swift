import SluiceChannels
public import SluiceWire

extension SluiceClient {
    /// Stores a key's value (headers and payload); the key's revision goes up by one.
    ///
    /// - Parameter ack: wait for the server's OK (the default), after which every GET sees the value.
    ///
    /// ## Errors
    /// ``SluiceError/invalidArgument(_:)`` for a bad key or a value over the frame limit;
    /// ``SluiceError/server(code:message:)``; ``SluiceError/connectionClosed(_:)``.
    ///
    /// ## Examples
    /// ```swift
    /// try await client.set("config.mode", "on")
    /// ```
    public func set(_ key: String, _ value: Payload, headers: Headers = Headers(), ack: Bool = true) async throws {
        try self.check(key, as: .key)
        try self.checkSize(name: key, headers: headers, payload: value)
        guard ack else {
            try await self.connection.send(.set(Frame.SetKey(key: key, headers: headers, payload: value)))
            return
        }
        _ = try await self.connection.call {
            .set(Frame.SetKey(requestID: $0, ackWanted: true, key: key, headers: headers, payload: value))
        }
    }

    /// Reads a key's value once.
    ///
    /// - Returns: the value with its revision, or `nil` when the key has none (revision 0).
    ///
    /// ## Errors
    /// ``SluiceError/invalidArgument(_:)`` for a bad key; ``SluiceError/connectionClosed(_:)``.
    ///
    /// ## Examples
    /// ```swift
    /// if let mode = try await client.get("config.mode") {
    ///     print(String(decoding: mode.payload, as: UTF8.self), "at revision", mode.revision)
    /// }
    /// ```
    public func get(_ key: String) async throws -> KeyValue? {
        try self.check(key, as: .key)
        let frame = try await self.connection.call { .get(Frame.GetKey(requestID: $0, key: key)) }
        guard case .value(let value) = frame else { throw unexpected(frame, for: "GET") }
        guard value.revision > 0 else { return nil }
        return KeyValue(key: value.key, revision: value.revision, headers: value.headers, payload: value.payload)
    }

    /// Follows a key: the returned ``KeyWatch`` yields the current value at once, then the newest value after
    /// each change.
    ///
    /// A slow watcher skips intermediate values but always ends on the newest one; a watch never stalls the
    /// connection. A key without a value is reported with revision 0 (``KeyValue/exists`` false).
    ///
    /// ## Errors
    /// ``SluiceError/invalidArgument(_:)`` for a bad key; ``SluiceError/server(code:message:)``
    /// (`TOO_MANY_SUBSCRIPTIONS`); ``SluiceError/connectionClosed(_:)``.
    ///
    /// ## Examples
    /// ```swift
    /// for try await value in try await client.watch("config.mode") {
    ///     apply(value.payload)
    /// }
    /// ```
    public func watch(_ key: String) async throws -> KeyWatch {
        try self.check(key, as: .key)
        let (sender, receiver) = Watch<KeyValue?>.channel(nil)
        let id = self.connection.nextSubscriptionID()
        try self.connection.addRoute(id, .watch(sender))
        // A watch's channel never makes the reader wait, so there is nothing to close early.
        let handle = RouteHandle(connection: self.connection, id: id) {}
        _ = try await self.connection.call { .watch(Frame.WatchKey(requestID: $0, subscriptionID: id, key: key)) }
        return KeyWatch(handle: handle, receiver: receiver)
    }
}

/// A key's values over time, as an `AsyncSequence` of ``KeyValue``: the current one, then the newest after each
/// change.
///
/// Ends like a ``Subscription``: normally after ``unsubscribe()`` or ``SluiceClient/close(timeout:)`` (after the
/// last value received), by throwing ``SluiceError/connectionClosed(_:)`` when the connection ends otherwise.
public struct KeyWatch: AsyncSequence, Sendable {
    public typealias Element = KeyValue
    public typealias Failure = any Error

    let handle: RouteHandle
    let receiver: Watch<KeyValue?>.Receiver

    /// The subscription id on the wire.
    public var id: UInt32 { self.handle.id }

    /// Ends the watch.
    ///
    /// ## Errors
    /// ``SluiceError/connectionClosed(_:)``; `CancellationError`.
    public func unsubscribe() async throws {
        try await self.handle.unsubscribe()
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(handle: self.handle, receiver: self.receiver.clone())
    }

    /// Reads the newest values.
    public struct AsyncIterator: AsyncIteratorProtocol, Sendable {
        let handle: RouteHandle
        let receiver: Watch<KeyValue?>.Receiver
        /// Whether the value present when iteration began was looked at.
        var started = false

        /// The current value on the first call (once the server has sent it), then the newest value after the
        /// next change.
        ///
        /// ## Errors
        /// ``SluiceError/connectionClosed(_:)`` when the connection ended abnormally; `CancellationError`.
        public mutating func next() async throws -> KeyValue? {
            if !self.started {
                self.started = true
                if let value = self.receiver.borrowAndUpdate() { return value }
            }
            while true {
                do {
                    try await self.receiver.changed()
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    try self.handle.sequenceEnded()
                    return nil
                }
                if let value = self.receiver.borrowAndUpdate() { return value }
            }
        }
    }
}
