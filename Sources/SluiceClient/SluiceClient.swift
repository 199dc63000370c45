public import SluiceIO
import SluiceWire

/// An async client for a Sluice broker: one TCP connection, shared by every task that uses it.
///
/// Connect once, then publish, subscribe, push and consume work, read and watch keys, make and serve requests,
/// from any number of tasks at the same time. Under the hood one reader task and one writer task run on the
/// connection's ``SluiceIO/EventLoop``: the writer drains a bounded queue of frames into one write per batch, the
/// reader routes answers to the calls waiting for them (one `Oneshot` per call, by request id) and deliveries to
/// subscriptions (by subscription id). The client answers the server's PINGs by itself.
///
/// ## Backpressure
///
/// - **Sending.** Frames wait in a bounded queue (1,024 frames) for the writer. When the server stops reading
///   (a full work queue, say) the queue fills and `publish`, `push` and friends wait: the producer slows down to
///   what the socket takes.
/// - **Subscriptions.** Each ``Subscription`` buffers at most `bufferSize` events. When its consumer falls that
///   far behind, the reader **waits** for it rather than drop or grow: the server then stops writing to this
///   connection, its per-subject buffer absorbs the difference, and when even that overflows the subscription
///   receives ``SubscriptionEvent/lagged(_:)`` with the exact number of messages skipped. Memory stays bounded
///   and the count is exact, but while one subscription is full **nothing else on the connection is read**:
///   do not wait for another answer on the same client from inside a loop over a subscription that can fill up
///   (use a second client for that, or a larger buffer).
/// - **Queues** are bounded by credit: a consumer holds at most `credit` unsettled messages, and its buffer has
///   room for all of them, so a consumer never stalls the reader.
/// - **Watches** hold only the newest value (a `Watch` channel): a slow watcher skips intermediate values but
///   always ends on the last one, and never stalls the reader.
///
/// ## Ending
///
/// ``close(timeout:)`` says GOODBYE, lets the server flush what it still has for us, and waits for it to close.
/// When the connection ends for any reason, every waiting call fails at once with
/// ``SluiceError/connectionClosed(_:)``, and every subscription sequence ends after the events it had buffered:
/// normally after ``close(timeout:)``, by throwing that error otherwise. Releasing the last reference to the
/// client without closing it drops the connection abruptly; keep the client alive while its subscriptions are
/// in use.
///
/// ## Examples
///
/// ```swift
/// let client = try await SluiceClient.connect(to: "127.0.0.1:7420", name: "billing")
/// let orders = try await client.subscribe("orders.>")
/// try await client.publish("orders.eu.created", "{\"id\":1}")
/// for try await event in orders {
///     switch event {
///     case .message(let message): print(message.subject, String(decoding: message.payload, as: UTF8.self))
///     case .lagged(let missed): print("missed \(missed)")
///     }
/// }
/// await client.close()
/// ```
public final class SluiceClient: Sendable {
    let connection: Connection
    /// What the server said in WELCOME: its limits and name.
    public let server: ServerInfo

    /// The event loop the connection's tasks run on.
    public var loop: EventLoop { self.connection.loop }

    private init(connection: Connection, server: ServerInfo) {
        self.connection = connection
        self.server = server
    }

    deinit {
        self.connection.abort()
    }

    /// Connects to a broker and completes the handshake (HELLO, then WELCOME).
    ///
    /// - Parameters:
    ///   - address: the broker's address.
    ///   - name: a name for the server's logs.
    ///   - token: the shared token, if the server requires one.
    ///   - loop: the event loop to run the connection on; by default a loop shared by all clients of the process.
    ///
    /// ## Errors
    /// - ``SluiceError/cannotConnect(_:)`` when nothing answers at `address`.
    /// - ``SluiceError/server(code:message:)`` when the server refuses the connection: `AUTHENTICATION_FAILED`,
    ///   `TOO_MANY_CONNECTIONS`, `SHUTTING_DOWN`, `UNSUPPORTED_VERSION`.
    /// - ``SluiceError/connectionClosed(_:)`` when the connection ends during the handshake.
    ///
    /// ## Cancellation
    /// Cancelling the task closes the half-open connection and throws `CancellationError`.
    ///
    /// ## Examples
    /// ```swift
    /// let address = try SocketAddress(host: "127.0.0.1", port: 7420)
    /// let client = try await SluiceClient.connect(to: address, name: "worker-1", token: "s3cret")
    /// print(client.server.serverName)     // "sluiced 0.1.0"
    /// ```
    public static func connect(
        to address: SocketAddress,
        name: String = "sluice-swift",
        token: String? = nil,
        on loop: EventLoop? = nil
    ) async throws -> SluiceClient {
        guard let loop = try loop ?? SluiceClient.defaultLoop() else {
            throw SluiceError.cannotConnect("cannot start an event loop")
        }
        let stream: TCPStream
        do {
            stream = try await TCPStream.connect(to: address, on: loop)
        } catch let error as IOError {
            throw SluiceError.cannotConnect("cannot connect to \(address): \(error.reason)")
        }
        let connection = Connection(stream: stream)
        connection.start()
        do {
            try await connection.send(.hello(Frame.Hello(clientName: name, token: token)))
            let answer = try await connection.handshake.value()
            guard case .welcome(let welcome) = try answer.get() else {
                throw SluiceError.connectionClosed(.failure("the server answered HELLO with something else"))
            }
            let info = ServerInfo(
                version: welcome.version,
                maxFrameSize: Int(welcome.maxFrameSize),
                idleTimeout: .milliseconds(Int64(welcome.idleTimeoutMilliseconds)),
                maxInflightRequests: Int(welcome.maxInflightRequests),
                maxSubscriptions: Int(welcome.maxSubscriptions),
                serverName: welcome.serverName
            )
            return SluiceClient(connection: connection, server: info)
        } catch {
            connection.abort()
            throw error
        }
    }

    /// Connects to `"host:port"` (`127.0.0.1:7420`, `localhost:7420`, `[::1]:7420`; numeric hosts only, plus
    /// `localhost`). See ``connect(to:name:token:on:)-(SocketAddress,_,_,_)``.
    ///
    /// ## Errors
    /// ``SluiceError/invalidArgument(_:)`` for an address that does not parse; otherwise as the other `connect`.
    ///
    /// ## Examples
    /// ```swift
    /// let client = try await SluiceClient.connect(to: "localhost:7420")
    /// ```
    public static func connect(
        to address: String,
        name: String = "sluice-swift",
        token: String? = nil,
        on loop: EventLoop? = nil
    ) async throws -> SluiceClient {
        try await self.connect(to: try self.parseAddress(address), name: name, token: token, on: loop)
    }

    /// Parses `"host:port"`.
    ///
    /// ## Errors
    /// ``SluiceError/invalidArgument(_:)`` naming what is wrong.
    public static func parseAddress(_ text: String) throws(SluiceError) -> SocketAddress {
        guard let colon = text.lastIndex(of: ":") else {
            throw .invalidArgument("bad server address '\(text)': expected host:port")
        }
        let host = String(text[..<colon])
        guard let port = UInt16(text[text.index(after: colon)...]) else {
            throw .invalidArgument("bad server address '\(text)': the port must be a number from 0 to 65535")
        }
        do {
            return try SocketAddress(host: host.isEmpty ? "127.0.0.1" : host, port: port)
        } catch {
            throw .invalidArgument("bad server address '\(text)': '\(host)' is not a numeric IPv4 or IPv6 address")
        }
    }

    /// Says GOODBYE and waits until the server has flushed what it queued for this client and closed.
    ///
    /// Frames queued before `close` are sent first. Afterwards every call fails with
    /// ``SluiceError/connectionClosed(_:)`` (``SluiceError/ConnectionEnd/closedByClient``), and subscription
    /// sequences end normally after what they buffered. Calling it again does nothing more.
    ///
    /// - Parameter timeout: how long to wait for the server to close; then the socket is closed from this side.
    ///
    /// ## Examples
    /// ```swift
    /// try await client.publish("audit", "bye", ack: true)
    /// await client.close()
    /// ```
    public func close(timeout: Duration = .seconds(5)) async {
        await self.connection.close(timeout: timeout)
    }

    /// Sends PING and waits for PONG: a round trip through the server's session, behind everything sent before.
    ///
    /// Because the server handles a connection's frames in order, a returned `ping()` also means every frame
    /// sent before it was handled.
    ///
    /// ## Errors
    /// ``SluiceError/connectionClosed(_:)``; `CancellationError`.
    public func ping() async throws {
        try await self.connection.ping()
    }

    /// The server's counters, in the order the server lists them.
    ///
    /// ## Errors
    /// ``SluiceError/connectionClosed(_:)``; `CancellationError`.
    ///
    /// ## Examples
    /// ```swift
    /// for counter in try await client.stats() { print(counter.name, counter.value) }
    /// ```
    public func stats() async throws -> [Statistic] {
        let frame = try await self.connection.call { .stats(requestID: $0) }
        guard case .statsReply(let reply) = frame else { throw unexpected(frame, for: "STATS") }
        return reply.entries.map { Statistic(name: $0.name, value: $0.value) }
    }

    // MARK: - Checks shared by the operations

    /// Throws ``SluiceError/invalidArgument(_:)`` when `name` breaks the grammar for `kind`.
    func check(_ name: String, as kind: NameKind) throws(SluiceError) {
        do {
            try Subject.validate(name, as: kind)
        } catch {
            throw .invalidArgument("\(error): '\(name)'")
        }
    }

    /// Throws ``SluiceError/invalidArgument(_:)`` when a frame with these fields would pass the server's limit.
    func checkSize(name: String, headers: Headers, payload: Payload) throws(SluiceError) {
        var size = 32 + name.utf8.count + payload.count
        for field in headers.fields {
            let nameCount = field.name.utf8.count
            let valueCount = field.value.utf8.count
            guard nameCount <= 65_535, valueCount <= 65_535 else {
                throw .invalidArgument("a header name or value is longer than 65535 bytes")
            }
            size += 4 + nameCount + valueCount
        }
        guard headers.count <= 65_535 else { throw .invalidArgument("more than 65535 headers") }
        guard size <= self.server.maxFrameSize else {
            throw .invalidArgument(
                "the message is \(payload.count) bytes, too large for the server's limit of \(self.server.maxFrameSize)"
                    + " bytes per frame"
            )
        }
    }

    /// The event loop shared by clients that were not given one.
    private static func defaultLoop() throws -> EventLoop? {
        try sharedGroup.get().loops.first
    }
}

/// One loop for every client of the process that does not bring its own, started on first use.
private let sharedGroup = Result { () throws(IOError) -> EventLoopGroup in
    try EventLoopGroup(count: 1, name: "sluice-client")
}

/// The error for an answer of the wrong kind (a server bug).
func unexpected(_ frame: Frame, for request: String) -> SluiceError {
    .connectionClosed(.failure("the server answered \(request) with \(frame.opcode)"))
}

extension IOError {
    /// The operating system's words for the failure, without the call's name.
    var reason: String {
        let text = self.description
        guard let range = text.firstRange(of: " failed: ") else { return text }
        return String(text[range.upperBound...])
    }
}
