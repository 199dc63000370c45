import Glibc
import Testing

@testable import SluiceIO

@Suite("Signals and loop groups")
struct SignalsTests {
    @Test("a signal sent to the loop's thread arrives through the async sequence")
    func signalArrives() async throws {
        // Block SIGUSR1 here; the loop thread created next inherits the mask. (A process-directed kill() could
        // pick a runtime thread created before this test, which has it unblocked and would take the default
        // action, so the signal goes to the loop thread directly. The daemon blocks its signals first thing in
        // `main`, before any thread exists, and its end-to-end tests send real SIGTERMs.)
        Signals.block([SIGUSR1])
        let loop = try EventLoop(name: "signals")
        defer { loop.shutdown() }
        let signals = try Signals([SIGUSR1], on: loop)
        let waiter = Task {
            var iterator = signals.makeAsyncIterator()
            return try await iterator.next()
        }
        pthread_kill(loop.thread, SIGUSR1)
        #expect(try await waiter.value == SIGUSR1)
    }

    @Test("an event loop group hands its loops out in turn")
    func roundRobin() throws {
        let group = try EventLoopGroup(count: 3, name: "group")
        defer { group.shutdown() }
        let first = (0..<3).map { _ in group.next() }
        let second = (0..<3).map { _ in group.next() }
        #expect(Set(first.map { ObjectIdentifier($0) }).count == 3)
        #expect(first.map { ObjectIdentifier($0) } == second.map { ObjectIdentifier($0) })
    }
}
