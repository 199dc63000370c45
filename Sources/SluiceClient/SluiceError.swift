public import SluiceWire

/// Why a ``SluiceClient`` call failed.
///
/// Three families, so that callers can decide what to do without parsing text:
///
/// - ``server(code:message:)``: the server answered the request with ERROR. Codes from 100 up
///   (`NO_RESPONDERS`, `TIMEOUT`, `QUEUE_FULL`, …) fail only that call; the connection stays usable. A code below
///   100 in answer to HELLO (`AUTHENTICATION_FAILED`, `TOO_MANY_CONNECTIONS`, …) fails ``SluiceClient/connect(to:name:token:on:)``.
/// - ``connectionClosed(_:)``: the connection ended (the server said GOODBYE, sent a closing ERROR, the socket
///   reached its end or failed, or ``SluiceClient/close(timeout:)`` was called) before the call was answered.
///   Every waiting call fails with it at once; nothing waits forever on a dead connection.
/// - ``cannotConnect(_:)`` and ``invalidArgument(_:)``: nothing was sent.
///
/// ``code`` gives the wire ``ErrorCode`` wherever there is one, including a closing ERROR's code.
///
/// ## Examples
///
/// ```swift
/// do {
///     let answer = try await client.request("time.now", "", timeout: .seconds(1))
///     print(String(decoding: answer.payload, as: UTF8.self))
/// } catch let error as SluiceError where error.code == .noResponders {
///     print("nobody serves time.now")
/// }
/// ```
public enum SluiceError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The server answered with ERROR: its code and message.
    case server(code: ErrorCode, message: String)
    /// The connection ended before the call was answered; the text says how.
    case connectionClosed(ConnectionEnd)
    /// The server could not be reached (the text names the address and the reason).
    case cannotConnect(String)
    /// The call was refused before anything was sent: a name breaking the grammar, a frame over the server's
    /// limit, an unparsable address.
    case invalidArgument(String)

    /// How a connection ended.
    public enum ConnectionEnd: Hashable, Sendable, CustomStringConvertible {
        /// ``SluiceClient/close(timeout:)`` was called.
        case closedByClient
        /// The server sent GOODBYE (it is shutting down, or answered ours).
        case goodbye
        /// The server sent an ERROR with a code below 100 and closed.
        case error(code: ErrorCode, message: String)
        /// The socket ended without GOODBYE.
        case endOfStream
        /// A read or write failed, or the server sent bytes that are not valid frames.
        case failure(String)

        /// One line for logs and error messages.
        public var description: String {
            switch self {
            case .closedByClient: "the connection was closed"
            case .goodbye: "the server closed the connection (GOODBYE)"
            case .error(let code, let message): "the server closed the connection: \(code): \(message)"
            case .endOfStream: "the server closed the connection unexpectedly"
            case .failure(let text): "the connection failed: \(text)"
            }
        }
    }

    /// The wire error code, when the server sent one (request errors, and the ERROR that closed a connection).
    public var code: ErrorCode? {
        switch self {
        case .server(let code, _): code
        case .connectionClosed(.error(let code, _)): code
        default: nil
        }
    }

    /// One readable line: `NO_RESPONDERS (104): nobody serves time.now`.
    public var description: String {
        switch self {
        case .server(let code, let message): message.isEmpty ? "\(code)" : "\(code): \(message)"
        case .connectionClosed(let end): end.description
        case .cannotConnect(let text): text
        case .invalidArgument(let text): text
        }
    }
}
