import SluiceChannels

@main struct Bench {
    static func main() async throws {
        let n = Int(CommandLine.arguments.last!) ?? 200_000
        for _ in 0..<1 {
            let clock = ContinuousClock()
            var t0 = clock.now
            let (tx, rx) = MPSC<Int>.channel(capacity: 1024)
            let p = Task { for i in 0..<n { try await tx.send(i) } }
            var s = 0
            while let v = try await rx.recv() { s &+= v; if v == n - 1 { break } }
            try await p.value
            print("mpsc recv", Double(n) / (clock.now - t0).seconds / 1e6, "M/s")
            t0 = clock.now
            let (tx2, rx2) = MPSC<Int>.channel(capacity: 1024)
            let p2 = Task { for i in 0..<n { try await tx2.send(i) } }
            var buf: [Int] = []
            var got = 0
            while got < n { buf.removeAll(keepingCapacity: true); got += try await rx2.recv(upTo: 64, into: &buf) }
            try await p2.value
            print("mpsc recv64", Double(n) / (clock.now - t0).seconds / 1e6, "M/s")
            t0 = clock.now
            let (stream, cont) = AsyncStream<Int>.makeStream(bufferingPolicy: .unbounded)
            let p3 = Task { for i in 0..<n { cont.yield(i) }; cont.finish() }
            for await v in stream { s &+= v }
            await p3.value
            print("asyncstream", Double(n) / (clock.now - t0).seconds / 1e6, "M/s")
        }
    }
}
extension Duration { var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 } }
