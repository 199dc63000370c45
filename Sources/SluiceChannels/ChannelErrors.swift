/// The channel is closed: the value could not be sent and is handed back.
///
/// Thrown by ``MPSC/Sender/send(_:)`` when the receiver has closed or gone away, and by
/// ``Oneshot/Sender/send(_:)`` when the receiver is gone or called `close()`. Nothing is lost: `value` is the value
/// that was not delivered.
public struct SendError<Value: Sendable>: Error {
    /// The value that was not sent.
    public let value: Value

    /// Wraps the value that could not be sent.
    public init(_ value: Value) { self.value = value }
}

/// Why a non-waiting send failed; either way the value is handed back.
public enum TrySendError<Value: Sendable>: Error {
    /// The channel has no free slot right now (or earlier senders are already waiting for one).
    case full(Value)
    /// The receiving side has closed or gone away.
    case closed(Value)

    /// The value that was not sent.
    public var value: Value {
        switch self {
        case .full(let value), .closed(let value): return value
        }
    }
}

/// The other side of the channel is gone, so there is nothing to wait for.
///
/// Thrown by waits that carry no value: ``MPSC/Sender/reserve()``, ``AsyncSemaphore/acquire(_:)`` after
/// ``AsyncSemaphore/close()``.
public struct ClosedError: Error, Equatable {
    /// Creates the error.
    public init() {}
}

extension SendError: Equatable where Value: Equatable {}
extension TrySendError: Equatable where Value: Equatable {}
