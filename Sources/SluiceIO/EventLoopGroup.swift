import Glibc
import Synchronization

/// One ``EventLoop`` per core, handed out round-robin: connections spread across loops, and each connection's
/// tasks stay on its loop's thread.
public final class EventLoopGroup: Sendable {
    /// The loops, in the order ``next()`` hands them out.
    public let loops: [EventLoop]
    private let cursor = Atomic<Int>(0)

    /// Online cores, the default number of loops.
    public static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Starts `count` loops (default: one per online core), each spinning up to `spin` before it sleeps (see
    /// ``EventLoop/init(name:spin:)``).
    public init(count: Int = EventLoopGroup.coreCount, name: String = "sluice-loop", spin: Duration = .zero)
        throws(IOError)
    {
        precondition(count >= 1, "an EventLoopGroup needs at least one loop")
        var loops: [EventLoop] = []
        for index in 0..<count { loops.append(try EventLoop(name: "\(name)-\(index)", spin: spin)) }
        self.loops = loops
    }

    /// The next loop in turn.
    public func next() -> EventLoop {
        self.loops[self.cursor.wrappingAdd(1, ordering: .relaxed).oldValue % self.loops.count]
    }

    /// Stops every loop after the jobs already queued.
    public func shutdown() {
        for loop in self.loops { loop.shutdown() }
    }
}
