import SluiceIO
import SluiceWire
import Testing

@testable import SluiceBroker

/// The reader runs in turns: an idle connection holds no task (`Session.readerTurn`), a busy one keeps its task
/// between bursts, and the sweeper retires the task of a connection that has gone quiet.
@Suite("Reader turns: no task for an idle connection", .timeLimit(.minutes(2)))
struct ReaderTurnTests {
    @Test("a connection that only said HELLO holds no reader task; a frame starts one, a quiet sweep retires it")
    func idleConnectionsHoldNoTask() async throws {
        // Given a server on a loop of its own that sweeps every second (the test's long HELLO and idle deadlines make
        // that the period), and three connections that only said HELLO
        let server = try TestServer(ownLoop: true)
        let first = try await server.client()
        let second = try await server.client()
        let third = try await server.client()
        try await Task.sleep(for: .milliseconds(50))
        // When the first asks for STATS, only its own reader holds a task
        let alone = try await stat("reader_tasks", from: first)
        #expect(alone == 1)
        // And after the second asks too, its reader waits for its next bytes in its task (the first one's may have
        // been retired meanwhile by a sweep)
        #expect((1...2).contains(try await stat("reader_tasks", from: second) ?? 0))
        // Then, once both were quiet for a whole sweep, their tasks are retired: only the asking one holds a task
        var tasks = try await stat("reader_tasks", from: third)
        for _ in 0..<200 where tasks != 1 {
            try await Task.sleep(for: .milliseconds(100))
            tasks = try await stat("reader_tasks", from: third)
        }
        #expect(tasks == 1)
        // And a retired reader still serves its connection, in order
        try await first.send(.ping, .ping)
        #expect(try await first.next() == .pong)
        #expect(try await first.next() == .pong)
        try await second.subscribe("after.retire", id: 1)
        try await third.send(.pub(Frame.Publish(subject: "after.retire", payload: "still here")))
        #expect(try await second.next().message?.payload == Payload("still here"))
        await server.shutdown()
    }

    @Test("connections that close while their reader waits without a task end cleanly, and shutdown ends the rest")
    func closingWithoutATask() async throws {
        // Given 20 connections that only said HELLO (each reader waits without a task)
        let server = try TestServer()
        var clients: [RawClient] = []
        for _ in 0..<20 { clients.append(try await server.client()) }
        let observer = try await server.client()
        // When half of them close their side
        for client in clients[..<10] { client.close() }
        // Then the server notices each end (its readiness starts a turn that reads the end) and forgets them
        var open = try await stat("connections", from: observer)
        var tries = 0
        while open != 11 && tries < 200 {
            try await Task.sleep(for: .milliseconds(10))
            open = try await stat("connections", from: observer)
            tries += 1
        }
        #expect(open == 11)
        // And a shutdown tells each remaining one GOODBYE, though none of their readers held a task
        await server.shutdown()
        for client in clients[10...] {
            #expect(try await client.framesUntilClose().last == .goodbye)
        }
    }

    @Test("requests, replies and PUBs without OK are read on the loop's thread: those connections hold no reader task")
    func framesWithoutASuspensionNeedNoTask() async throws {
        // Given a responder, a requester, a publisher and an observer (the server sweeps every second)
        let server = try TestServer(ownLoop: true)
        let responder = try await server.client()
        let requester = try await server.client()
        let publisher = try await server.client()
        let observer = try await server.client()
        try await responder.subscribe("inline.svc", id: 1)
        try await observer.subscribe("inline.feed", id: 2)
        // When 50 requests are answered one at a time, and 1,000 PUBs go out
        for round in 0..<50 {
            try await requester.send(
                .request(Frame.Request(requestID: UInt32(round + 1), subject: "inline.svc", payload: "q"))
            )
            let ask = try #require(try await responder.next().message)
            guard case .request(let replyID) = ask.delivery else { Issue.record("not a request: \(ask)"); return }
            try await responder.send(.reply(Frame.Reply(requestID: 0, replyID: replyID, payload: "a")))
            guard case .response(let response) = try await requester.next() else { Issue.record("no RESPONSE"); return }
            #expect(response.requestID == UInt32(round + 1))
        }
        var encoder = FrameEncoder()
        for _ in 0..<1_000 { try encoder.encode(.pub(Frame.Publish(subject: "inline.feed", payload: "m"))) }
        try await publisher.sendRaw(encoder.bytes)
        for _ in 0..<1_000 { #expect(try await observer.next().message?.subject == "inline.feed") }
        // Then, right away (before a sweep could retire anything), the only reader task is the one answering STATS:
        // the responder's, which a SUB started, ended with its first burst of REPLYs alone, and the requester and the
        // publisher never kept one. (A reader that waited in its task would count until a quiet sweep.)
        #expect(try await stat("reader_tasks", from: observer) == 1)
        #expect(try await stat("requests", from: observer) == 50)
        await server.shutdown()
    }

    @Test("a session is freed once its connection ends: no reference cycle keeps it (its outbox holds it until then)")
    func endedSessionIsFreed() async throws {
        // Given a session on a real connection, held here only weakly
        let listener = try TCPListener(bind: SocketAddress(host: "127.0.0.1", port: 0), on: testLoops.loops[0])
        defer { listener.close() }
        let broker = Broker(configuration: Configuration(), log: Log(level: .off), executors: { testLoops.next() })
        let client = try await RawClient.connect(to: listener.localAddress)
        let stream = try await listener.accept(on: testLoops.next())
        let (ends, end) = AsyncStream<Void>.makeStream()
        weak var watched: Session?
        do {
            let session = Session(id: 1, stream: stream, broker: broker) { end.yield() }
            watched = session
            session.start()
        }
        // When the client says HELLO, subscribes, gets a message, writes a burst, and closes
        try await client.send(.hello(Frame.Hello(clientName: "freed")))
        guard case .welcome = try await client.next() else { Issue.record("no WELCOME"); return }
        try await client.subscribe("freed.feed", id: 1)
        try await client.send(.pub(Frame.Publish(subject: "freed.feed", payload: "bye")))
        #expect(try await client.next().message?.payload == Payload("bye"))
        client.close()
        // Then the session ends, and once its last task is done the object is gone
        var iterator = ends.makeAsyncIterator()
        await iterator.next()
        for _ in 0..<500 where watched != nil { try await Task.sleep(for: .milliseconds(10)) }
        #expect(watched == nil)
    }
}
