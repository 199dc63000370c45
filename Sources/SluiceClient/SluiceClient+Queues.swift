import SluiceChannels
public import SluiceWire

extension SluiceClient {
    /// Puts a message on a work queue; exactly one consumer will get it.
    ///
    /// When the queue is full the server stops reading this connection until there is room, so this call (and
    /// every later send on the client) waits: TCP pushes back on the producer. With `noWait` the server refuses
    /// the message at once with `QUEUE_FULL` instead; that refusal is only reported to a call that also asks for
    /// `ack`.
    ///
    /// ## Errors
    /// - ``SluiceError/invalidArgument(_:)`` for a bad queue name or a message over the frame limit.
    /// - ``SluiceError/server(code:message:)`` (with `ack`): `QUEUE_FULL` with `noWait`.
    /// - ``SluiceError/connectionClosed(_:)``; `CancellationError`.
    ///
    /// ## Examples
    /// ```swift
    /// try await client.push("jobs.resize", "photo-17.jpg")
    /// do {
    ///     try await client.push("jobs.resize", "photo-18.jpg", noWait: true, ack: true)
    /// } catch let error as SluiceError where error.code == .queueFull {
    ///     print("busy, try later")
    /// }
    /// ```
    public func push(
        _ queue: String,
        _ payload: Payload,
        headers: Headers = Headers(),
        noWait: Bool = false,
        ack: Bool = false
    ) async throws {
        try self.check(queue, as: .queue)
        try self.checkSize(name: queue, headers: headers, payload: payload)
        guard ack else {
            let frame = Frame.Push(noWait: noWait, queue: queue, headers: headers, payload: payload)
            try await self.connection.send(.push(frame))
            return
        }
        _ = try await self.connection.call {
            .push(
                Frame.Push(
                    requestID: $0,
                    ackWanted: true,
                    noWait: noWait,
                    queue: queue,
                    headers: headers,
                    payload: payload
                )
            )
        }
    }

    /// Starts consuming a work queue: the server delivers up to `credit` messages that this consumer has not
    /// settled yet; settle each with ``QueueMessage/ack(confirmed:)`` or ``QueueMessage/nack(confirmed:)``.
    ///
    /// Messages this consumer does not ack (NACKed, or still unsettled when it unsubscribes, is released or its
    /// client closes) go to a consumer again, marked ``QueueMessage/redelivered``.
    ///
    /// - Parameter credit: unsettled messages at most (the server may lower it to its own limit). The consumer
    ///   buffers that many, so it never stalls the connection.
    ///
    /// ## Errors
    /// ``SluiceError/invalidArgument(_:)`` for a bad name or a credit below 1; ``SluiceError/server(code:message:)``
    /// (`TOO_MANY_SUBSCRIPTIONS`); ``SluiceError/connectionClosed(_:)``.
    ///
    /// ## Examples
    /// ```swift
    /// for try await job in try await client.consume("jobs.resize", credit: 8) {
    ///     do {
    ///         try await resize(job.payload)
    ///         try await job.ack()
    ///     } catch {
    ///         try await job.nack()          // someone else gets it, marked redelivered
    ///     }
    /// }
    /// ```
    public func consume(_ queue: String, credit: Int = 64) async throws -> QueueConsumer {
        try self.check(queue, as: .queue)
        guard credit >= 1, credit <= Int(UInt32.max) else {
            throw SluiceError.invalidArgument("credit must be at least 1, got \(credit)")
        }
        let (sender, receiver) = MPSC<Frame.Message>.channel(capacity: credit)
        let id = self.connection.nextSubscriptionID()
        try self.connection.addRoute(id, .queue(sender))
        let handle = RouteHandle(connection: self.connection, id: id) { receiver.close() }
        _ = try await self.connection.call {
            .consume(Frame.Consume(requestID: $0, subscriptionID: id, credit: UInt32(credit), queue: queue))
        }
        return QueueConsumer(handle: handle, receiver: receiver)
    }
}

/// One message taken from a work queue. Settle it exactly once: ``ack(confirmed:)`` when done,
/// ``nack(confirmed:)`` to give it back.
public struct QueueMessage: Sendable {
    /// The queue it came from.
    public var queue: String
    /// The producer's headers.
    public var headers: Headers
    /// The producer's bytes.
    public var payload: Payload
    /// The server's id for this delivery, which ACK and NACK name.
    public var deliveryID: UInt64
    /// True when an earlier delivery of this message was NACKed or its consumer left without ACK.
    public var redelivered: Bool

    let connection: Connection

    /// Settles the message for good.
    ///
    /// - Parameter confirmed: wait for the server's OK (a round trip) instead of returning once ACK is queued.
    ///
    /// ## Errors
    /// ``SluiceError/server(code:message:)`` (`UNKNOWN_ID`, with `confirmed`, when the delivery is no longer this
    /// consumer's); ``SluiceError/connectionClosed(_:)`` (the message will be delivered again).
    public func ack(confirmed: Bool = false) async throws {
        try await self.settle(confirmed: confirmed) { .ack($0) }
    }

    /// Gives the message back: it is delivered again (to any consumer), marked redelivered.
    ///
    /// ## Errors
    /// As ``ack(confirmed:)``.
    public func nack(confirmed: Bool = false) async throws {
        try await self.settle(confirmed: confirmed) { .nack($0) }
    }

    private func settle(confirmed: Bool, _ make: (Frame.Acknowledgement) -> Frame) async throws {
        guard confirmed else {
            try await self.connection.send(make(Frame.Acknowledgement(deliveryID: self.deliveryID)))
            return
        }
        _ = try await self.connection.call {
            make(Frame.Acknowledgement(requestID: $0, ackWanted: true, deliveryID: self.deliveryID))
        }
    }
}

/// A queue consumer's deliveries, as an `AsyncSequence` of ``QueueMessage``.
///
/// Ends like a ``Subscription``: normally after ``unsubscribe()`` or ``SluiceClient/close(timeout:)``, by
/// throwing ``SluiceError/connectionClosed(_:)`` when the connection ends otherwise.
public struct QueueConsumer: AsyncSequence, Sendable {
    public typealias Element = QueueMessage
    public typealias Failure = any Error

    let handle: RouteHandle
    let receiver: MPSC<Frame.Message>.Receiver

    /// The subscription id on the wire.
    public var id: UInt32 { self.handle.id }

    /// Stops the consumer: the server takes back every message it has not settled and delivers them again.
    ///
    /// ## Errors
    /// ``SluiceError/connectionClosed(_:)``; `CancellationError`.
    public func unsubscribe() async throws {
        try await self.handle.unsubscribe()
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(handle: self.handle, receiver: self.receiver)
    }

    /// Reads the consumer's messages in delivery order.
    public struct AsyncIterator: AsyncIteratorProtocol, Sendable {
        let handle: RouteHandle
        let receiver: MPSC<Frame.Message>.Receiver

        /// The next message; waits while none is buffered.
        ///
        /// ## Errors
        /// ``SluiceError/connectionClosed(_:)`` when the connection ended abnormally; `CancellationError`.
        public mutating func next() async throws -> QueueMessage? {
            guard let message = try await self.receiver.recv() else {
                try self.handle.sequenceEnded()
                return nil
            }
            var deliveryID: UInt64 = 0
            var redelivered = false
            if case .queue(let id, let again) = message.delivery {
                deliveryID = id
                redelivered = again
            }
            return QueueMessage(
                queue: message.subject,
                headers: message.headers,
                payload: message.payload,
                deliveryID: deliveryID,
                redelivered: redelivered,
                connection: self.handle.connection
            )
        }
    }
}
