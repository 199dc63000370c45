import CSluiceLinux
import Glibc
import SluiceChannels
import Synchronization

/// One event-loop thread: an edge-triggered epoll instance, and the `TaskExecutor` that runs the tasks of the
/// connections it owns, on that same thread.
///
/// Running a connection's tasks on the thread that polls its socket means a readiness event resumes the waiting
/// task without a thread hop: the loop resumes the continuation, the task's next job lands in this loop's own
/// queue, and the loop runs it before polling again. Work enqueued from other threads goes into a locked queue,
/// and an `eventfd` wakes the loop if it is asleep in `epoll_wait`.
///
/// Start tasks on a loop with `Task(executorPreference: loop) { … }`.
public final class EventLoop: TaskExecutor, @unchecked Sendable {
    // @unchecked: `local`, `tick` and `ready` are touched only on the loop thread; everything shared with other
    // threads is a `Mutex` or an `Atomic`. This is the one unchecked escape in SluiceIO.

    /// The epoll instance; owned by this loop, closed when the loop thread exits.
    let epoll: Int32
    /// An eventfd registered for readability: a write from any thread wakes `epoll_wait`.
    private let wakeup: Int32
    /// Jobs enqueued from other threads, moved into `local` by the loop.
    private let remote = Locked<[UnownedJob]>([])
    /// Set (after the append) by every remote enqueue, cleared by the loop before it drains `remote`: the loop
    /// takes that lock only when there is something to take. A job appended after a drain sets the flag again,
    /// so none is stranded; a flag set for a job already drained costs one empty look.
    private let remotePending = Atomic<Bool>(false)
    /// Jobs enqueued on the loop thread itself; touched only there.
    private var local: [UnownedJob] = []
    /// True while the loop is (about to be) blocked in `epoll_wait`: enqueuers must then write the eventfd.
    private let sleeping = Atomic<Bool>(false)
    /// Set when a wake-up write is already in flight, so a burst of enqueues writes the eventfd once.
    private let wakeupPending = Atomic<Bool>(false)
    /// Set by `shutdown()`; the loop exits after running what is queued.
    private let stopping = Atomic<Bool>(false)
    /// Incremented once per `epoll_wait` return; stamped on the readiness it reports (see `Registration`).
    private var tick: UInt64 = 0
    /// The registrations of one `epoll_wait` batch, looked up under the slot lock and notified after it; kept
    /// between polls so that a poll allocates nothing.
    private var ready: [(Registration, events: UInt32)] = []
    /// Registered sockets by slot; epoll user data is `slot | generation << 32`.
    private let slots = Locked(SlotTable())
    /// The loop's name, for thread names and logs.
    public let name: String
    /// How long, in nanoseconds, the loop polls without blocking once it runs out of work, before it sleeps in
    /// `epoll_wait`; 0 sleeps at once. See ``spinFoundWork(_:)``.
    private let spinLimit: UInt64
    /// A gap between two looks of a spin longer than this means the core went to someone else: stop spinning.
    private let preemptedAfter: UInt64
    /// When the loop last ran out of work (with a spin only). Touched only on the loop thread.
    private var idleFrom: UInt64 = 0
    /// When the next spin may run. Touched only on the loop thread.
    private var spinBackoff = SpinBackoff()
    /// Spins that found work, and spins that ran out or were cut short (``spins``: tests, and the broker's STATS).
    private let spinCounts = Atomic<UInt64>(0)
    private let spinMisses = Atomic<UInt64>(0)
    /// The loop's thread; set by `init` before any job can run.
    private(set) var thread = pthread_t()

    /// Creates the loop and starts its thread. With a `spin` above zero, a loop that runs out of work polls its
    /// sockets without blocking for up to that long before it sleeps (see ``spinFoundWork(_:)``).
    public convenience init(name: String, spin: Duration = .zero) throws(IOError) {
        try self.init(name: name, spin: spin, preemptedAfter: .microseconds(200))
    }

    /// `preemptedAfter`: see ``preemptedAfter``; tests on a loaded machine set it high.
    init(name: String, spin: Duration, preemptedAfter: Duration) throws(IOError) {
        self.name = name
        self.spinLimit = spin.nanoseconds
        self.preemptedAfter = preemptedAfter.nanoseconds
        self.epoll = try checked("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        self.wakeup = try checked("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLET.rawValue
        event.data.u64 = UInt64.max  // the wake-up fd's marker
        _ = try checked("epoll_ctl(ADD wakeup)") { epoll_ctl(self.epoll, EPOLL_CTL_ADD, self.wakeup, &event) }
        let me = Unmanaged.passRetained(self).toOpaque()
        let created = pthread_create(
            &self.thread,
            nil,
            { argument in
                let loop = Unmanaged<EventLoop>.fromOpaque(argument!).takeRetainedValue()
                loop.run()
                return nil
            },
            me
        )
        precondition(created == 0, "pthread_create failed for event loop \(name): \(created)")
        // Nobody joins a loop: `shutdown()` ends it and its thread frees itself.
        pthread_detach(self.thread)
    }

    deinit {
        close(self.epoll)
        close(self.wakeup)
    }

    // MARK: - TaskExecutor

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if self.isCurrent {
            self.local.append(job)
            return
        }
        self.remote.withLock { $0.append(job) }
        // Flag after the append, then look at `sleeping`: sequentially consistent, like the loop's store of
        // `sleeping` before its look at this flag, so one of the two sees the other (see `run()`).
        self.remotePending.store(true, ordering: .sequentiallyConsistent)
        self.wakeUpIfSleeping()
    }

    /// True on this loop's own thread.
    public var isCurrent: Bool {
        pthread_getspecific(currentLoopKey) == Unmanaged.passUnretained(self).toOpaque()
    }

    private func wakeUpIfSleeping() {
        guard self.sleeping.load(ordering: .sequentiallyConsistent) else { return }
        guard !self.wakeupPending.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var one: UInt64 = 1
        _ = try? syscall("write(eventfd)") { write(self.wakeup, &one, 8) }
    }

    /// Stops the loop after the jobs already queued; its thread then exits and closes the epoll instance.
    public func shutdown() {
        // Store, then look: the loop announces sleep, then looks at `stopping`; one of us sees the other.
        self.stopping.store(true, ordering: .sequentiallyConsistent)
        self.wakeUpIfSleeping()
    }

    // MARK: - Registrations

    /// Registers a descriptor the caller has just opened; if that fails, closes it, so it is never leaked.
    func register(adopting fd: Int32) throws(IOError) -> (Registration, token: UInt64) {
        do {
            return try self.register(fd)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Registers `fd` for edge-triggered read and write readiness.
    func register(_ fd: Int32) throws(IOError) -> (Registration, token: UInt64) {
        let registration = Registration()
        let token = self.slots.withLock { $0.insert(registration) }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        event.data.u64 = token
        do {
            _ = try checked("epoll_ctl(ADD)") { epoll_ctl(self.epoll, EPOLL_CTL_ADD, fd, &event) }
        } catch {
            _ = self.slots.withLock { $0.remove(token) }
            throw error
        }
        return (registration, token)
    }

    /// Forgets `fd`: later events carrying `token` are dropped (its slot's generation moves on), and waiters end.
    func deregister(_ fd: Int32, token: UInt64) {
        var event = epoll_event()
        _ = try? syscall("epoll_ctl(DEL)") { epoll_ctl(self.epoll, EPOLL_CTL_DEL, fd, &event) }
        self.slots.withLock { $0.remove(token) }?.close()
    }

    // MARK: - The loop

    private func run() {
        pthread_setspecific(currentLoopKey, Unmanaged.passUnretained(self).toOpaque())
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        var batch: [UnownedJob] = []
        let executor = self.asUnownedTaskExecutor()
        while true {
            // Run the jobs that are ready now, once each. What they enqueue runs in the next round, after a look at
            // the remote queue and the sockets: tasks that keep each other busy (a reader whose socket always has
            // data, a producer and a consumer ping-ponging) cannot starve other connections' I/O.
            if !self.local.isEmpty {
                swap(&batch, &self.local)
                for job in batch { job.runSynchronously(on: executor) }
                batch.removeAll(keepingCapacity: true)
            }
            if self.remotePending.exchange(false, ordering: .sequentiallyConsistent) {
                self.remote.withLock { remote in
                    self.local.append(contentsOf: remote)
                    remote.removeAll(keepingCapacity: true)
                }
            }
            if !self.local.isEmpty {
                self.poll(&events, timeout: 0)  // jobs are waiting: look at sockets without blocking
                continue
            }
            if self.stopping.load(ordering: .sequentiallyConsistent) { break }
            if self.spinLimit > 0 {
                self.idleFrom = Monotonic.now
                if self.spinFoundWork(&events) { continue }
            }
            // Nothing to run: announce sleep, look for remote work once more (an enqueuer that saw `sleeping`
            // false set `remotePending` before its look, so we see its flag now), then block.
            self.sleeping.store(true, ordering: .sequentiallyConsistent)
            let queued = self.remotePending.load(ordering: .sequentiallyConsistent)
            if !queued && !self.stopping.load(ordering: .sequentiallyConsistent) {
                self.poll(&events, timeout: -1)
            }
            self.sleeping.store(false, ordering: .sequentiallyConsistent)
        }
        // The epoll and wake-up descriptors stay open until the loop object goes (`deinit`): streams and listeners
        // hold the loop and deregister from it when they close, which may be after the loop stopped.
    }

    /// Spins that found work, and spins that found none in time or were cut short.
    public var spins: (found: UInt64, missed: UInt64) {
        (self.spinCounts.load(ordering: .relaxed), self.spinMisses.load(ordering: .relaxed))
    }

    /// The loop ran out of work: polls the sockets and the remote queue without blocking, yielding the core between
    /// looks, for up to ``spinLimit``. True when work came.
    ///
    /// Waking a thread that sleeps in `epoll_wait` costs the waker a wake-up and the sleeper a switch back in, and on
    /// a virtual machine an idle vCPU halts, so its wake-up is an interrupt through the hypervisor: tens of
    /// microseconds, most of a loopback round trip. A loop whose next event is microseconds away (a request/reply
    /// pair) saves all of that by looking again instead of sleeping.
    ///
    /// Spinning must not take the core from anyone: `sched_yield` between looks lets any runnable thread on this
    /// core go first, and a look that comes back more than ``preemptedAfter`` (200 µs) after the last (something else
    /// ran meanwhile, a busy neighbour or a descheduled vCPU) ends the spin. A spin that finds nothing makes the next
    /// ones skip, so a quiet or sparse loop almost never spins, and a loop busy most of the time does not spin at all
    /// (``SpinBackoff``).
    private func spinFoundWork(_ events: inout [epoll_event]) -> Bool {
        let start = self.idleFrom
        guard self.spinBackoff.maySpin(at: start) else { return false }
        var last = start
        while true {
            var found = self.poll(&events, timeout: 0, endsWait: true) > 0  // the wait's end is taken in there
            if !found && (self.remotePending.load(ordering: .relaxed) || self.stopping.load(ordering: .relaxed)) {
                self.spinBackoff.waited(from: start, to: Monotonic.now)
                found = true
            }
            if found {
                self.spinBackoff.found()
                self.spinCounts.wrappingAdd(1, ordering: .relaxed)
                return true
            }
            sched_yield()
            let now = Monotonic.now
            if now - last > self.preemptedAfter || now - start > self.spinLimit {
                self.spinBackoff.missed()
                self.spinMisses.wrappingAdd(1, ordering: .relaxed)
                return false
            }
            last = now
        }
    }

    /// One `epoll_wait`; marks readiness on registrations, which resume waiting tasks onto the job queues. Returns the
    /// number of events.
    ///
    /// `endsWait`: this poll is the end of a wait (a spin's look, or the sleep), so its events end the wait for
    /// ``SpinBackoff`` before they are handled (a parked reader's bytes are read and routed right here, which is
    /// work, not waiting).
    @discardableResult
    private func poll(_ events: inout [epoll_event], timeout: Int32, endsWait: Bool = false) -> Int {
        let count = events.withUnsafeMutableBufferPointer { buffer in
            (try? checked("epoll_wait") { epoll_wait(self.epoll, buffer.baseAddress, Int32(buffer.count), timeout) })
                ?? 0
        }
        guard count > 0 else { return 0 }
        if self.spinLimit > 0 && (endsWait || timeout != 0) {
            self.spinBackoff.waited(from: self.idleFrom, to: Monotonic.now)
        }
        // Awake: work enqueued from other threads while the events below are handled (a reader's bytes may be read
        // right here, see `Registration.whenReady`) is found by the next round without an eventfd write.
        if timeout != 0 { self.sleeping.store(false, ordering: .sequentiallyConsistent) }
        self.tick &+= 1
        // Look every registration up under one lock; stale tokens (closed, slot reused) find nothing. The array
        // holds them (strongly) past a concurrent close until they are notified.
        var ready = self.ready
        self.ready = []
        self.slots.withLock { slots in
            for event in events[0..<Int(count)] {
                let token = event.data.u64
                if token == UInt64.max {
                    var value: UInt64 = 0
                    _ = read(self.wakeup, &value, 8)
                    self.wakeupPending.store(false, ordering: .releasing)
                    continue
                }
                guard let registration = slots.lookup(token) else { continue }
                ready.append((registration, event.events))
            }
        }
        for (registration, bits) in ready {
            let failed = bits & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
            let readHangup = failed || bits & EPOLLRDHUP.rawValue != 0
            registration.eventsArrived(
                readable: readHangup || bits & EPOLLIN.rawValue != 0,
                writable: failed || bits & EPOLLOUT.rawValue != 0,
                readFinal: readHangup,
                writeFinal: failed,
                tick: self.tick
            )
        }
        ready.removeAll(keepingCapacity: true)
        self.ready = ready
        if Int(count) == events.count { events.append(contentsOf: repeatElement(epoll_event(), count: events.count)) }
        return Int(count)
    }
}

extension Duration {
    /// Whole nanoseconds, 0 for a negative duration.
    fileprivate var nanoseconds: UInt64 {
        let (seconds, attoseconds) = self.components
        return UInt64(max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
    }
}

/// When an event loop may spin before it sleeps: after spins that found nothing, the next 0, 1, 2, 4… up to
/// ``maxSkip`` chances to spin are skipped (the loop sleeps at once), and a spin that finds work ends the penalty;
/// a loop busy more than ``maxBusy`` of its time does not spin at all.
struct SpinBackoff {
    /// The most chances one run of misses makes the loop skip.
    static let maxSkip = 64
    /// Chances left to skip, and how many the next miss skips.
    private(set) var skip = 0
    private var penalty = 0
    /// The share of its time the loop spent working rather than waiting (spinning or asleep), in 1/1024ths, as a
    /// moving average over the last rounds of work and wait; and when the last wait ended, and how long it was.
    private(set) var busy: UInt64 = 0
    private var waitEnded: UInt64 = 0
    private var lastWait: UInt64 = 0
    /// Above this share of busy time (55%) the loop does not spin: see ``maySpin(at:)``. Measured during
    /// `sluice-bench peers`: 39–42% for a request/reply pair's loops, 65–69% for a fan-out publisher's.
    static let maxBusy: UInt64 = 563

    /// Whether the chance at `now` (the loop just ran out of work) may spin. A skipped chance counts down.
    ///
    /// A loop that is busy most of the time (a publisher's loop under a stream of messages) does not spin either:
    /// its waits are short anyway, and the core it would keep spinning is the one that its clients' threads, with
    /// work to do, could use (a spinning core is not idle, so the scheduler places nobody there).
    mutating func maySpin(at now: UInt64) -> Bool {
        let work = now &- self.waitEnded
        let share = work * 1024 / max(1, work + self.lastWait)
        self.busy = (self.busy * 7 + min(share, 1024)) / 8
        guard self.skip == 0 else {
            self.skip -= 1
            return false
        }
        return self.busy <= Self.maxBusy
    }

    /// The loop waited (spun or slept) from `start` to `end`, and works again.
    mutating func waited(from start: UInt64, to end: UInt64) {
        self.lastWait = end &- start
        self.waitEnded = end
    }

    /// The spin found work.
    mutating func found() { self.penalty = 0 }

    /// The spin found nothing, or was cut short: skip the next chances, twice as many as after the last miss (none
    /// after a first miss: one late event in a steady stream, a round trip that took longer, costs nothing).
    mutating func missed() {
        self.skip = self.penalty
        self.penalty = min(max(1, self.penalty * 2), Self.maxSkip)
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (a vDSO call, no syscall).
public enum Monotonic {
    @inline(__always)
    public static var now: UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

/// Which loop, if any, owns the current thread.
private let currentLoopKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, nil)
    return key
}()

/// Registrations by slot, with a generation per slot so that a token from a closed registration never finds the
/// registration that reused its slot.
struct SlotTable {
    private var entries: [(generation: UInt32, registration: Registration?)] = []
    private var free: [Int] = []

    mutating func insert(_ registration: Registration) -> UInt64 {
        let slot: Int
        if let reused = self.free.popLast() {
            slot = reused
        } else {
            slot = self.entries.count
            self.entries.append((0, nil))
        }
        self.entries[slot].generation &+= 1
        self.entries[slot].registration = registration
        return UInt64(slot) | UInt64(self.entries[slot].generation) << 32
    }

    func lookup(_ token: UInt64) -> Registration? {
        let slot = Int(token & 0xFFFF_FFFF)
        guard slot < self.entries.count, self.entries[slot].generation == UInt32(token >> 32) else { return nil }
        return self.entries[slot].registration
    }

    mutating func remove(_ token: UInt64) -> Registration? {
        let slot = Int(token & 0xFFFF_FFFF)
        guard slot < self.entries.count, self.entries[slot].generation == UInt32(token >> 32),
            let registration = self.entries[slot].registration
        else { return nil }
        self.entries[slot].registration = nil
        self.entries[slot].generation &+= 1  // events already in flight for this token are now stale
        self.free.append(slot)
        return registration
    }
}
