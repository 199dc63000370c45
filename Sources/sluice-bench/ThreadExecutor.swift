import Dispatch
import Glibc
import Synchronization

/// A `TaskExecutor` that runs every job on one dedicated thread, like an event loop without I/O.
///
/// Benchmarks use it to measure channel hand-offs between tasks that share a thread (no futex wake-up per
/// hand-off), next to the same workload on the global concurrent executor.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `queue` is guarded by `lock`; `local` is touched only on the executor's own thread.
    private let lock = Mutex<[UnownedJob]>([])
    private let wakeup = DispatchSemaphore(value: 0)
    private var local: [UnownedJob] = []
    /// Set once by `init`, before the thread can have run a job; read by `enqueue` to spot same-thread enqueues.
    private var thread: pthread_t? = nil
    private let sleeping = Atomic<Bool>(false)

    init() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var t = pthread_t()
        pthread_create(
            &t,
            nil,
            { arg in
                let executor = Unmanaged<ThreadExecutor>.fromOpaque(arg!).takeRetainedValue()
                executor.run()
                return nil
            },
            box
        )
        self.thread = t  // written before any job can be enqueued: init returns only after this
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if let thread = self.thread, pthread_equal(pthread_self(), thread) != 0 {
            self.local.append(job)
            return
        }
        self.lock.withLock { $0.append(job) }
        if self.sleeping.load(ordering: .acquiring) { self.wakeup.signal() }
    }

    private func run() {
        var batch: [UnownedJob] = []
        while true {
            while !self.local.isEmpty {
                swap(&batch, &self.local)
                for job in batch { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
                batch.removeAll(keepingCapacity: true)
            }
            let remote = self.lock.withLock { q -> [UnownedJob] in
                let r = q; q.removeAll(); return r
            }
            if !remote.isEmpty { self.local.append(contentsOf: remote); continue }
            self.sleeping.store(true, ordering: .sequentiallyConsistent)
            let again = self.lock.withLock { !$0.isEmpty }
            if !again { self.wakeup.wait() }
            self.sleeping.store(false, ordering: .sequentiallyConsistent)
        }
    }
}
