import Dispatch
import Glibc
import SluiceChannels
import Synchronization
import Testing

// Test harness for the channel tests: a seeded PRNG, a task harness that can tell when every task it started is
// suspended, and an element type that counts its own destruction.
//
// Why a harness instead of an introspection property: the MPSC engine exposes no waiter counts, and the tests
// may not edit it. A task that runs on an executor we own is suspended exactly when that executor has no job
// queued or running for it. `ParkingHarness` counts jobs across all its executors in one atomic, so "the count is
// zero" is a consistent snapshot: every task it started is parked on a continuation (or done), and nothing but
// an outside event can wake any of them. The count goes up inside `enqueue`, which a `resume` calls
// synchronously, so a task woken by a test action is never missed.

/// A lock for the test harness that ThreadSanitizer can see.
///
/// `Synchronization.Mutex` on Linux takes a contended lock inside the kernel (`FUTEX_LOCK_PI`, called from the
/// uninstrumented `_lockSlow`), so TSan sees no happens-before edge and reports every contended critical section
/// as a race. A lock built from `Atomic` compare-exchange (acquiring) and store (releasing), which are inlined
/// into this instrumented module, is visible to TSan. Critical sections here are a few instructions.
///
/// `@unchecked Sendable` because `value` is guarded by `locked`, which the compiler cannot check.
final class HarnessLock<Value: Sendable>: @unchecked Sendable {
    private let locked = Atomic<Bool>(false)
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        var spins = 0
        while !self.locked.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            spins += 1
            if spins % 64 == 0 { sched_yield() }  // the holder may be preempted on a busy 2-core machine
        }
        defer { self.locked.store(false, ordering: .releasing) }
        return try body(&self.value)
    }
}

/// SplitMix64Generator: a tiny deterministic PRNG, so that every randomized test replays from its seed.
struct SplitMix64Generator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { self.state = seed }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<bound`.
    mutating func below(_ bound: Int) -> Int { Int.random(in: 0..<bound, using: &self) }

    /// True with probability `percent`/100.
    mutating func chance(_ percent: Int) -> Bool { self.below(100) < percent }
}

/// A serial executor on its own dispatch queue that reports every job it runs to a shared counter.
final class HarnessExecutor: TaskExecutor {
    private let queue: DispatchQueue
    private let pending: HarnessJobCounter

    init(label: String, pending: HarnessJobCounter) {
        self.queue = DispatchQueue(label: label)
        self.pending = pending
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.pending.value.add(1, ordering: .sequentiallyConsistent)
        self.queue.async {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
            self.pending.value.subtract(1, ordering: .sequentiallyConsistent)
        }
    }
}

/// Jobs queued or running on a harness's executors.
final class HarnessJobCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// A task started by a ``ParkingHarness``.
struct HarnessTask<Success: Sendable>: Sendable {
    let task: Task<Success, any Error>
    fileprivate let finished: HarnessFlag

    /// True once the body has returned or thrown. Exact after ``ParkingHarness/quiesce(_:)``.
    var isFinished: Bool { self.finished.value.load(ordering: .sequentiallyConsistent) }

    func cancel() { self.task.cancel() }

    /// Waits for the task; call only when it is known to finish.
    var result: Result<Success, any Error> {
        get async { await self.task.result }
    }
}

/// A flag one task sets and another reads.
final class HarnessFlag: Sendable {
    let value = Atomic<Bool>(false)

    var isSet: Bool { self.value.load(ordering: .sequentiallyConsistent) }

    func set() { self.value.store(true, ordering: .sequentiallyConsistent) }
}

/// Starts tasks on executors it owns, so a test can wait until all of them are suspended.
final class ParkingHarness: Sendable {
    private let pending = HarnessJobCounter()
    private let executors: [HarnessExecutor]
    private let nextExecutor = Atomic<Int>(0)
    private let cancellers = HarnessLock<[@Sendable () -> Void]>([])

    /// `threads` serial queues; with 1, the schedule is a deterministic function of the test's own actions.
    init(threads: Int = 1) {
        let pending = self.pending
        self.executors = (0..<threads).map { HarnessExecutor(label: "harness-\($0)", pending: pending) }
    }

    /// Starts `body` on one of the harness's executors (round-robin).
    @discardableResult
    func spawn<Success: Sendable>(_ body: @escaping @Sendable () async throws -> Success) -> HarnessTask<Success> {
        let index = self.nextExecutor.add(1, ordering: .relaxed).oldValue % self.executors.count
        let flag = HarnessFlag()
        let task = Task(executorPreference: self.executors[index]) { () async throws -> Success in
            defer { flag.value.store(true, ordering: .sequentiallyConsistent) }
            return try await body()
        }
        self.cancellers.withLock { $0.append({ task.cancel() }) }
        return HarnessTask(task: task, finished: flag)
    }

    /// True when no job is queued or running: every task started here is suspended or finished.
    var isQuiescent: Bool { self.pending.value.load(ordering: .sequentiallyConsistent) == 0 }

    /// Waits (bounded, with `Task.yield`) until every task started here is suspended or finished.
    @discardableResult
    func quiesce(_ sourceLocation: SourceLocation = #_sourceLocation) async -> Bool {
        for _ in 0..<5_000_000 {
            if self.isQuiescent { return true }
            await Task.yield()
        }
        Issue.record("harness tasks never went quiet", sourceLocation: sourceLocation)
        return false
    }

    /// Cancels every task started here (used to unwind after a detected deadlock).
    func cancelAll() {
        for cancel in self.cancellers.withLock({ $0 }) { cancel() }
    }
}

/// Counts creations and destructions of ``DeinitTracked`` values, per id.
final class DeinitCounter: Sendable {
    private let destroyedIDs = HarnessLock<[Int: Int]>([:])
    private let created = Atomic<Int>(0)

    var createdCount: Int { self.created.load(ordering: .sequentiallyConsistent) }
    var destroyed: Int { self.destroyedIDs.withLock { $0.values.reduce(0, +) } }

    /// Ids destroyed more than once.
    var destroyedTwice: [Int] { self.destroyedIDs.withLock { $0.filter { $0.value > 1 }.map(\.key).sorted() } }

    func destroyCount(of id: Int) -> Int { self.destroyedIDs.withLock { $0[id, default: 0] } }

    fileprivate func recordCreated() { self.created.add(1, ordering: .sequentiallyConsistent) }

    fileprivate func recordDestroyed(_ id: Int) { self.destroyedIDs.withLock { $0[id, default: 0] += 1 } }
}

/// A value whose `deinit` is counted, to prove containers destroy each element exactly once.
final class DeinitTracked: Sendable {
    let id: Int
    private let counter: DeinitCounter

    init(_ id: Int, _ counter: DeinitCounter) {
        self.id = id
        self.counter = counter
        counter.recordCreated()
    }

    deinit { self.counter.recordDestroyed(self.id) }
}

/// A one-shot latch a harness task can wait on while the test looks at the channel (a waiting task is parked,
/// so the harness sees it as quiet).
final class HarnessGate: Sendable {
    private let state = HarnessLock<(isOpen: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let openAlready = self.state.withLock { state in
                if !state.isOpen { state.waiters.append(continuation) }
                return state.isOpen
            }
            if openAlready { continuation.resume() }
        }
    }

    func open() {
        let waiters = self.state.withLock { state in
            state.isOpen = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

// MARK: - Assertions on harness tasks

/// Expects the task to be parked (not finished) now that the harness is quiet.
func expectSuspended<T>(
    _ probe: HarnessTask<T>,
    _ comment: Comment? = nil,
    _ sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(!probe.isFinished, comment ?? "expected the task to be suspended", sourceLocation: sourceLocation)
}

/// Expects the task to have finished with a value, and returns it. Never waits on a task that has not finished.
@discardableResult
func expectValue<T>(
    _ probe: HarnessTask<T>,
    _ sourceLocation: SourceLocation = #_sourceLocation
) async -> T? {
    guard probe.isFinished else {
        Issue.record("expected the task to have finished", sourceLocation: sourceLocation)
        return nil
    }
    switch await probe.result {
    case .success(let value): return value
    case .failure(let error):
        Issue.record("expected a value, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Expects the task to have finished by throwing an error of type `E`, and returns it.
@discardableResult
func expectError<T, E: Error>(
    _ probe: HarnessTask<T>,
    _ type: E.Type,
    _ sourceLocation: SourceLocation = #_sourceLocation
) async -> E? {
    guard probe.isFinished else {
        Issue.record("expected the task to have finished with \(E.self)", sourceLocation: sourceLocation)
        return nil
    }
    switch await probe.result {
    case .success(let value):
        Issue.record("expected \(E.self), got the value \(value)", sourceLocation: sourceLocation)
        return nil
    case .failure(let error):
        guard let typed = error as? E else {
            Issue.record("expected \(E.self), got \(error)", sourceLocation: sourceLocation)
            return nil
        }
        return typed
    }
}

// MARK: - Channel helpers

/// "sent", "full(v)" or "closed(v)".
func describe<Value>(_ result: Result<Void, TrySendError<Value>>) -> String {
    switch result {
    case .success: "sent"
    case .failure(.full(let value)): "full(\(value))"
    case .failure(.closed(let value)): "closed(\(value))"
    }
}

/// Everything left in a channel that must have ended, read without waiting. Records an issue if the channel
/// turns out empty but not ended (a `recv` would wait forever).
func drainToEnd<Element>(
    _ receiver: MPSC<Element>.Receiver,
    _ sourceLocation: SourceLocation = #_sourceLocation
) -> [Element] {
    var values: [Element] = []
    while true {
        do throws(MPSC<Element>.TryRecvError) {
            values.append(try receiver.tryRecv())
        } catch .disconnected {
            return values
        } catch {
            Issue.record("the channel is empty but has not ended", sourceLocation: sourceLocation)
            return values
        }
    }
}
