extension Oneshot {
    /// How a suspended `value()` ends.
    @usableFromInline
    enum ReceiveOutcome: Sendable {
        case value(Value)
        /// The sender was dropped without sending.
        case senderDropped
        /// The receiver was closed before any value was sent.
        case closed
        /// The waiting task was cancelled; nothing was taken.
        case cancelled
    }

    /// How a suspended ``Sender/closed()`` ends.
    @usableFromInline
    typealias ClosedOutcome = SluiceChannels.ClosedOutcome

    @usableFromInline
    typealias ReceiveContinuation = UnsafeContinuation<ReceiveOutcome, Never>

    /// A task suspended in ``Receiver/value()``.
    @usableFromInline
    typealias ReceiveWaiter = Waiter<ReceiveOutcome>

    /// A `value()` waiter to resume after unlocking, with what it gets.
    @usableFromInline
    typealias ReceiveResumption = Resumption<ReceiveContinuation, ReceiveOutcome>

    /// `value()` waiters to resume after unlocking, all with the same outcome. Moving the list out of the state
    /// machine costs no allocation.
    @usableFromInline
    typealias ReceiverWakeups = Wakeup<ReceiveOutcome>

    /// `closed()` waiters to resume with `.closed` after unlocking.
    @usableFromInline
    typealias ClosedWakeups = Wakeup<ClosedOutcome>

    /// The receiving half of a channel made by ``Oneshot/channel(deliveringTo:)``: called once, with the value or
    /// with why none can come.
    public typealias Delivery = @Sendable (Result<Value, RecvError>) -> Void

    /// The pure state of one oneshot channel: no locks, no tasks, no clocks. ``Oneshot/Storage`` owns it inside a
    /// `Mutex`, calls one event method per thing that happened, and performs the returned action after unlocking.
    ///
    /// The receiving side is an enum because its states exclude each other: the value is absent, awaited, there,
    /// or can never come. The sender's `closed()` waiters are a separate field: they exist only while the sender
    /// is alive and unsent, which spans both `.empty` and `.waiting`.
    ///
    /// Transitions (anything else is a `preconditionFailure`):
    /// ```
    /// empty   ──recv waits──▶ waiting ──last waiter cancelled──▶ empty
    /// empty | waiting ──send──▶ sent          ──receiver dropped──▶ closed
    /// empty | waiting ──sender dropped──▶ senderDropped
    /// empty | waiting ──close or receiver dropped──▶ closed
    /// delivering ──send──▶ closed (the delivery has the value)
    /// delivering ──sender dropped──▶ senderDropped
    /// ```
    /// A channel starts in `delivering` when its receiving half is an action (``Oneshot/channel(deliveringTo:)``);
    /// it never has a ``Receiver``, so the receiver's events cannot happen to it.
    @usableFromInline
    struct StateMachine: ~Copyable {
        @usableFromInline
        enum State {
            /// Nothing sent, the sender is alive, nobody waits.
            case empty
            /// Nothing sent, the sender is alive, these tasks wait in `value()` (never an empty list).
            case waiting(WaiterList<ReceiveWaiter>)
            /// The value was sent. It stays here, so every later `value()` returns it again, until the receiver
            /// goes away.
            case sent(Value)
            /// The sender was dropped without sending; nothing can arrive.
            case senderDropped
            /// The receiver closed (or went away) before a value was sent; any send fails. Also where a
            /// `delivering` channel ends once its action has the value.
            case closed
            /// Nothing sent, the sender is alive, and the receiving half is this action, not a task
            /// (``Oneshot/channel(deliveringTo:)``).
            case delivering(Delivery)
        }

        /// Where the value stands; see ``State``.
        @usableFromInline var state: State = .empty
        /// Tasks waiting in ``Oneshot/Sender/closed()``; non-empty only while the state is `.empty` or `.waiting`.
        @usableFromInline var closedWaiters = WaiterList<ClosedWaiter>()
        /// Ids for suspensions, so cancellation can find its waiter.
        @usableFromInline var nextWaiterID: UInt64 = 0

        @inlinable
        init() {}

        /// A channel whose receiving half is `delivery`.
        @inlinable
        init(delivering delivery: @escaping Delivery) { self.state = .delivering(delivery) }

        /// True once a send would fail: the receiver closed or went away.
        @usableFromInline var isClosedForSending: Bool {
            if case .closed = self.state { return true }
            return false
        }

        /// Tasks waiting in `value()` right now.
        @usableFromInline var receiveWaiterCount: Int {
            if case .waiting(let waiters) = self.state { return waiters.count }
            return 0
        }

        /// Tasks waiting in the sender's `closed()` right now.
        @inlinable
        var closedWaiterCount: Int { self.closedWaiters.count }

        /// The state's case name, for failure messages (never the value itself).
        @usableFromInline var stateName: String {
            switch self.state {
            case .empty: return ".empty"
            case .waiting: return ".waiting"
            case .sent: return ".sent"
            case .senderDropped: return ".senderDropped"
            case .closed: return ".closed"
            case .delivering: return ".delivering"
            }
        }

        @inlinable
        mutating func makeWaiterID() -> UInt64 {
            self.nextWaiterID &+= 1
            return self.nextWaiterID
        }

        // MARK: - Sender

        @usableFromInline
        enum SendAction: Sendable {
            /// The value is stored for the receiver.
            case stored
            /// The value is stored and these waiters get it.
            case resumeReceivers(ReceiverWakeups)
            /// The receiver closed or is gone: the caller hands its value back.
            case closed
            /// The caller gives the value to this action.
            case deliver(Delivery)
        }

        @inlinable
        mutating func send(_ value: Value) -> SendAction {
            switch self.state {
            case .empty:
                self.state = .sent(value)
                return .stored
            case .waiting(let waiters):
                self.state = .sent(value)
                return .resumeReceivers(ReceiverWakeups(waiters: waiters, outcome: .value(value)))
            case .closed:
                return .closed
            case .delivering(let delivery):
                self.state = .closed
                return .deliver(delivery)
            case .sent, .senderDropped:
                preconditionFailure("Oneshot send in state \(self.stateName): the sender is used once")
            }
        }

        /// What a dropped sender wakes: the tasks waiting in `value()`, or the delivery action.
        @usableFromInline
        enum DropAction: Sendable {
            case none
            case resumeReceivers(ReceiverWakeups)
            case deliver(Delivery)
        }

        /// The sender was dropped without sending.
        @inlinable
        mutating func senderDropped() -> DropAction {
            precondition(self.closedWaiters.isEmpty, "Oneshot sender dropped while a task waits in its closed()")
            switch self.state {
            case .empty:
                self.state = .senderDropped
                return .none
            case .waiting(let waiters):
                self.state = .senderDropped
                return .resumeReceivers(ReceiverWakeups(waiters: waiters, outcome: .senderDropped))
            case .delivering(let delivery):
                self.state = .senderDropped
                return .deliver(delivery)
            case .closed:
                return .none  // the receiver closed first; nothing changes for it
            case .sent, .senderDropped:
                preconditionFailure("Oneshot sender dropped in state \(self.stateName): the sender is used once")
            }
        }

        // MARK: - Receiver

        @usableFromInline
        enum ReceiveAction: Sendable {
            case value(Value)
            case senderDropped
            case closed
            /// Nothing yet: suspend as waiter `id` through ``receiveSuspended(id:continuation:isCancelled:)``.
            case suspend(id: UInt64)
            /// Nothing yet and the caller may not wait.
            case empty
        }

        /// The receiver asks for the value. The value is copied out, never moved: it stays for later calls.
        @inlinable
        mutating func receive(mayWait: Bool) -> ReceiveAction {
            switch self.state {
            case .sent(let value): return .value(value)
            case .senderDropped: return .senderDropped
            case .closed: return .closed
            case .empty, .waiting: return mayWait ? .suspend(id: self.makeWaiterID()) : .empty
            case .delivering: preconditionFailure("Oneshot receive on a channel that delivers to an action")
            }
        }

        /// A `value()` that got `.suspend(id)` now holds a continuation. Re-checks, because the lock was released
        /// in between. Returns the waiter to resume at once, or `nil` when it is stored.
        @inlinable
        mutating func receiveSuspended(
            id: UInt64,
            continuation: ReceiveContinuation,
            isCancelled: Bool
        ) -> ReceiveResumption? {
            if isCancelled { return ReceiveResumption(continuation: continuation, outcome: .cancelled) }
            let waiter = ReceiveWaiter(id: id, continuation: continuation)
            switch self.state {
            case .sent(let value): return ReceiveResumption(continuation: continuation, outcome: .value(value))
            case .senderDropped: return ReceiveResumption(continuation: continuation, outcome: .senderDropped)
            case .closed: return ReceiveResumption(continuation: continuation, outcome: .closed)
            case .empty:
                self.state = .waiting(WaiterList(waiter))
                return nil
            case .waiting(var waiters):
                self.state = .empty  // drop the state's reference so `waiters` is unique and appends in place
                waiters.append(waiter)
                self.state = .waiting(waiters)
                return nil
            case .delivering: preconditionFailure("Oneshot receive on a channel that delivers to an action")
            }
        }

        /// The task waiting in `value()` as `id` was cancelled: returns it to resume with `.cancelled` if it was
        /// still waiting; `nil` if it was already resumed (that outcome stands).
        @inlinable
        mutating func receiveCancelled(id: UInt64) -> ReceiveResumption? {
            guard case .waiting(var waiters) = self.state else { return nil }
            self.state = .empty
            let removed = waiters.removeFirst(where: { $0.id == id })
            if !waiters.isEmpty { self.state = .waiting(waiters) }
            guard let removed else { return nil }
            return ReceiveResumption(continuation: removed.continuation, outcome: .cancelled)
        }

        /// The receiver called `close()`: sends fail from now on, tasks waiting for a value end with `.closed`, and
        /// the sender's `closed()` waiters return. A value already sent stays to be taken.
        @inlinable
        mutating func receiverClosed() -> (ReceiverWakeups?, ClosedWakeups?) {
            switch self.state {
            case .empty:
                self.state = .closed
                return (nil, self.takeClosedWaiters())
            case .waiting(let waiters):
                self.state = .closed
                return (ReceiverWakeups(waiters: waiters, outcome: .closed), self.takeClosedWaiters())
            case .sent, .senderDropped, .closed:
                return (nil, nil)  // the sender is used up or gone, or this is a second close
            case .delivering: preconditionFailure("Oneshot close on a channel that delivers to an action")
            }
        }

        /// The receiver object is gone. Returns a value that was sent and never can be received, so that it is
        /// destroyed after unlocking, and the sender's `closed()` waiters.
        @inlinable
        mutating func receiverDropped() -> (Value?, ClosedWakeups?) {
            switch self.state {
            case .empty:
                self.state = .closed
                return (nil, self.takeClosedWaiters())
            case .sent(let value):
                self.state = .closed
                return (value, nil)
            case .senderDropped, .closed:
                return (nil, nil)
            case .waiting:
                preconditionFailure("Oneshot receiver dropped in state .waiting: a waiting task holds it")
            case .delivering: preconditionFailure("Oneshot receiver dropped on a channel that delivers to an action")
            }
        }
    }
}

/// The sender's `closed()` (see ``ClosedWaitEvents``): the receiving side is gone once the receiver closed or went
/// away.
extension Oneshot.StateMachine: ClosedWaitEvents {
    @inlinable
    var isReceivingSideGone: Bool { self.isClosedForSending }
}

extension Oneshot.ReceiveOutcome: Equatable where Value: Equatable {}
