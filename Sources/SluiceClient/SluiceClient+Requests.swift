import SluiceChannels
public import SluiceWire

extension SluiceClient {
    /// Asks one responder serving `subject` and waits for its response.
    ///
    /// ## Errors
    /// ``SluiceError/server(code:message:)`` with
    /// - `NO_RESPONDERS` at once when nobody serves the subject,
    /// - `RESPONDER_GONE` at once when the chosen responder leaves before replying,
    /// - `TIMEOUT` when no response came within `timeout` (the server enforces it; this client gives up too if
    ///   the server stays silent a little longer),
    ///
    /// and ``SluiceError/invalidArgument(_:)`` for a bad subject, ``SluiceError/connectionClosed(_:)``.
    ///
    /// ## Cancellation
    /// A cancelled request throws `CancellationError`; a response that arrives later is dropped.
    ///
    /// ## Examples
    /// ```swift
    /// do {
    ///     let response = try await client.request("time.now", "", timeout: .seconds(2))
    ///     print(String(decoding: response.payload, as: UTF8.self))
    /// } catch let error as SluiceError where error.code == .noResponders {
    ///     print("no clock is running")
    /// }
    /// ```
    public func request(
        _ subject: String,
        _ payload: Payload,
        headers: Headers = Headers(),
        timeout: Duration = .seconds(5)
    ) async throws -> Response {
        try self.check(subject, as: .subject)
        try self.checkSize(name: subject, headers: headers, payload: payload)
        let milliseconds = max(1, timeout.wholeMilliseconds)
        let frame = try await self.connection.call(timeout: timeout + .seconds(2)) {
            .request(
                Frame.Request(
                    requestID: $0,
                    timeoutMilliseconds: milliseconds,
                    subject: subject,
                    headers: headers,
                    payload: payload
                )
            )
        }
        guard case .response(let response) = frame else { throw unexpected(frame, for: "REQUEST") }
        return Response(response.payload, headers: response.headers)
    }

    /// Serves `subject`: the returned sequence yields each ``IncomingRequest``; answer it with
    /// ``IncomingRequest/reply(_:headers:ack:)``.
    ///
    /// Returns once the server has registered the responder. Plain publishes to the subject are skipped.
    ///
    /// - Parameters:
    ///   - subject: the subject (or pattern) to serve.
    ///   - queueGroup: responders sharing a group split the requests between them.
    ///   - bufferSize: requests buffered before the connection's reader waits for the responder.
    ///
    /// ## Errors
    /// As ``subscribe(_:queueGroup:bufferSize:)``.
    ///
    /// ## Examples
    /// ```swift
    /// for try await request in try await client.replies("math.double") {
    ///     let n = Int(String(decoding: request.payload, as: UTF8.self)) ?? 0
    ///     try await request.reply(Payload("\(2 * n)"))
    /// }
    /// ```
    public func replies(_ subject: String, queueGroup: String? = nil, bufferSize: Int = 256) async throws
        -> IncomingRequests
    {
        let (handle, receiver) = try await self.openSubscription(
            subject,
            queueGroup: queueGroup,
            bufferSize: bufferSize
        )
        return IncomingRequests(handle: handle, receiver: receiver)
    }

    /// Serves `subject` with `handler` until the connection ends or the task is cancelled: each request is
    /// answered with what the handler returns.
    ///
    /// Requests are handled one at a time, in order. A handler that throws leaves its request unanswered (the
    /// requester gets `TIMEOUT`); serving goes on.
    ///
    /// ## Errors
    /// As ``replies(_:queueGroup:bufferSize:)`` while starting; afterwards ``SluiceError/connectionClosed(_:)``
    /// when the connection ends abnormally. Returns normally after ``close(timeout:)``.
    ///
    /// ## Cancellation
    /// Cancelling the task stops serving (`CancellationError`) and unsubscribes.
    ///
    /// ## Examples
    /// ```swift
    /// let server = Task {
    ///     try await client.serve("echo") { request in Response(request.payload, headers: request.headers) }
    /// }
    /// ```
    public func serve(
        _ subject: String,
        queueGroup: String? = nil,
        handler: @escaping @Sendable (IncomingRequest) async throws -> Response
    ) async throws {
        let requests = try await self.replies(subject, queueGroup: queueGroup)
        for try await request in requests {
            guard let response = try? await handler(request) else { continue }
            try await request.reply(response.payload, headers: response.headers)
        }
    }
}

/// A request delivered to a responder. Answer it once with ``reply(_:headers:ack:)``.
public struct IncomingRequest: Sendable {
    /// The subject the request was sent to.
    public var subject: String
    /// The requester's headers.
    public var headers: Headers
    /// The requester's bytes.
    public var payload: Payload
    /// The server's id for this request, which REPLY names.
    public var replyID: UInt64

    let connection: Connection

    /// Sends the response to the requester.
    ///
    /// - Parameter ack: wait for the server's OK. A reply that comes after the requester's timeout (or after it
    ///   left) is refused with `UNKNOWN_ID`, which only a call with `ack` sees.
    ///
    /// ## Errors
    /// ``SluiceError/server(code:message:)`` (`UNKNOWN_ID`, with `ack`); ``SluiceError/invalidArgument(_:)`` for a
    /// response over the frame limit; ``SluiceError/connectionClosed(_:)``.
    public func reply(_ payload: Payload, headers: Headers = Headers(), ack: Bool = false) async throws {
        guard ack else {
            try await self.connection.send(
                .reply(Frame.Reply(requestID: 0, replyID: self.replyID, headers: headers, payload: payload))
            )
            return
        }
        _ = try await self.connection.call {
            .reply(
                Frame.Reply(requestID: $0, ackWanted: true, replyID: self.replyID, headers: headers, payload: payload)
            )
        }
    }
}

/// The requests delivered to a responder, as an `AsyncSequence` of ``IncomingRequest``.
///
/// Ends like a ``Subscription``. Releasing it (and its iterators) stops serving; requests the server had already
/// routed here then get `RESPONDER_GONE`.
public struct IncomingRequests: AsyncSequence, Sendable {
    public typealias Element = IncomingRequest
    public typealias Failure = any Error

    let handle: RouteHandle
    let receiver: MPSC<Connection.Delivery>.Receiver

    /// The subscription id on the wire.
    public var id: UInt32 { self.handle.id }

    /// Stops serving.
    ///
    /// ## Errors
    /// ``SluiceError/connectionClosed(_:)``; `CancellationError`.
    public func unsubscribe() async throws {
        try await self.handle.unsubscribe()
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(handle: self.handle, receiver: self.receiver)
    }

    /// Reads the requests in order.
    public struct AsyncIterator: AsyncIteratorProtocol, Sendable {
        let handle: RouteHandle
        let receiver: MPSC<Connection.Delivery>.Receiver

        /// The next request; waits while none is buffered.
        ///
        /// ## Errors
        /// ``SluiceError/connectionClosed(_:)`` when the connection ended abnormally; `CancellationError`.
        public mutating func next() async throws -> IncomingRequest? {
            while true {
                guard let delivery = try await self.receiver.recv() else {
                    try self.handle.sequenceEnded()
                    return nil
                }
                guard case .message(let message) = delivery, case .request(let replyID) = message.delivery else {
                    continue  // a plain publish to the subject, or lag news: not a request
                }
                return IncomingRequest(
                    subject: message.subject,
                    headers: message.headers,
                    payload: message.payload,
                    replyID: replyID,
                    connection: self.handle.connection
                )
            }
        }
    }
}

extension Duration {
    /// Whole milliseconds, clamped to what a `u32` field holds.
    var wholeMilliseconds: UInt32 {
        let (seconds, attoseconds) = self.components
        guard seconds >= 0 else { return 0 }
        let total = seconds.multipliedReportingOverflow(by: 1_000)
        guard !total.overflow else { return .max }
        return UInt32(clamping: total.partialValue + attoseconds / 1_000_000_000_000_000)
    }
}
