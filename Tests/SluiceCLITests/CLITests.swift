import Foundation
import Testing

@Suite("sluice CLI against a real sluiced", .serialized, .timeLimit(.minutes(2)))
struct CLITests {
    @Test("sub --count exits after that many messages, printing one payload a line")
    func pubSub() async throws {
        let daemon = try await Daemon()
        let subscriber = try startSluice(["sub", "orders.*", "--count", "3"], daemon: daemon)
        try await waitForSubscriber(subscriber, subject: "orders.new", daemon: daemon)
        #expect(try await sluice(["pub", "orders.eu", "first"], daemon: daemon).status == 0)
        #expect(try await sluice(["pub", "orders.us", "second"], daemon: daemon).status == 0)
        #expect(try await subscriber.wait() == 0)
        #expect(subscriber.stdout.lines == ["ready", "first", "second"])
    }

    @Test("pub without a message publishes every stdin line")
    func stdinPublishing() async throws {
        let daemon = try await Daemon()
        let subscriber = try startSluice(["sub", "lines", "--count", "4"], daemon: daemon)
        try await waitForSubscriber(subscriber, subject: "lines", daemon: daemon)
        let published = try await sluice(["pub", "lines"], daemon: daemon, stdin: "one\ntwo\nthree\n")
        #expect(published.status == 0)
        #expect(try await subscriber.wait() == 0)
        #expect(subscriber.stdout.lines == ["ready", "one", "two", "three"])
    }

    @Test("sub --json prints one object a line with subject, headers and payload")
    func subJSON() async throws {
        let daemon = try await Daemon()
        let subscriber = try startSluice(["sub", "j", "--json", "--count", "2"], daemon: daemon)
        try await waitForSubscriber(subscriber, subject: "j", daemon: daemon)
        #expect(try await sluice(["pub", "j", "say \"hi\"\t", "-H", "trace=abc"], daemon: daemon).status == 0)
        #expect(try await subscriber.wait() == 0)
        #expect(
            subscriber.stdout.lines.last == #"{"subject":"j","headers":{"trace":"abc"},"payload":"say \"hi\"\t"}"#
        )
    }

    @Test("push, then consume prints and acknowledges each message")
    func pushConsume() async throws {
        let daemon = try await Daemon()
        #expect(try await sluice(["push", "jobs", "a"], daemon: daemon).status == 0)
        #expect(try await sluice(["push", "jobs"], daemon: daemon, stdin: "b\nc\n").status == 0)
        let consumed = try await sluice(["consume", "jobs", "--count", "3", "--json"], daemon: daemon)
        #expect(consumed.status == 0)
        #expect(
            consumed.lines == [
                #"{"queue":"jobs","headers":{},"payload":"a","redelivered":false}"#,
                #"{"queue":"jobs","headers":{},"payload":"b","redelivered":false}"#,
                #"{"queue":"jobs","headers":{},"payload":"c","redelivered":false}"#,
            ]
        )
        // They were acknowledged: the next consumer gets only the next message.
        #expect(try await sluice(["push", "jobs", "d"], daemon: daemon).status == 0)
        let next = try await sluice(["consume", "jobs", "--count", "1"], daemon: daemon)
        #expect(next.lines == ["d"])
    }

    @Test("set, get, get of a missing key (exit 1), watch prints the current value then the new one")
    func keys() async throws {
        let daemon = try await Daemon()
        #expect(try await sluice(["set", "config.mode", "on"], daemon: daemon).status == 0)
        let got = try await sluice(["get", "config.mode"], daemon: daemon)
        #expect(got.status == 0)
        #expect(got.lines == ["on"])
        let missing = try await sluice(["get", "config.none"], daemon: daemon)
        #expect(missing.status == 1)
        #expect(missing.stderr == "sluice: key 'config.none' has no value\n")
        let watcher = try startSluice(["watch", "config.mode", "--count", "2"], daemon: daemon)
        try await watcher.waitUntil(.seconds(10), "the current value") { watcher.stdout.lines == ["on"] }
        #expect(try await sluice(["set", "config.mode", "off"], daemon: daemon).status == 0)
        #expect(try await watcher.wait() == 0)
        #expect(watcher.stdout.lines == ["on", "off"])
    }

    @Test("request gets the reply: a fixed response, or the request echoed")
    func requestReply() async throws {
        let daemon = try await Daemon()
        let responder = try startSluice(["reply", "time.now", "12:00", "--count", "1"], daemon: daemon)
        var answer = Outcome(status: -1, stdout: "", stderr: "")
        try await eventually(.seconds(10), "the responder to answer") {
            answer = try await sluice(["request", "time.now", "what time?"], daemon: daemon)
            return answer.status == 0
        }
        #expect(answer.lines == ["12:00"])
        #expect(try await responder.wait() == 0)
        #expect(responder.stdout.lines == ["what time?"])

        let echo = try startSluice(["reply", "echo", "--count", "1"], daemon: daemon)
        try await eventually(.seconds(10), "the echo responder to answer") {
            answer = try await sluice(["request", "echo", "hello"], daemon: daemon)
            return answer.status == 0
        }
        #expect(answer.lines == ["hello"])
        #expect(try await echo.wait() == 0)
    }

    @Test("request with nobody serving exits 1 with NO_RESPONDERS")
    func noResponders() async throws {
        let daemon = try await Daemon()
        let outcome = try await sluice(["request", "nobody.home", "hi"], daemon: daemon)
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("NO_RESPONDERS"))
        #expect(outcome.stderr.split(separator: "\n").count == 1)
    }

    @Test("request to a responder that never answers exits 1 with TIMEOUT")
    func timeout() async throws {
        let daemon = try await Daemon()
        // `sub` receives the request but never replies.
        let silent = try startSluice(["sub", "slow"], daemon: daemon)
        var outcome = Outcome(status: -1, stdout: "", stderr: "")
        try await eventually(.seconds(10), "a TIMEOUT rather than NO_RESPONDERS") {
            outcome = try await sluice(["request", "slow", "hi", "--timeout", "200ms"], daemon: daemon)
            return !outcome.stderr.contains("NO_RESPONDERS")
        }
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("TIMEOUT"))
        silent.interrupt()
        #expect(try await silent.wait() == 0)
    }

    @Test("Ctrl-C ends sub cleanly with exit status 0")
    func interrupt() async throws {
        let daemon = try await Daemon()
        let subscriber = try startSluice(["sub", "forever"], daemon: daemon)
        try await waitForSubscriber(subscriber, subject: "forever", daemon: daemon)
        subscriber.interrupt()
        #expect(try await subscriber.wait() == 0)
        #expect(subscriber.stderr.text.isEmpty)
    }

    @Test("stats prints name value lines, or JSON objects")
    func stats() async throws {
        let daemon = try await Daemon()
        let plain = try await sluice(["stats"], daemon: daemon)
        #expect(plain.status == 0)
        #expect(!plain.lines.isEmpty)
        #expect(plain.lines.allSatisfy { $0.split(separator: " ").count == 2 })
        // The daemon spins by default (--spin 100us): its loops ran out of work at least once since it started (the
        // first chance always spins), so the spin counters are there and not both zero.
        let spins = plain.lines.filter { $0.hasPrefix("loop_spins_") }.compactMap {
            UInt64($0.split(separator: " ")[1])
        }
        #expect(spins.count == 2 && spins.reduce(0, +) > 0, "\(plain.lines)")
        let json = try await sluice(["stats", "--json"], daemon: daemon)
        #expect(json.lines.allSatisfy { $0.hasPrefix(#"{"name":""#) && $0.hasSuffix("}") })
    }

    @Test("bench runs a small load and reports rates and latency")
    func bench() async throws {
        let daemon = try await Daemon()
        let outcome = try await sluice(
            ["bench", "--msgs", "2000", "--size", "32", "--pub", "2", "--sub", "1", "--duration", "20s"],
            daemon: daemon,
            limit: .seconds(40)
        )
        #expect(outcome.status == 0)
        #expect(outcome.stdout.contains("msgs/s"))
        #expect(outcome.stdout.contains("latency"))
    }

    @Test(
        "bad usage exits 2 with one line on stderr",
        arguments: [
            [], ["frobnicate"], ["pub"], ["pub", "a", "b", "c"], ["sub", "x", "--bogus"], ["pub", "x", "--count", "2"],
            ["request", "x", "y", "--timeout", "soon"], ["sub", "x", "--count", "0"], ["pub", "x", "-H", "novalue"],
        ]
    )
    func usage(arguments: [String]) async throws {
        let outcome = try await sluice(arguments)
        #expect(outcome.status == 2)
        #expect(outcome.stderr.hasPrefix("sluice: "))
        #expect(outcome.stderr.split(separator: "\n").count == 1)
        #expect(outcome.stdout.isEmpty)
    }

    @Test("--help works for the tool and every command", arguments: ["", "pub", "sub", "consume", "bench", "watch"])
    func help(command: String) async throws {
        let outcome = try await sluice((command.isEmpty ? [] : [command]) + ["--help"])
        #expect(outcome.status == 0)
        #expect(outcome.stdout.contains("Usage: sluice"))
    }

    @Test("a server that is not there: exit 1 with one line naming the address")
    func serverDown() async throws {
        // A port that was just free: bind it, close it.
        let daemon = try await Daemon()
        let port = daemon.port
        daemon.running.process.terminate()
        _ = try await daemon.running.wait()
        for arguments in [["get", "k"], ["pub", "a", "b"], ["sub", "a"]] {
            let outcome = try await sluice(arguments + ["--server", "127.0.0.1:\(port)"])
            #expect(outcome.status == 1)
            #expect(outcome.stderr.contains("cannot connect to 127.0.0.1:\(port)"))
            #expect(outcome.stderr.split(separator: "\n").count == 1)
        }
    }
}
