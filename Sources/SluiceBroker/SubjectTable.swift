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
/// Queue groups (SUB with a group name) get one `Broadcast` per (pattern, group) and one group forwarder task that
/// reads it and hands each message to one member, round robin, with ``Outbox/post(_:)`` under this table's lock:
/// a member whose UNSUB has been answered is never chosen again, and a member that cannot take the message (past
/// its outgoing limit) is closed as a slow consumer and the next member gets it.
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

    /// One queue group on one pattern.
    struct Group: Sendable {
        let pattern: String
        let sender: Broadcast<Delivery>.Sender
        var members: [Member]
        /// The next member to choose.
        var cursor = 0
        /// Reads the group's Broadcast; cancelled when the last member leaves.
        var forwarder: Task<Void, Never>?
    }

    struct State: ~Copyable {
        /// Patterns without wildcards, by pattern (= subject).
        var literal: [String: Topic] = [:]
        /// Patterns with `*` or `>`.
        var wildcard: [String: Topic] = [:]
        /// Queue groups, by `pattern + " " + group` (a space appears in no name).
        var groups: [String: Group] = [:]
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

    /// Adds `member` to queue group `group` on `pattern` (both validated). Starts the group's forwarder, preferring
    /// `executor`, when the member is the first.
    func subscribe(_ pattern: String, group: String, member: Member, executor: (any TaskExecutor)?) {
        let key = pattern + " " + group
        let receiver = self.state.withLock { state -> Broadcast<Delivery>.Receiver? in
            if state.groups[key] != nil {
                state.groups[key]!.members.append(member)
                return nil
            }
            let (sender, receiver) = Broadcast<Delivery>.channel(capacity: self.buffer)
            state.groups[key] = Group(pattern: pattern, sender: sender, members: [member])
            return receiver
        }
        guard let receiver else { return }
        let forwarder = Task(executorPreference: executor) { [self] in await self.forwardGroup(key, from: receiver) }
        let orphaned = self.state.withLock { state -> Bool in
            guard state.groups[key] != nil else { return true }
            state.groups[key]!.forwarder = forwarder
            return false
        }
        if orphaned { forwarder.cancel() }
    }

    /// Reads a group's Broadcast and hands each message to one member.
    private func forwardGroup(_ key: String, from receiver: Broadcast<Delivery>.Receiver) async {
        var batch: [Delivery] = []
        batch.reserveCapacity(64)
        while !Task.isCancelled {
            batch.removeAll(keepingCapacity: true)
            do {
                _ = try await receiver.recv(upTo: 64, into: &batch)
            } catch Broadcast<Delivery>.RecvError.lagged(let missed) {
                self.handToGroup(key) { .lagged(Frame.Lagged(subscriptionID: $0, missed: missed)) }
                continue
            } catch {
                return
            }
            for delivery in batch {
                self.handToGroup(key) {
                    .msg(
                        Frame.Message(
                            subscriptionID: $0,
                            subject: delivery.subject,
                            headers: delivery.headers,
                            payload: delivery.payload
                        )
                    )
                }
            }
        }
    }

    /// Posts one frame to one member of the group, round robin, skipping members that cannot take it.
    private func handToGroup(_ key: String, _ frame: (UInt32) -> Frame) {
        self.state.withLock { state in
            guard var group = state.groups[key] else { return }
            defer { state.groups[key] = group }
            for _ in 0..<group.members.count {
                let member = group.members[group.cursor % group.members.count]
                group.cursor &+= 1
                switch member.outbox.post(frame(member.subscriptionID)) {
                case .queued: return
                case .overLimit: member.closer.close(.slowConsumer)
                case .closed: continue
                }
            }
        }
    }

    /// Removes `member` from queue group `group` on `pattern`; the group goes when its last member does.
    func unsubscribe(_ pattern: String, group: String, member: Member) {
        let key = pattern + " " + group
        let forwarder = self.state.withLock { state -> Task<Void, Never>? in
            state.groups[key]?.members.removeAll { $0.isSame(member) }
            guard state.groups[key]?.members.isEmpty == true else { return nil }
            return state.groups.removeValue(forKey: key)?.forwarder
        }
        forwarder?.cancel()
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
            for group in state.groups.values where Subject.matches(pattern: group.pattern, subject: delivery.subject) {
                _ = group.sender.send(delivery)
                patterns += 1
            }
            return patterns
        }
    }

    /// Publishes a batch in order under one lock: each run of consecutive deliveries to the same subject goes into
    /// each matching pattern's channel with one `send(contentsOf:)`. Per-publisher order holds, since runs are sent
    /// in order. Returns how many pattern sends there were.
    ///
    /// Every pattern channel sent to whose slowest subscriber is now more than three quarters of the buffer behind
    /// is appended to `congested` (see ``congestionThreshold(_:)``), for the publisher to stall on.
    @discardableResult
    func publish(_ batch: ArraySlice<Delivery>, congested: inout [Broadcast<Delivery>.Sender]) -> Int {
        guard !batch.isEmpty else { return 0 }
        return self.state.withLock { state in
            var sends = 0
            func send(_ run: ArraySlice<Delivery>, to sender: Broadcast<Delivery>.Sender) {
                sends += 1
                let threshold = Self.congestionThreshold(sender)
                let (_, backlog) = sender.send(contentsOf: run, backlogAbove: threshold)
                if let backlog, backlog > threshold, !congested.contains(where: { $0 === sender }) {
                    congested.append(sender)
                }
            }
            var start = batch.startIndex
            while start < batch.endIndex {
                let subject = batch[start].subject
                var end = start + 1
                while end < batch.endIndex && batch[end].subject == subject { end += 1 }
                let run = batch[start..<end]
                if let topic = state.literal[subject] { send(run, to: topic.sender) }
                for (pattern, topic) in state.wildcard where Subject.matches(pattern: pattern, subject: subject) {
                    send(run, to: topic.sender)
                }
                for group in state.groups.values where Subject.matches(pattern: group.pattern, subject: subject) {
                    send(run, to: group.sender)
                }
                start = end
            }
            return sends
        }
    }

    /// A pattern is congested when its slowest subscriber is more than this far behind (three quarters of the
    /// buffer): a publisher that keeps going makes it lag soon.
    static func congestionThreshold(_ sender: Broadcast<Delivery>.Sender) -> Int {
        sender.capacity - sender.capacity / 4
    }

    /// True once `sender`'s slowest subscriber is back within half of the buffer: a stalled publisher may go on.
    static func hasDrained(_ sender: Broadcast<Delivery>.Sender) -> Bool {
        sender.backlog <= sender.capacity / 2
    }

    /// One subscription serving `subject`, chosen round robin among all that match, or nil when none does.
    func responder(for subject: String) -> Member? {
        self.state.withLock { state in
            if state.wildcard.isEmpty && state.groups.isEmpty {
                // Only literal subscriptions: pick among them without collecting candidates (no allocation).
                guard let members = state.literal[subject]?.members, !members.isEmpty else { return nil }
                state.nextResponder &+= 1
                return members[state.nextResponder % members.count]
            }
            var candidates: [Member] = state.literal[subject]?.members ?? []
            for (pattern, topic) in state.wildcard where Subject.matches(pattern: pattern, subject: subject) {
                candidates += topic.members
            }
            for group in state.groups.values where Subject.matches(pattern: group.pattern, subject: subject) {
                candidates += group.members
            }
            guard !candidates.isEmpty else { return nil }
            state.nextResponder &+= 1
            return candidates[state.nextResponder % candidates.count]
        }
    }

    /// Patterns with at least one subscriber.
    var patternCount: Int { self.state.withLock { $0.literal.count + $0.wildcard.count + $0.groups.count } }
}
