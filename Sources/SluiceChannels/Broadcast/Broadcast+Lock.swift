import Synchronization

extension Broadcast {
    /// A `Mutex` whose ordering ThreadSanitizer can see.
    ///
    /// On Linux, `Synchronization.Mutex` locks and unlocks with futex calls inside the prebuilt standard library,
    /// which ThreadSanitizer does not instrument. Under `swift test --sanitize=thread` every truly concurrent use of
    /// a bare `Mutex` is therefore reported as a data race, although the lock does exclude (checked here with two
    /// threads and a `Mutex<[Int]>`: reported; the same program with this wrapper: clean). Atomics, on the other
    /// hand, are compiled into this module and are instrumented.
    ///
    /// So each critical section starts with an acquiring load of `handoff` and ends with a releasing store to it.
    /// The mutex already orders the sections, so each load reads the store of the section before it: exactly the
    /// happens-before edge ThreadSanitizer is missing. The cost is nil where it matters: on x86-64 both are plain
    /// moves, and on arm64 they add ordering a critical section already has.
    ///
    /// This belongs in `Internal/` beside `Suspension.swift` (every channel needs it); it lives here only because
    /// this folder is the one the broadcast work may touch.
    struct SanitizerVisibleMutex<Value: ~Copyable>: ~Copyable, Sendable {
        private let mutex: Mutex<Value>
        /// Carries nothing but the happens-before edge from one critical section to the next.
        private let handoff = Atomic<UInt8>(0)

        init(_ value: consuming sending Value) {
            self.mutex = Mutex(value)
        }

        /// Runs `body` with exclusive access to the value, exactly like `Mutex.withLock`.
        borrowing func withLock<Result: ~Copyable, E: Error>(
            _ body: (inout sending Value) throws(E) -> sending Result
        ) throws(E) -> sending Result {
            try self.mutex.withLock { (value: inout sending Value) throws(E) -> sending Result in
                _ = self.handoff.load(ordering: .acquiring)
                defer { self.handoff.store(0, ordering: .releasing) }
                return try body(&value)
            }
        }
    }
}
