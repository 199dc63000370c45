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

/// Ends a connection from any task: records the first reason given and stops the connection's reader, whose cleanup
/// then runs: it cancels the reader's current turn, and ends the read wait an idle connection leaves instead of a
/// task (which starts a turn that finds the reason). ``force()`` also cuts the socket, for writers that cannot flush.
final class SessionCloser: Sendable {
    private struct State {
        var reason: CloseReason?
        /// The reader's latest turn.
        var reader: Task<Void, Never>?
    }

    private let state = Locked(State())
    private let stream: TCPStream
    private let outbox: Outbox

    init(stream: TCPStream, outbox: Outbox) {
        self.stream = stream
        self.outbox = outbox
    }

    /// The first reason given, if any.
    var reason: CloseReason? { self.state.withLock { $0.reason } }

    /// Starts a reader turn: `start` creates its task, under the lock, so that turns are recorded in the order they
    /// start. The task is cancelled at once when the connection is already closing.
    func attach(_ start: () -> Task<Void, Never>) {
        let cancelNow = self.state.withLock { state -> Task<Void, Never>? in
            let reader = start()
            state.reader = reader
            return state.reason != nil ? reader : nil
        }
        cancelNow?.cancel()
    }

    /// The reader's turn is ending to wait without a task: forget it, so that its finished task (and the memory it
    /// holds) can go. A close from now on finds no task; it ends the wait instead, or the turn sees the reason
    /// after storing the wait.
    func detach() {
        self.state.withLock { $0.reader = nil }
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
        guard decided else { return false }
        reader?.cancel()
        self.stream.endReadWait()
        return true
    }

    /// Cuts the connection now: the writer's pending write fails and queued frames are dropped.
    func force() {
        self.outbox.close()
        self.stream.close()
    }
}
