extension AsyncSemaphore {
    /// Units taken from an ``AsyncSemaphore``, given back exactly once.
    ///
    /// A permit is noncopyable: it holds ``count`` units and nobody else can hold the same ones. It gives them back
    /// when ``release()`` is called or when it goes out of scope unreleased, whichever comes first, and never twice.
    /// ``forget()`` keeps them out of the semaphore instead. A permit keeps its semaphore alive.
    ///
    /// ## Dropped permit
    ///
    /// Dropping a permit is the same as releasing it, so an early `return` or a thrown error cannot leak units:
    ///
    /// ```swift
    /// let permit = try await limit.acquire()
    /// try await work()                                 // throws? the units go back anyway
    /// _ = consume permit                               // or `permit.release()`: give them back now
    /// ```
    ///
    /// ## Moving units to another task
    ///
    /// A noncopyable value cannot be captured by an escaping closure such as a `Task` body. Use ``forget()`` in the
    /// acquiring task and ``AsyncSemaphore/release(_:)`` in the other one:
    ///
    /// ```swift
    /// let permit = try await semaphore.acquire(n)
    /// permit.forget()
    /// Task {
    ///     defer { semaphore.release(n) }
    ///     await work()
    /// }
    /// ```
    public struct Permit: ~Copyable, Sendable {
        /// The semaphore the units came from and go back to.
        private let semaphore: AsyncSemaphore
        /// Units this permit holds; changed only by ``split(_:)`` and ``merge(_:)``.
        public private(set) var count: Int
        /// Set once the units were given back or forgotten, so that `deinit` does not return them a second time.
        /// (`discard self` is refused for a struct with a class field, so a flag it is.)
        private var settled = false

        init(semaphore: AsyncSemaphore, count: Int) {
            self.semaphore = semaphore
            self.count = count
        }

        /// Gives the units back to the semaphore now, waking waiters that fit.
        ///
        /// The same as letting the permit go out of scope; use it to make the point of release explicit.
        public consuming func release() {
            self.settled = true
            self.semaphore.permitReleased(self.count)
        }

        /// Consumes the permit without giving its units back: the semaphore has that many units fewer until
        /// somebody calls ``AsyncSemaphore/release(_:)`` (tokio's `forget`).
        ///
        /// Use it to shrink a semaphore for good, or to move the units to a task that a noncopyable permit cannot
        /// be captured by; that task then releases them by hand.
        ///
        /// ## Examples
        /// ```swift
        /// let permit = try await semaphore.acquire(2)
        /// permit.forget()
        /// Task {
        ///     defer { semaphore.release(2) }           // exactly the units the permit held
        ///     await work()
        /// }
        /// ```
        public consuming func forget() {
            self.settled = true
        }

        /// Moves `n` of this permit's units into a new permit.
        ///
        /// - Parameter n: units to move, at least 0. Moving all of them leaves this permit with none (releasing it
        ///   then gives nothing back).
        /// - Returns: a permit holding `n` units, or `nil` (and nothing changes) if this one holds fewer than `n`.
        ///
        /// ## Examples
        /// ```swift
        /// var permit = try await memory.acquire(frame.length)
        /// let header = permit.split(headerLength)!       // released separately, earlier
        /// ```
        public mutating func split(_ n: Int) -> Permit? {
            precondition(n >= 0, "AsyncSemaphore.Permit.split needs a non-negative number of units, got \(n)")
            guard n <= self.count else { return nil }
            self.count -= n
            return Permit(semaphore: self.semaphore, count: n)
        }

        /// Moves every unit of `other` into this permit. Both must come from the same semaphore.
        public mutating func merge(_ other: consuming Permit) {
            precondition(
                other.semaphore === self.semaphore,
                "AsyncSemaphore.Permit.merge needs permits of the same semaphore"
            )
            self.count += other.count
            other.settled = true
        }

        deinit {
            if !self.settled { self.semaphore.permitReleased(self.count) }
        }
    }
}
