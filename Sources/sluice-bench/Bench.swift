import Glibc
import SluiceChannels

@main struct Bench {
    static func main() async throws {
        try await Task.detached { try await run() }.value
        exit(0)
    }

    nonisolated static func run() async throws {
        let n = Int(CommandLine.arguments[1]) ?? 200_000
        for _ in 0..<1 {
            let clock = ContinuousClock()
            var t0 = clock.now
            let (tx, rx) = MPSC<Int>.channel(capacity: 1024)
            let ex = ThreadExecutor()
            let p = Task.detached(executorPreference: ex) { for i in 0..<n { try await tx.send(i) } }
            let c = Task.detached(executorPreference: ex) { () async throws -> Int in var s = 0
            while let v = try await rx.recv() { s &+= v; if v == n - 1 { break } }; return s }
            _ = try await c.value
            try await p.value
            print("mpsc recv (one thread)", Double(n) / (clock.now - t0).seconds / 1e6, "M/s")
            if CommandLine.arguments.count > 2 && CommandLine.arguments[2] == "x" { exit(0) }
            t0 = clock.now
            let (tx1, rx1) = MPSC<Int>.channel(capacity: 1024)
            let p1 = Task.detached { for i in 0..<n { try await tx1.send(i) } }
            var s = 0
            while let v = try await rx1.recv() { s &+= v; if v == n - 1 { break } }
            try await p1.value
            print("mpsc recv", Double(n) / (clock.now - t0).seconds / 1e6, "M/s")
            if CommandLine.arguments.count > 2 && CommandLine.arguments[2] == "g" { exit(0) }
            t0 = clock.now
            let (tx2, rx2) = MPSC<Int>.channel(capacity: 1024)
            let p2 = Task.detached { for i in 0..<n { try await tx2.send(i) } }
            var buf: [Int] = []
            var got = 0
            while got < n { buf.removeAll(keepingCapacity: true); got += try await rx2.recv(upTo: 64, into: &buf) }
            try await p2.value
            print("mpsc recv64", Double(n) / (clock.now - t0).seconds / 1e6, "M/s")
            t0 = clock.now
            let (stream, cont) = AsyncStream<Int>.makeStream(bufferingPolicy: .unbounded)
            let p3 = Task.detached { for i in 0..<n { cont.yield(i) }; cont.finish() }
            for await v in stream { s &+= v }
            await p3.value
            print("asyncstream", Double(n) / (clock.now - t0).seconds / 1e6, "M/s")
            t0 = clock.now
            let (stream2, cont2) = AsyncStream<Int>.makeStream(bufferingPolicy: .unbounded)
            let p4 = Task.detached(executorPreference: ex) { for i in 0..<n { cont2.yield(i) }; cont2.finish() }
            let c4 = Task.detached(executorPreference: ex) { var s = 0; for await v in stream2 { s &+= v }; return s }
            _ = await c4.value
            await p4.value
            print("asyncstream (one thread)", Double(n) / (clock.now - t0).seconds / 1e6, "M/s")
            print("asyncstream", Double(n) / (clock.now - t0).seconds / 1e6, "M/s")
        }
    }
}
extension Duration { var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 } }
