import Glibc

/// An operating-system call failed: which one, and `errno`.
///
/// Every syscall in SluiceIO goes through ``syscall(_:_:)``, so every error carries the operation's name.
public struct IOError: Error, Equatable, CustomStringConvertible {
    /// The `errno` value.
    public let errno: Int32
    /// The call that failed, e.g. `"read"` or `"epoll_ctl(ADD)"`.
    public let operation: String

    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }

    public var description: String {
        "\(self.operation) failed: \(String(cString: strerror(self.errno))) (errno \(self.errno))"
    }

    /// The peer reset the connection, or it was closed under us.
    public var isConnectionReset: Bool { self.errno == ECONNRESET || self.errno == EPIPE }
}

/// What a non-blocking call did: completed with a result, or would have blocked.
public enum IOResult<Value: Sendable>: Sendable {
    case processed(Value)
    case wouldBlock
}

extension IOResult: Equatable where Value: Equatable {}

/// Runs one syscall: retries `EINTR`, turns `EAGAIN`/`EWOULDBLOCK` into ``IOResult/wouldBlock``, and throws
/// every other failure as an ``IOError`` naming `operation`.
///
/// `EBADF` and `EFAULT` are bugs in our own code (a closed descriptor used, a bad pointer), never conditions a
/// peer can cause, so they stop the process with the operation's name rather than travel as errors.
@inline(__always)
func syscall<Result: BinaryInteger & Sendable>(
    _ operation: @autoclosure () -> String,
    _ body: () -> Result
) throws(IOError) -> IOResult<Result> {
    while true {
        let result = body()
        guard result == -1 else { return .processed(result) }
        let error = Glibc.errno
        switch error {
        case EINTR:
            continue
        case EAGAIN, EWOULDBLOCK:
            return .wouldBlock
        case EBADF, EFAULT:
            preconditionFailure("\(operation()) failed with errno \(error): a bug in SluiceIO, not a runtime condition")
        default:
            throw IOError(errno: error, operation: operation())
        }
    }
}

/// A syscall that never blocks (socket setup, epoll_ctl, close): `EAGAIN` is an error there too.
@inline(__always)
func checked<Result: BinaryInteger & Sendable>(
    _ operation: @autoclosure () -> String,
    _ body: () -> Result
) throws(IOError) -> Result {
    switch try syscall(operation(), body) {
    case .processed(let result): return result
    case .wouldBlock: throw IOError(errno: EAGAIN, operation: operation())
    }
}
