import Glibc
import Testing

@testable import SluiceIO

@Suite("Event loops that spin before they sleep", .timeLimit(.minutes(2)))
struct SpinTests {
    @Test("misses in a row skip the next 0, 1, 2, 4… chances to spin, up to the cap; work found ends the penalty")
    func backoff() {
        var backoff = SpinBackoff()
        #expect(backoff.maySpin(at: 0) && backoff.maySpin(at: 0), "no miss yet: every chance spins")
        var skipped: [Int] = []
        for _ in 0..<9 {
            backoff.missed()
            var count = 0
            while !backoff.maySpin(at: 0) { count += 1 }
            skipped.append(count)
        }
        #expect(skipped == [0, 1, 2, 4, 8, 16, 32, 64, 64])
        backoff.found()
        backoff.missed()
        let spinsAfterOneMiss = backoff.maySpin(at: 0)
        #expect(spinsAfterOneMiss, "after work was found, one miss skips nothing")
        backoff.missed()
        #expect(!backoff.maySpin(at: 0) && backoff.maySpin(at: 0), "a second miss in a row skips one chance")
    }

    @Test("a loop that works more than 55% of the time does not spin; one that waits most of the time does")
    func busyLoopsDoNotSpin() {
        var backoff = SpinBackoff()
        var now: UInt64 = 1_000_000
        // Rounds of 10 µs of work and 40 µs of waiting: 20% busy.
        for _ in 0..<50 {
            now += 10_000
            _ = backoff.maySpin(at: now)
            backoff.waited(from: now, to: now + 40_000)
            now += 40_000
        }
        #expect(backoff.busy > 150 && backoff.busy < 260, "\(backoff.busy)")
        let spinsWhenMostlyWaiting = backoff.maySpin(at: now + 10_000)
        #expect(spinsWhenMostlyWaiting)
        // Then 40 µs of work and 10 µs of waiting: 80% busy.
        now += 10_000
        for _ in 0..<50 {
            backoff.waited(from: now, to: now + 10_000)
            now += 50_000
            _ = backoff.maySpin(at: now)
        }
        #expect(backoff.busy > 760 && backoff.busy < 870, "\(backoff.busy)")
        let spinsWhenMostlyBusy = backoff.maySpin(at: now)
        #expect(!spinsWhenMostlyBusy)
    }

    @Test("a ping-pong over a spinning loop's socket echoes every message, and the loop's spins find the next one")
    func pingPong() async throws {
        // The server's loop spins up to a second; the client's loop never spins. The daemon's loops end a spin when
        // a look comes 200 µs after the last (the core went to someone else), which on a loaded machine (the full
        // test suite) can cut every spin short: this loop allows a second there too, so a spin ends only when the
        // next message came, or after a second without one.
        let spinning = try EventLoop(name: "test-loop", spin: .seconds(1), preemptedAfter: .seconds(1))
        try await withEchoServer(loop: spinning) { address, serverLoop in
            let clientLoop = try EventLoop(name: "spin-client")
            defer { clientLoop.shutdown() }
            let client = try await TCPStream.connect(to: address, on: clientLoop)
            defer { client.close() }
            try await echoOneByOne(client, rounds: 200)
            let spins = serverLoop.spins
            #expect(spins.found > 0, "\(spins)")
        }
    }

    @Test("a loop without a spin never spins")
    func noSpin() async throws {
        try await withEchoServer { address, serverLoop in
            let client = try await TCPStream.connect(to: address, on: serverLoop)
            defer { client.close() }
            try await echoOneByOne(client, rounds: 50)
            #expect(serverLoop.spins == (0, 0))
        }
    }

    @Test("a spinning loop that is shut down from another thread stops, and its thread lets go of it")
    func shutdownWhileSpinning() async throws {
        var loop: EventLoop? = try EventLoop(name: "spin-stop", spin: .milliseconds(10))
        weak let watched = loop
        // Work from outside, then nothing: the loop spins (or skips after a miss) and must still see the stop.
        for _ in 0..<20 { await Task(executorPreference: loop!) {}.value }
        loop!.shutdown()
        loop = nil
        // The loop's thread holds the loop until it leaves its run loop.
        for _ in 0..<400 where watched != nil { try await Task.sleep(for: .milliseconds(5)) }
        #expect(watched == nil, "the loop's thread exited")
    }
}

/// Sends `rounds` small messages through an echo server one at a time, each after the last came back intact.
private func echoOneByOne(_ client: TCPStream, rounds: Int) async throws {
    for round in 0..<rounds {
        let message = Array("ping \(round)".utf8)
        try await client.write(message)
        #expect(try await readExactly(message.count, from: client) == message)
    }
}
