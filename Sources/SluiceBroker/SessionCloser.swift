import SluiceChannels
import SluiceIO
import SluiceWire
import Synchronization

/// Why a connection ended; logged with every connection end.
enum CloseReason: Sendable, Equatable, CustomStringConvertible {
    /// The client closed its side.
    case endOfStream
    /// The client sent GOODBYE.
    case goodbye
    /// The client sent bytes that are not a valid frame, or a frame it may not send.
    case protocolError(ErrorCode, String)
    /// HELLO was refused.
    case refused(ErrorCode, String)
    /// Nothing arrived for the idle timeout (or no HELLO within its deadline).
    case idleTimeout(String)
    /// The client did not read fast enough.
    case slowConsumer
    /// The server is shutting down.
    case shutdown
    /// A socket error.
    case ioError(String)

    /// The frame the server sends last, after everything already queued.
    var lastFrame: Frame? {
        switch self {
        case .endOfStream, .ioError: nil
        case .goodbye, .shutdown: .goodbye
        case .protocolError(let code, let message), .refused(let code, let message):
            .error(Frame.ErrorReport(requestID: 0, code: code, message: message))
        case .idleTimeout(let message):
            .error(Frame.ErrorReport(requestID: 0, code: .idleTimeout, message: message))
        case .slowConsumer:
            .error(Frame.ErrorReport(requestID: 0, code: .slowConsumer, message: "outgoing buffer over its limit"))
        }
    }

    var description: String {
        switch self {
        case .endOfStream: "eof"
        case .goodbye: "goodbye"
        case .protocolError(let code, _): "protocol_error:\(code.name ?? String(code.rawValue))"
        case .refused(let code, _): "refused:\(code.name ?? String(code.rawValue))"
        case .idleTimeout: "idle_timeout"
        case .slowConsumer: "slow_consumer"
        case .shutdown: "shutdown"
        case .ioError(let detail): "io_error:\(detail)"
        }
    }
}

/// Ends a connection from any task: records the first reason given and cancels the connection's reader, whose
/// cleanup then runs. ``force()`` also cuts the socket, for writers that cannot flush.
final class SessionCloser: Sendable {
    private struct State {
        var reason: CloseReason?
        var reader: Task<Void, Never>?
        var stream: TCPStream?
        var outbox: Outbox?
    }

    private let state = Locked(State())

    /// The first reason given, if any.
    var reason: CloseReason? { self.state.withLock { $0.reason } }

    func attach(reader: Task<Void, Never>, stream: TCPStream, outbox: Outbox) {
        let cancelNow = self.state.withLock { state -> Bool in
            state.reader = reader
            state.stream = stream
            state.outbox = outbox
            return state.reason != nil
        }
        if cancelNow { reader.cancel() }
    }

    /// Records `reason` unless one is already recorded, and stops the reader. Returns whether this call decided
    /// the reason.
    @discardableResult
    func close(_ reason: CloseReason) -> Bool {
        let (decided, reader) = self.state.withLock { state -> (Bool, Task<Void, Never>?) in
            guard state.reason == nil else { return (false, nil) }
            state.reason = reason
            return (true, state.reader)
        }
        reader?.cancel()
        return decided
    }

    /// Cuts the connection now: the writer's pending write fails and queued frames are dropped.
    func force() {
        let (stream, outbox) = self.state.withLock { ($0.stream, $0.outbox) }
        outbox?.close()
        stream?.close()
    }
}
