extension Oneshot {
    /// The waiters of one oneshot channel, with the first stored inline.
    ///
    /// Almost always exactly one task waits on a oneshot receiver, and at most one on its sender (the sender is
    /// noncopyable, so only the task that owns it can call `closed()`). Keeping that one waiter inline means that
    /// waiting allocates nothing; further waiters (several tasks awaiting the same ``Receiver``) go to an array,
    /// which allocates only when it first gets an element.
    ///
    /// Invariant: `first == nil` implies `others.isEmpty`, and `first` is the oldest waiter. Order is arrival
    /// order, so waiters are resumed first come, first served.
    @usableFromInline
    struct WaiterList<Waiter>: Sendable where Waiter: Sendable {
        /// The oldest waiter, or `nil` when the list is empty.
        @usableFromInline var first: Waiter?
        /// Every later waiter, oldest first. Empty (and unallocated) in the common single-waiter case.
        @usableFromInline var others: [Waiter] = []

        @inlinable
        init() {}

        /// A list holding one waiter.
        @inlinable
        init(_ waiter: Waiter) { self.first = waiter }

        @inlinable
        var isEmpty: Bool { self.first == nil }

        @inlinable
        var count: Int { self.first == nil ? 0 : 1 + self.others.count }

        @inlinable
        mutating func append(_ waiter: Waiter) {
            if self.first == nil {
                self.first = waiter
            } else {
                self.others.append(waiter)
            }
        }

        /// Removes and returns the oldest waiter that matches, keeping the others in order. Used by cancellation.
        @inlinable
        mutating func removeFirst(where matches: (Waiter) -> Bool) -> Waiter? {
            guard let first = self.first else { return nil }
            if matches(first) {
                self.first = self.others.isEmpty ? nil : self.others.removeFirst()
                return first
            }
            guard let index = self.others.firstIndex(where: matches) else { return nil }
            return self.others.remove(at: index)
        }

        /// Calls `body` on every waiter, oldest first.
        @inlinable
        func forEachOldestFirst(_ body: (Waiter) -> Void) {
            guard let first = self.first else { return }
            body(first)
            for waiter in self.others { body(waiter) }
        }
    }
}
