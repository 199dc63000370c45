import SluiceChannels
public import SluiceWire

extension SluiceClient {
    /// Publishes a message to a subject.
    ///
    /// Without `ack` this is the fast path: the frame is queued for the writer and the call returns; a publish
    /// the server refuses is not reported (names are checked here first, so that takes a server-side limit).
    /// With `ack` the call waits for the server's OK, after which every subscriber that was subscribed has the
    /// message in its buffer or has been told it lagged.
    ///
    /// ## Errors
    /// - ``SluiceError/invalidArgument(_:)`` for a subject that breaks the grammar (wildcards included) or a
    ///   message over the server's frame limit; nothing is sent.
    /// - ``SluiceError/server(code:message:)`` (with `ack`) when the server refuses it.
    /// - ``SluiceError/connectionClosed(_:)``; `CancellationError` while waiting for room in the send queue.
    ///
    /// ## Examples
    /// ```swift
    /// try await client.publish("orders.eu.created", "{\"id\":1}", headers: ["content-type": "application/json"])
    /// try await client.publish("audit.login", "alice", ack: true)   // returns after the server's OK
    /// ```
    public func publish(
        _ subject: String,
        _ payload: Payload,
        headers: Headers = Headers(),
        ack: Bool = false
    ) async throws {
        try self.check(subject, as: .subject)
        try self.checkSize(name: subject, headers: headers, payload: payload)
        guard ack else {
            try await self.connection.send(.pub(Frame.Publish(subject: subject, headers: headers, payload: payload)))
            return
        }
        _ = try await self.connection.call {
            .pub(Frame.Publish(requestID: $0, ackWanted: true, subject: subject, headers: headers, payload: payload))
        }
    }

    /// Subscribes to every subject matching `pattern` (`*` matches one token, a final `>` one or more).
    ///
    /// Returns after the server's OK: every message published after that reaches the subscription, in order per
    /// publisher. Iterate the returned ``Subscription`` for ``SubscriptionEvent``s.
    ///
    /// - Parameters:
    ///   - pattern: the subject pattern.
    ///   - queueGroup: subscribers sharing a group receive each message once per group instead of once each.
    ///   - bufferSize: events buffered for this subscription before the connection's reader waits for its
    ///     consumer (see "Backpressure" on ``SluiceClient``).
    ///
    /// ## Errors
    /// ``SluiceError/invalidArgument(_:)`` for a bad pattern; ``SluiceError/server(code:message:)`` with
    /// `TOO_MANY_SUBSCRIPTIONS`; ``SluiceError/connectionClosed(_:)``.
    ///
    /// ## Examples
    /// ```swift
    /// let subscription = try await client.subscribe("sensors.*.temperature")
    /// for try await case .message(let message) in subscription {
    ///     print(message.subject, String(decoding: message.payload, as: UTF8.self))
    /// }
    /// ```
    public func subscribe(_ pattern: String, queueGroup: String? = nil, bufferSize: Int = 256) async throws
        -> Subscription
    {
        let (handle, receiver) = try await self.openSubscription(
            pattern,
            queueGroup: queueGroup,
            bufferSize: bufferSize
        )
        return Subscription(handle: handle, receiver: receiver)
    }

    /// Ends a subscription: events already buffered can still be read, then its sequence ends.
    ///
    /// Waits for the server's OK; no message for the subscription arrives after it.
    ///
    /// ## Errors
    /// ``SluiceError/connectionClosed(_:)`` (the subscription is over anyway); `CancellationError`.
    public func unsubscribe(_ subscription: Subscription) async throws {
        try await subscription.handle.unsubscribe()
    }

    /// Sends SUB and returns the new subscription once the server has answered OK.
    func openSubscription(
        _ pattern: String,
        queueGroup: String?,
        bufferSize: Int
    ) async throws -> (RouteHandle, MPSC<Connection.Delivery>.Receiver) {
        try self.check(pattern, as: .pattern)
        if let queueGroup { try self.check(queueGroup, as: .queueGroup) }
        let (sender, receiver) = MPSC<Connection.Delivery>.channel(capacity: max(1, bufferSize))
        let id = self.connection.nextSubscriptionID()
        try self.connection.addRoute(id, .subject(sender))
        // From here on, a failure releases the handle, which forgets the route.
        let handle = RouteHandle(connection: self.connection, id: id) { receiver.close() }
        _ = try await self.connection.call {
            .sub(Frame.Subscribe(requestID: $0, subscriptionID: id, pattern: pattern, queueGroup: queueGroup))
        }
        return (handle, receiver)
    }
}

/// The deliveries of one subscription, as an `AsyncSequence` of ``SubscriptionEvent``.
///
/// The sequence ends (returns `nil`) after ``SluiceClient/unsubscribe(_:)`` or ``SluiceClient/close(timeout:)``,
/// once the events buffered before it are read. If the connection ends any other way, iteration throws
/// ``SluiceError/connectionClosed(_:)`` after those events. Releasing every copy of the subscription (and its
/// iterators) unsubscribes without waiting.
///
/// Iterate it from one task at a time.
///
/// ## Examples
/// ```swift
/// let subscription = try await client.subscribe("logs.>")
/// for try await event in subscription {
///     switch event {
///     case .message(let message): write(message.payload)
///     case .lagged(let missed): warn("skipped \(missed) log lines")
///     }
/// }
/// ```
public struct Subscription: AsyncSequence, Sendable {
    public typealias Element = SubscriptionEvent
    public typealias Failure = any Error

    let handle: RouteHandle
    let receiver: MPSC<Connection.Delivery>.Receiver

    /// The subscription id on the wire.
    public var id: UInt32 { self.handle.id }

    /// Ends the subscription; see ``SluiceClient/unsubscribe(_:)``.
    public func unsubscribe() async throws {
        try await self.handle.unsubscribe()
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(handle: self.handle, receiver: self.receiver)
    }

    /// Reads the subscription's events in order.
    public struct AsyncIterator: AsyncIteratorProtocol, Sendable {
        let handle: RouteHandle
        let receiver: MPSC<Connection.Delivery>.Receiver

        /// The next event; waits while none is buffered.
        ///
        /// ## Errors
        /// ``SluiceError/connectionClosed(_:)`` when the connection ended abnormally; `CancellationError`.
        ///
        /// ## Cancellation
        /// Cancel-safe: a cancelled `next()` takes no event.
        public mutating func next() async throws -> SubscriptionEvent? {
            switch try await self.receiver.recv() {
            case .message(let message)?:
                return .message(Message(subject: message.subject, headers: message.headers, payload: message.payload))
            case .lagged(let missed)?:
                return .lagged(missed)
            case nil:
                try self.handle.sequenceEnded()
                return nil
            }
        }
    }
}
