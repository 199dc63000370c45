import SluiceChannels
import SluiceWire
import Synchronization

/// Subscriptions by pattern, each pattern with one `Broadcast` channel that every subscriber of that exact pattern
/// reads.
///
/// PUB looks up the patterns matching its subject (literal patterns in a dictionary, wildcard patterns by scan) and
/// sends the message once into each pattern's channel; the channel keeps it, shared, until its slowest subscriber
/// has read it or fallen more than the buffer behind (that subscriber then receives `LAGGED` with the exact count).
/// A pattern nobody subscribes to any more is removed at once, so subjects without subscribers cost nothing.
///
/// REQUEST uses the same table to find responders: every subscription whose pattern matches.
///
/// One mutex guards the maps. `Broadcast.send` is called under it: the broadcast's own lock nests inside ours and
/// never calls back, and sending under our lock is what makes "published after the SUB's OK" exact: a SUB is
/// answered only after its receiver is in the table.
final class SubjectTable: Sendable {
    /// One subscribed pattern.
    struct Topic: Sendable {
        /// Sends into the pattern's channel.
        let sender: Broadcast<Delivery>.Sender
        /// Subscriptions on it, in subscription order.
        var members: [Member]
    }

    struct State: ~Copyable {
        /// Patterns without wildcards, by pattern (= subject).
        var literal: [String: Topic] = [:]
        /// Patterns with `*` or `>`.
        var wildcard: [String: Topic] = [:]
        /// Round-robin cursor for choosing a responder.
        var nextResponder = 0
    }

    private let state = Locked(State())
    private let buffer: Int

    /// A table whose patterns buffer `buffer` messages each.
    init(buffer: Int) {
        self.buffer = max(1, buffer)
    }

    /// Adds `member` to `pattern` (already validated) and returns the receiver it reads. Messages published from
    /// now on reach it.
    func subscribe(_ pattern: String, member: Member) -> Broadcast<Delivery>.Receiver {
        let isWildcard = pattern.utf8.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: ">") }
        return self.state.withLock { state in
            func join(_ topic: inout Topic?) -> Broadcast<Delivery>.Receiver {
                if topic == nil {
                    let (sender, receiver) = Broadcast<Delivery>.channel(capacity: self.buffer)
                    topic = Topic(sender: sender, members: [member])
                    return receiver
                }
                topic!.members.append(member)
                return topic!.sender.subscribe()
            }
            return isWildcard ? join(&state.wildcard[pattern]) : join(&state.literal[pattern])
        }
    }

    /// Removes `member` from `pattern`; the pattern goes when its last member does.
    func unsubscribe(_ pattern: String, member: Member) {
        self.state.withLock { state in
            func leave(_ topic: inout Topic?) {
                topic?.members.removeAll { $0.isSame(member) }
                if topic?.members.isEmpty == true { topic = nil }
            }
            if state.literal[pattern] != nil {
                leave(&state.literal[pattern])
            } else {
                leave(&state.wildcard[pattern])
            }
        }
    }

    /// Sends `delivery` to every pattern matching its subject; returns how many patterns received it.
    @discardableResult
    func publish(_ delivery: Delivery) -> Int {
        self.state.withLock { state in
            var patterns = 0
            if let topic = state.literal[delivery.subject] {
                _ = topic.sender.send(delivery)
                patterns += 1
            }
            for (pattern, topic) in state.wildcard where Subject.matches(pattern: pattern, subject: delivery.subject) {
                _ = topic.sender.send(delivery)
                patterns += 1
            }
            return patterns
        }
    }

    /// One subscription serving `subject`, chosen round robin among all that match, or nil when none does.
    func responder(for subject: String) -> Member? {
        self.state.withLock { state in
            var candidates: [Member] = state.literal[subject]?.members ?? []
            for (pattern, topic) in state.wildcard where Subject.matches(pattern: pattern, subject: subject) {
                candidates += topic.members
            }
            guard !candidates.isEmpty else { return nil }
            state.nextResponder &+= 1
            return candidates[state.nextResponder % candidates.count]
        }
    }

    /// Patterns with at least one subscriber.
    var patternCount: Int { self.state.withLock { $0.literal.count + $0.wildcard.count } }
}
