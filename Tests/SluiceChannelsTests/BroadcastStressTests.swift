import Testing

@testable import SluiceChannels

/// Seeded randomized runs with many tasks: publishers, receivers of every temperament (fast, slow, batching,
/// polling, cancelled and retried, dropped midway), checked value by value against what was sent.
@Suite("Broadcast stress")
struct BroadcastStressTests {
    typealias SplitMix64 = TestSupport.SplitMix64
    typealias Receiver = Broadcast<Int>.Receiver

    /// How a receiver task behaves.
    enum Temperament: CaseIterable {
        /// `recv()` in a tight loop.
        case fast
        /// `recv()`, then yields a random number of times, so it lags behind a small ring.
        case slow
        /// `recv(upTo:into:)` with a random limit.
        case batching
        /// `tryRecv()`, yielding when empty.
        case polling
        /// Each `recv()` in a child task that is often cancelled (before or after it suspends), then retried.
        case cancelling
    }

    /// A receiver handed from the task that subscribed it to the task that reads it, with its exact start.
    final class Handoff: Sendable {
        private let receiver: BroadcastTestSupport.Locked<Receiver?>
        /// The position of the first value sent after the subscription (the value itself, in the serialized test).
        let start: Int

        init(_ receiver: Receiver, start: Int) {
            self.receiver = BroadcastTestSupport.Locked(receiver)
            self.start = start
        }

        /// Moves the receiver out, so that the reading task alone decides when it is dropped.
        func take() -> Receiver {
            guard let receiver = self.receiver.withLock({ $0.take() }) else { preconditionFailure("taken twice") }
            return receiver
        }
    }

    /// What a receiver task saw.
    struct Observation {
        /// Values in the order received.
        var values: [Int] = []
        /// The sum of every lag count reported.
        var lagged: UInt64 = 0
        /// Receives that ended in `CancellationError` and were retried.
        var cancellations = 0
        /// True if it read until `closed`; false if it was dropped midway.
        var sawClosed = false
    }

    /// The next thing one receive produced.
    enum Event {
        case values([Int])
        case lagged(UInt64)
        case cancelled
        case closed
    }

    /// One receive in the manner of `temperament`.
    static func receiveOnce(
        _ receiver: Receiver,
        _ temperament: Temperament,
        _ random: inout SplitMix64
    ) async -> Event {
        do {
            switch temperament {
            case .fast:
                return .values([try await receiver.recv()])
            case .slow:
                let value = try await receiver.recv()
                for _ in 0..<Int.random(in: 0..<20, using: &random) { await Task.yield() }
                return .values([value])
            case .batching:
                var values: [Int] = []
                _ = try await receiver.recv(upTo: Int.random(in: 1...8, using: &random), into: &values)
                return .values(values)
            case .polling:
                while true {
                    do {
                        return .values([try receiver.tryRecv()])
                    } catch .empty {
                        await Task.yield()
                    } catch .lagged(let missed) {
                        return .lagged(missed)
                    } catch .closed {
                        return .closed
                    }
                }
            case .cancelling:
                // Catch up without waiting first, so that the cancellable receive below usually has to wait.
                do {
                    return .values([try receiver.tryRecv()])
                } catch .lagged(let missed) {
                    return .lagged(missed)
                } catch .closed {
                    return .closed
                } catch .empty {}
                let task: Task<Int, any Error>
                switch Int.random(in: 0..<3, using: &random) {
                case 0:
                    // Cancelled before it can suspend: it throws unless a value is already there.
                    task = Task {
                        withUnsafeCurrentTask { $0?.cancel() }
                        return try await receiver.recv()
                    }
                case 1:
                    // Cancelled a little later: while suspended, or after a send handed it a value.
                    task = Task { try await receiver.recv() }
                    for _ in 0..<Int.random(in: 0..<4, using: &random) { await Task.yield() }
                    task.cancel()
                default:
                    task = Task { try await receiver.recv() }
                }
                return .values([try await task.value])
            }
        } catch is CancellationError {
            return .cancelled
        } catch let error as Broadcast<Int>.RecvError {
            switch error {
            case .lagged(let missed): return .lagged(missed)
            case .closed: return .closed
            }
        } catch {
            Issue.record("unexpected error \(error)")
            return .closed
        }
    }

    /// Paces a publisher after one send: mostly one yield, so that receivers keep up and often wait (which is when
    /// cancellations hit suspended tasks); now and then a quiet period; and now and then a burst of sends without
    /// yielding that laps slow receivers around the ring.
    static func pace(_ burst: inout Int, _ random: inout SplitMix64, capacity: Int) async {
        if burst > 0 {
            burst -= 1
            return
        }
        await Task.yield()
        if random.oneIn(40) { burst = Int.random(in: 0..<(3 * capacity), using: &random) }
        if random.oneIn(30) {
            for _ in 0..<Int.random(in: 10..<60, using: &random) { await Task.yield() }
        }
    }

    /// Reads `handoff`'s receiver until closed, or until `stopAfter` events and then drops it.
    ///
    /// When `exact` is set (values are their positions), every value must be exactly the next expected position,
    /// where a lag of `k` advances the expectation by `k`: strictly increasing, nothing lost, nothing invented.
    static func read(
        _ handoff: Handoff,
        _ temperament: Temperament,
        stopAfter: Int?,
        seed: UInt64,
        exact: Bool
    ) async -> Observation {
        var random = SplitMix64(seed: seed)
        var receiver: Receiver? = handoff.take()
        guard let storage = receiver?.storage, let slot = receiver?.slot else { return Observation() }
        var observation = Observation()
        var expected = handoff.start
        var events = 0
        while let current = receiver {
            if let stopAfter, events >= stopAfter {
                // Idle a little first, so that it is usually dropped while it still owes values.
                for _ in 0..<Int.random(in: 0..<30, using: &random) { await Task.yield() }
                // Dropped midway: what it saw accounts for exactly the positions its cursor passed.
                #expect(storage.cursor(of: slot) == UInt64(expected), "dropped \(temperament) receiver")
                receiver = nil
                // Its unsubscription must have given up its share of every slot it still owed.
                if let violation = storage.invariantViolation() { Issue.record("after a drop: \(violation)") }
                break
            }
            events += 1
            switch await Self.receiveOnce(current, temperament, &random) {
            case .values(let values):
                for value in values {
                    if exact {
                        #expect(value == expected, "\(temperament) receiver from \(handoff.start)")
                    }
                    if let last = observation.values.last, exact { #expect(value > last) }
                    observation.values.append(value)
                    expected += 1
                }
            case .lagged(let missed):
                #expect(missed > 0)
                observation.lagged += missed
                expected += Int(missed)
            case .cancelled:
                observation.cancellations += 1
            case .closed:
                observation.sawClosed = true
                #expect(storage.cursor(of: slot) == UInt64(expected))
                receiver = nil
            }
        }
        return observation
    }

    /// The publishers' shared state: the sender, and the next position, under one lock so that sends are
    /// serialized and each value is its own position.
    struct Publishing: ~Copyable {
        var sender: Broadcast<Int>.Sender?
        var next = 0
        var publishersLeft: Int
        var random: SplitMix64
        var subscriptionsLeft: Int
    }

    @Test(
        "publishers, and receivers that are slow, dropped or cancelled, each see exactly what was sent after they subscribed",
        arguments: [11, 22, 33] as [UInt64]
    )
    func serializedPublishers(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        // Small rings, and rings past the initial size that grow while a receiver lags
        let capacity = random.oneIn(2) ? Int.random(in: 1...8, using: &random) : Int.random(in: 17...48, using: &random)
        let publishers = 2
        let perPublisher = 1_000
        let total = publishers * perPublisher
        let (sender, first) = Broadcast<Int>.channel(capacity: capacity)
        let storage = first.storage
        let publishing = BroadcastTestSupport.Locked(
            Publishing(
                sender: sender,
                publishersLeft: publishers,
                random: SplitMix64(seed: seed &+ 1),
                subscriptionsLeft: 10
            )
        )
        let (handoffs, handoffSink) = AsyncStream<Handoff>.makeStream()
        // Three receivers from the very start, the others subscribed by publishers at random positions.
        handoffSink.yield(Handoff(first, start: 0))
        handoffSink.yield(Handoff(sender.subscribe(), start: 0))
        handoffSink.yield(Handoff(first.resubscribe(), start: 0))
        _ = consume sender
        _ = consume first

        let observations = BroadcastTestSupport.Locked<[(Temperament, Int?, Int, Observation)]>([])
        await withTaskGroup(of: Void.self) { group in
            for publisher in 0..<publishers {
                group.addTask {
                    var yieldRandom = SplitMix64(seed: seed &+ 100 &+ UInt64(publisher))
                    var burst = 0
                    for _ in 0..<perPublisher {
                        let handoff = publishing.withLock { state -> Handoff? in
                            guard let sender = state.sender else { preconditionFailure("sender gone early") }
                            var handoff: Handoff? = nil
                            if state.subscriptionsLeft > 0 && state.random.oneIn(150) {
                                state.subscriptionsLeft -= 1
                                handoff = Handoff(sender.subscribe(), start: state.next)
                            }
                            sender.send(state.next)
                            state.next += 1
                            return handoff
                        }
                        if let handoff { handoffSink.yield(handoff) }
                        await Self.pace(&burst, &yieldRandom, capacity: capacity)
                        if yieldRandom.oneIn(200), let violation = storage.invariantViolation() {
                            Issue.record("\(violation)")
                        }
                    }
                    // The last publisher out drops the sender (after unlocking), which closes the channel.
                    let last = publishing.withLock { state -> Broadcast<Int>.Sender? in
                        state.publishersLeft -= 1
                        return state.publishersLeft == 0 ? state.sender.take() : nil
                    }
                    if last != nil { handoffSink.finish() }
                }
            }
            var index: UInt64 = 0
            for await handoff in handoffs {
                index += 1
                let temperament = Temperament.allCases.randomElement(using: &random)!
                let stopAfter = random.oneIn(4) ? Int.random(in: 0..<400, using: &random) : nil
                let readerSeed = seed &* 1_000 &+ index
                group.addTask {
                    let observation = await Self.read(
                        handoff,
                        temperament,
                        stopAfter: stopAfter,
                        seed: readerSeed,
                        exact: true
                    )
                    observations.withLock { $0.append((temperament, stopAfter, handoff.start, observation)) }
                }
            }
        }

        // Every receiver read to the end saw (values + lags) == everything sent after it subscribed.
        let seen = observations.withLock { $0 }
        #expect(seen.count >= 3)
        for (temperament, stopAfter, start, observation) in seen where observation.sawClosed {
            #expect(
                observation.values.count + Int(observation.lagged) == total - start,
                "\(temperament) receiver from \(start), stop after \(String(describing: stopAfter))"
            )
        }
        // And with every receiver gone, the channel holds nothing.
        #expect(storage.receiverCount == 0)
        #expect(storage.heldValueCount == 0)
        #expect(storage.waiterCount == 0)
        #expect(storage.invariantViolation() == nil)
    }

    @Test(
        "concurrent unserialized publishers: per-publisher order holds and values plus lags add up",
        arguments: [5, 6] as [UInt64]
    )
    func concurrentPublishers(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        let capacity =
            random.oneIn(2) ? Int.random(in: 2...16, using: &random) : Int.random(in: 17...48, using: &random)
        let publishers = 3
        let perPublisher = 1_000
        let total = publishers * perPublisher
        let (sender, first) = Broadcast<Int>.channel(capacity: capacity)
        let storage = first.storage
        // Receivers all subscribe before any send, so each starts at position 0.
        var handoffs = [Handoff(first, start: 0)]
        for _ in 0..<5 { handoffs.append(Handoff(first.resubscribe(), start: 0)) }
        _ = consume first
        let senderBox = BroadcastTestSupport.Locked<Broadcast<Int>.Sender?>(sender)
        _ = consume sender
        let publishersLeft = BroadcastTestSupport.Locked(publishers)

        let observations = BroadcastTestSupport.Locked<[(Int?, Observation)]>([])
        await withTaskGroup(of: Void.self) { group in
            for publisher in 0..<publishers {
                group.addTask {
                    var yieldRandom = SplitMix64(seed: seed &+ UInt64(publisher))
                    var burst = 0
                    do {
                        guard let sender = senderBox.withLock({ $0 }) else { preconditionFailure("no sender") }
                        for sequence in 0..<perPublisher {
                            sender.send(publisher * 1_000_000 + sequence)
                            await Self.pace(&burst, &yieldRandom, capacity: capacity)
                        }
                    }
                    let isLast = publishersLeft.withLock { left in
                        left -= 1
                        return left == 0
                    }
                    if isLast { senderBox.withLock { $0 = nil } }
                }
            }
            for (index, handoff) in handoffs.enumerated() {
                let temperament = Temperament.allCases[index % Temperament.allCases.count]
                let stopAfter = index == handoffs.count - 1 ? Int.random(in: 0..<300, using: &random) : nil
                let readerSeed = seed &* 1_000 &+ UInt64(index)
                group.addTask {
                    let observation = await Self.read(
                        handoff,
                        temperament,
                        stopAfter: stopAfter,
                        seed: readerSeed,
                        exact: false
                    )
                    observations.withLock { $0.append((stopAfter, observation)) }
                }
            }
        }
        handoffs.removeAll()

        let seen = observations.withLock { $0 }
        #expect(seen.count == 6)
        for (stopAfter, observation) in seen {
            // Each publisher's values arrive in the order it sent them, and each at most once.
            var lastByPublisher: [Int: Int] = [:]
            for value in observation.values {
                let (publisher, sequence) = value.quotientAndRemainder(dividingBy: 1_000_000)
                if let last = lastByPublisher[publisher] { #expect(sequence > last) }
                lastByPublisher[publisher] = sequence
            }
            if observation.sawClosed {
                #expect(observation.values.count + Int(observation.lagged) == total)
            } else {
                #expect(stopAfter != nil)
            }
        }
        #expect(storage.receiverCount == 0)
        #expect(storage.heldValueCount == 0)
        #expect(storage.invariantViolation() == nil)
    }
}
