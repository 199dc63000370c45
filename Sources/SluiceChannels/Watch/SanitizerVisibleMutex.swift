import Synchronization

/// A `Mutex` whose critical sections ThreadSanitizer can order. Same API, same cost on x86-64.
///
/// ## Why it exists
///
/// On Linux, `Synchronization.Mutex` hands a contended lock over in the kernel (`FUTEX_LOCK_PI` /
/// `FUTEX_UNLOCK_PI`) or in the spin loop of `_lockSlow`, which lives in the uninstrumented standard library.
/// ThreadSanitizer sees neither, so two critical sections on different threads look unordered, and every
/// contended channel reports a "Swift access race" inside its own state machine under
/// `swift test --sanitize=thread`. That is a false positive, but a test run full of them hides real races.
///
/// ## What it does
///
/// Each critical section starts with an acquiring load and ends with a releasing store of `handoff`, an atomic
/// in our own (instrumented) code. The real mutex already serializes the sections, so each load observes the
/// previous section's store, and ThreadSanitizer records the happens-before edge the kernel hid. Accesses outside
/// the lock are still checked. On x86-64 both operations are plain `mov` instructions; on arm64 they are
/// `ldar`/`stlr`, inside a section that already paid for an atomic read-modify-write.
///
/// This belongs next to `Suspension.swift` in `Internal/`, and MPSC needs it for the same reason; it lives here
/// only because this change may not touch shared files.
struct SanitizerVisibleMutex<Value: ~Copyable>: ~Copyable, Sendable {
    private let mutex: Mutex<Value>
    /// Written at the end and read at the start of every critical section; its value is irrelevant.
    private let handoff = Atomic<UInt32>(0)

    init(_ value: consuming sending Value) {
        self.mutex = Mutex(value)
    }

    /// Runs `body` with exclusive access to the value, exactly like `Mutex.withLock`.
    @inline(__always)
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
