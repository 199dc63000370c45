import CSluiceLinux
import Glibc

/// Unix signals as an `AsyncSequence`, read from a `signalfd` polled by an ``EventLoop``.
///
/// A signal handler can do almost nothing safely; a `signalfd` turns a signal into bytes on a descriptor, which
/// the loop polls like a socket, and the daemon's shutdown logic runs as ordinary async code.
///
/// The signals must be blocked in **every** thread, or the kernel delivers them the old way to whichever thread
/// has them unblocked. Threads inherit the mask of their creator, so call ``block(_:)`` first thing in `main`,
/// before any thread (event loop, Dispatch, the Swift runtime's pool) exists.
///
/// ```swift
/// Signals.block([SIGINT, SIGTERM])
/// for try await signal in try Signals([SIGINT, SIGTERM], on: loop) {
///     print("got \(signal)")   // first: graceful shutdown; second: exit at once
/// }
/// ```
public struct Signals: AsyncSequence, Sendable {
    public typealias Element = Int32
    private let source: Source

    /// Blocks `signals` in the calling thread, and so in every thread it creates from now on.
    public static func block(_ signals: [Int32]) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Starts reading `signals` (which must already be blocked, see ``block(_:)``).
    public init(_ signals: [Int32], on loop: EventLoop) throws(IOError) {
        self.source = try Source(signals, loop: loop)
    }

    public func makeAsyncIterator() -> Iterator { Iterator(source: self.source) }

    public struct Iterator: AsyncIteratorProtocol {
        fileprivate let source: Source

        /// The next signal's number; waits until one arrives. Never ends on its own.
        ///
        /// Reads on the loop's own thread: a signal sent to that thread (rather than to the process) is visible
        /// only to a `signalfd` read there.
        public mutating func next() async throws -> Int32? {
            let source = self.source
            return try await withTaskExecutorPreference(source.loop) { try await source.next() }
        }
    }

    /// Owns the signalfd and its registration.
    fileprivate final class Source: Sendable {
        let fd: Int32
        let loop: EventLoop
        let registration: Registration
        let token: UInt64

        init(_ signals: [Int32], loop: EventLoop) throws(IOError) {
            var set = sigset_t()
            sigemptyset(&set)
            for signal in signals { sigaddset(&set, signal) }
            let fd = try checked("signalfd") { signalfd(-1, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
            (self.registration, self.token) = try loop.register(adopting: fd)
            self.fd = fd
            self.loop = loop
        }

        deinit {
            self.loop.deregister(self.fd, token: self.token)
            Glibc.close(self.fd)
        }

        func next() async throws -> Int32 {
            try await self.registration.perform(.read) { () throws(IOError) -> IOResult<Int32> in
                var info = signalfd_siginfo()
                let size = MemoryLayout<signalfd_siginfo>.size
                guard case .processed(size) = try syscall("read(signalfd)", { Glibc.read(self.fd, &info, size) }) else {
                    return .wouldBlock
                }
                return .processed(Int32(info.ssi_signo))
            }
        }
    }
}
