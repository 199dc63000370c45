import Testing

@testable import SluiceChannels

// Helpers for driving `MPSC.StateMachine` directly: readable names for its actions, and real continuations owned
// by parked tasks, so that waiter events can be exercised without the `Storage` around the machine.

typealias MPSCMachine = MPSC<Int>.StateMachine
typealias MPSCSendOutcome = MPSC<Int>.SendOutcome
typealias MPSCReceiveOutcome = MPSC<Int>.ReceiveOutcome

extension MPSC.StateMachine.SendAction {
    var kind: String {
        switch self {
        case .stored: "stored"
        case .resumeReceiver: "resumeReceiver"
        case .full: "full"
        case .suspend: "suspend"
        case .closed: "closed"
        }
    }

    var suspendID: UInt64? {
        if case .suspend(let id) = self { return id }
        return nil
    }

    /// The receivers to wake (they take the value from the ring themselves).
    var receiver: MPSC.Wakeups? {
        if case .resumeReceiver(let receivers) = self { return receivers }
        return nil
    }
}

extension MPSC.StateMachine.PermitSendAction {
    /// `stored` when the value went into the channel, `resumeReceiver` when that also woke a waiting receiver.
    var kind: String {
        switch self {
        case .delivered(let wakeups): wakeups.receivers.isEmpty ? "stored" : "resumeReceiver"
        case .closed: "closed"
        }
    }

    /// Everything the action wakes (a waiting receiver, and any sender admitted), as one thing to resume.
    var receiver: MPSC.Wakeups? {
        if case .delivered(let wakeups) = self, !wakeups.receivers.isEmpty { return wakeups }
        return nil
    }
}

extension MPSC.Wakeups {
    func resume() { self.resumeAll() }
}

extension MPSC.StateMachine.ReserveAction {
    var kind: String {
        switch self {
        case .reserved: "reserved"
        case .full: "full"
        case .suspend: "suspend"
        case .closed: "closed"
        }
    }

    /// Whether the reservation holds a slot beyond the ring; `nil` if nothing was reserved.
    var inSpill: Bool? {
        if case .reserved(let inSpill) = self { return inSpill }
        return nil
    }

    var suspendID: UInt64? {
        if case .suspend(let id) = self { return id }
        return nil
    }
}

extension MPSC.StateMachine.ReceiveAction {
    var kind: String {
        switch self {
        case .value: "value"
        case .finished: "finished"
        case .suspend: "suspend"
        case .empty: "empty"
        }
    }

    var value: Element? {
        if case .value(let value, _) = self { return value }
        return nil
    }

    /// The waiting sender that the receive admitted into the freed slot.
    var admitted: MPSC.SenderResumption? {
        if case .value(_, let wakeups) = self { return wakeups.senders.first }
        return nil
    }

    var suspendID: UInt64? {
        if case .suspend(let id) = self { return id }
        return nil
    }
}

extension MPSC.StateMachine.ReceiveBatchAction {
    var kind: String {
        switch self {
        case .values: "values"
        case .finished: "finished"
        case .suspend: "suspend"
        }
    }

    var wakeups: MPSC.Wakeups? {
        if case .values(let wakeups) = self { return wakeups }
        return nil
    }

    var suspendID: UInt64? {
        if case .suspend(let id) = self { return id }
        return nil
    }
}

extension MPSC.StateMachine.WaiterAction {
    /// `nil` when the waiter was stored.
    var resumption: Resumption? {
        if case .resume(let resumption) = self { return resumption }
        return nil
    }
}

extension MPSC.ReceiveOutcome {
    var text: String {
        switch self {
        case .ready: "ready"
        case .closed: "closed"
        case .cancelled: "cancelled"
        }
    }
}

extension MPSC.StateMachine {
    /// Spends a permit inside the ring (what `reserve()` gives on a channel whose ring has room).
    mutating func permitSend(_ value: Element) -> PermitSendAction { self.permitSend(value, inSpill: false) }

    /// Drops a permit inside the ring. The fast path gives a ring permit back without the lock; here the machine
    /// does it, as it does when a flag sends the fast path to the lock.
    mutating func permitDropped() -> MPSC.Wakeups { self.permitDropped(inSpill: false) }
}

/// A task parked in `withUnsafeContinuation`; the test hands its continuation to the state machine and later
/// reads how it was resumed.
struct ParkedContinuation<Outcome: Sendable>: Sendable {
    let continuation: UnsafeContinuation<Outcome, Never>
    private let box: OutcomeBox<Outcome>

    /// Starts a task that parks, and returns once its continuation exists.
    static func make() async -> ParkedContinuation {
        let box = OutcomeBox<Outcome>()
        Task {
            let outcome = await withUnsafeContinuation { continuation in
                box.state.withLock { $0.continuation = continuation }
            }
            box.state.withLock { $0.outcome = outcome }
        }
        for _ in 0..<1_000_000 {
            if let continuation = box.state.withLock({ $0.continuation }) {
                return ParkedContinuation(continuation: continuation, box: box)
            }
            await Task.yield()
        }
        fatalError("a parked task never started")
    }

    /// How the continuation was resumed; records an issue (instead of hanging) if it never is.
    func outcome(_ sourceLocation: SourceLocation = #_sourceLocation) async -> Outcome? {
        for _ in 0..<1_000_000 {
            if let outcome = self.box.state.withLock({ $0.outcome }) { return outcome }
            await Task.yield()
        }
        Issue.record("parked task was never resumed", sourceLocation: sourceLocation)
        return nil
    }

    /// True once the parked task observed a resumption (exact only once the resumer's effects had time to run).
    var isResumed: Bool { self.box.state.withLock { $0.outcome != nil } }
}

private final class OutcomeBox<Outcome: Sendable>: Sendable {
    struct State {
        var continuation: UnsafeContinuation<Outcome, Never>?
        var outcome: Outcome?
    }
    let state = HarnessLock(State())
}
