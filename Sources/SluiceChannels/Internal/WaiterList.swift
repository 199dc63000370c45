/// A task suspended in a channel wait: the id its cancellation looks for, and the continuation that resumes it.
///
/// The state machine stores it when the task suspends and hands it back, inside a ``Resumption`` or a ``Wakeup``,
/// when an event or a cancellation decides how the wait ends (see `suspend(register:onCancel:)`). Waits that need
/// more than this (the receiver a broadcast waiter reads, the units a semaphore waiter asked for) keep their own
/// waiter type.
@usableFromInline
struct Waiter<Outcome: Sendable>: Sendable {
    @usableFromInline let id: UInt64
    @usableFromInline let continuation: UnsafeContinuation<Outcome, Never>

    @inlinable
    init(id: UInt64, continuation: UnsafeContinuation<Outcome, Never>) {
        self.id = id
        self.continuation = continuation
    }
}

/// A FIFO list that stores its first element inline: the waiters of one side of a channel, or the resumptions one
/// event decides on.
///
/// Almost always exactly one task waits on a oneshot receiver, at most one on a sender's `closed()`, and one
/// release of a semaphore wakes one waiter. Keeping that one element inline means that the common case allocates
/// nothing; further elements go to an array, which allocates only when it first gets one. Moving the list out of
/// a state machine (to resume its waiters after unlocking) costs no allocation either.
///
/// Invariant: `first == nil` implies `others.isEmpty`, and `first` is the oldest element. Order is arrival order,
/// so waiters are resumed first come, first served.
@usableFromInline
struct WaiterList<Element> {
    /// The oldest element, or `nil` when the list is empty.
    @usableFromInline var first: Element?
    /// Every later element, oldest first. Empty (and unallocated) in the common single-element case.
    @usableFromInline var others: [Element] = []

    @inlinable
    init() {}

    /// A list holding one element.
    @inlinable
    init(_ element: Element) { self.first = element }

    @inlinable
    var isEmpty: Bool { self.first == nil }

    @inlinable
    var count: Int { self.first == nil ? 0 : 1 + self.others.count }

    /// Makes room for `count` elements in all, so that appending them allocates at most once.
    @inlinable
    mutating func reserveCapacity(_ count: Int) {
        if count > 1 { self.others.reserveCapacity(count - 1) }
    }

    @inlinable
    mutating func append(_ element: Element) {
        if self.first == nil {
            self.first = element
        } else {
            self.others.append(element)
        }
    }

    /// Removes and returns the oldest element that matches, keeping the others in order. Used by cancellation.
    @inlinable
    mutating func removeFirst(where matches: (Element) -> Bool) -> Element? {
        guard let first = self.first else { return nil }
        if matches(first) {
            self.first = self.others.isEmpty ? nil : self.others.removeFirst()
            return first
        }
        guard let index = self.others.firstIndex(where: matches) else { return nil }
        return self.others.remove(at: index)
    }
}

extension WaiterList: Sendable where Element: Sendable {}

/// Iterates oldest first.
extension WaiterList: Sequence {
    @usableFromInline
    struct Iterator: IteratorProtocol {
        @usableFromInline var first: Element?
        @usableFromInline var others: IndexingIterator<[Element]>

        @inlinable
        init(first: Element?, others: IndexingIterator<[Element]>) {
            self.first = first
            self.others = others
        }

        @inlinable
        mutating func next() -> Element? {
            if let first = self.first.take() { return first }
            return self.others.next()
        }
    }

    @inlinable
    func makeIterator() -> Iterator {
        Iterator(first: self.first, others: self.others.makeIterator())
    }

    @inlinable
    var underestimatedCount: Int { self.count }
}
