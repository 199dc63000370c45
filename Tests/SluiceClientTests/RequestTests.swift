import SluiceBroker
import SluiceClient
import SluiceWire
import Testing

@Suite("SluiceClient: requests", .timeLimit(.minutes(1)))
struct RequestTests {
    @Test("serve answers requests; the requester gets the response with its headers")
    func serveAndRequest() async throws {
        try await withTestServer { address in
            let responder = try await connect(address, "responder")
            let requester = try await connect(address, "requester")
            let requests = try await responder.replies("math.double")
            let serving = Task {
                for try await request in requests {
                    let number = Int(text(request.payload)) ?? 0
                    try await request.reply(Payload("\(2 * number)"), headers: ["from": request.subject])
                }
            }
            for number in [1, 21] {
                let response = try await within {
                    try await requester.request("math.double", Payload("\(number)"), timeout: .seconds(5))
                }
                #expect(text(response.payload) == "\(2 * number)")
                #expect(response.headers["from"] == "math.double")
            }
            serving.cancel()
            await requester.close()
            await responder.close()
        }
    }

    @Test("serve with a handler")
    func serveHandler() async throws {
        try await withTestServer { address in
            let responder = try await connect(address, "responder")
            let requester = try await connect(address, "requester")
            let ready = try await responder.replies("echo")
            let serving = Task {
                for try await request in ready { try await request.reply(request.payload, headers: request.headers) }
            }
            let serving2 = Task {
                try await responder.serve("shout") { request in Response(Payload(text(request.payload).uppercased())) }
            }
            let echoed = try await within { try await requester.request("echo", "hi", headers: ["h": "1"]) }
            #expect(text(echoed.payload) == "hi")
            #expect(echoed.headers["h"] == "1")
            // serve subscribes asynchronously: retry until it is registered.
            let shouted = try await within { () async throws -> Response in
                while true {
                    do {
                        return try await requester.request("shout", "hey")
                    } catch let error as SluiceError where error.code == .noResponders {
                        try await Task.sleep(for: .milliseconds(10))
                    }
                }
            }
            #expect(text(shouted.payload) == "HEY")
            serving.cancel()
            serving2.cancel()
            await requester.close()
            await responder.close()
        }
    }

    @Test("a request nobody serves fails at once with NO_RESPONDERS")
    func noResponders() async throws {
        try await withTestServer { address in
            let client = try await connect(address)
            do {
                _ = try await within { try await client.request("nobody.home", "?", timeout: .seconds(30)) }
                Issue.record("got a response from nobody")
            } catch let error as SluiceError {
                #expect(error.code == .noResponders)
            }
            await client.close()
        }
    }

    @Test("a request whose responder does not answer fails with TIMEOUT")
    func timeout() async throws {
        try await withTestServer { address in
            let responder = try await connect(address, "silent")
            let requester = try await connect(address, "requester")
            let requests = try await responder.replies("slow")
            do {
                _ = try await within { try await requester.request("slow", "?", timeout: .milliseconds(200)) }
                Issue.record("got a response from a silent responder")
            } catch let error as SluiceError {
                #expect(error.code == .timeout)
            }
            _ = requests
            await requester.close()
            await responder.close()
        }
    }

    @Test("a request whose responder leaves before replying fails with RESPONDER_GONE")
    func responderGone() async throws {
        try await withTestServer { address in
            let responder = try await connect(address, "leaving")
            let requester = try await connect(address, "requester")
            let requests = try await responder.replies("flaky")
            let pending = Task { try await requester.request("flaky", "?", timeout: .seconds(30)) }
            _ = try await within { () async throws -> IncomingRequest? in
                var iterator = requests.makeAsyncIterator()
                return try await iterator.next()
            }
            await responder.close()
            do {
                _ = try await within { try await pending.value }
                Issue.record("got a response from a responder that left")
            } catch let error as SluiceError {
                #expect(error.code == .responderGone)
            }
            await requester.close()
        }
    }
}
