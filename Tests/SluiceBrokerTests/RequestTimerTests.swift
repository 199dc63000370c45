import SluiceChannels
import SluiceWire
import Synchronization
import Testing

@testable import SluiceBroker

/// The server's one request timer sleeps until the earliest deadline: it does not tick while requests come and go.
@Suite("The request timer", .timeLimit(.minutes(1)))
struct RequestTimerTests {
    @Test("200 requests answered at once cost the timer one look, yet a short deadline still ends its request in time")
    func sleepsUntilTheEarliestDeadline() async throws {
        // Given a registry whose timer runs
        let registry = RequestRegistry(ids: DeliveryIDs())
        let timer = Task { await registry.runTimer() }
        defer { timer.cancel() }
        let responder = ConsumerKey(session: 1, subscriptionID: 1)
        let (outcomes, answer) = AsyncStream<Result<RequestOutcome, Oneshot<RequestOutcome>.RecvError>>.makeStream()
        var answers = outcomes.makeAsyncIterator()
        let begin = { (timeout: Duration) in
            registry.begin(responder: responder, requester: 2, timeout: timeout) { answer.yield($0) }
        }
        // When 200 requests with a 60 s deadline are each answered, over 100 ms
        for _ in 0..<200 {
            let id = begin(.seconds(60))
            #expect(registry.reply(id, from: 1, headers: Headers(), payload: Payload("ok")))
            guard case .success(.reply) = await answers.next() else { Issue.record("not the reply"); return }
            try await Task.sleep(for: .microseconds(500))
        }
        // Then the timer looked once or twice (for the first deadline), not every few milliseconds
        #expect(registry.scans.load(ordering: .relaxed) <= 3)
        // And a request with an earlier deadline than every other wakes it: it times out on time
        _ = begin(.seconds(60))
        let started = ContinuousClock.now
        _ = begin(.milliseconds(50))
        guard case .success(.failed(let code, _)) = await answers.next() else { Issue.record("no timeout"); return }
        #expect(code == .timeout)
        let took = ContinuousClock.now - started
        #expect(took >= .milliseconds(50) && took < .seconds(5))
        #expect(registry.count == 1)
    }
}
