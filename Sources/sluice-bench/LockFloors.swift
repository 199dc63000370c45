import Glibc
import Synchronization

/// `sluice-bench locks`: how fast can two threads pass values through a bounded ring at all, under each kind of
/// synchronization? No tasks, no channels: a producer thread and a consumer thread, `count` values, ring of 1024.
///
/// This is the floor under every cross-thread channel figure: if a lock-protected ring cannot beat N values/s
/// between the two cores of this machine, no channel built on that lock can either. Rows: the toolchain's
/// `Mutex` (what `Locked` wraps), a test-and-test-and-set spinlock on an atomic, and a lock-free
/// single-producer/single-consumer ring (head and tail on separate cache lines, each side caching the other's
/// index), each with the consumer taking one value or up to 64 per round.
struct LockFloors {
    let count: Int

    func run() {
        print("sluice-bench locks: \(self.count) values, producer thread → consumer thread, ring of \(ringSize)\n")
        print("| ring | consumer takes | values/s |\n|---|---:|---:|")
        for batch in [1, 64] {
            let ring = MutexRing()
            self.measure("Mutex", batch: batch, push: ring.push, pop: ring.pop)
        }
        for batch in [1, 64] {
            let ring = SpinRing()
            self.measure("spinlock (TTAS)", batch: batch, push: ring.push, pop: ring.pop)
        }
        for batch in [1, 64] {
            let ring = LockFreeRing()
            self.measure("lock-free SPSC", batch: batch, push: ring.push, pop: ring.pop)
        }
    }

    private func measure(
        _ name: String,
        batch: Int,
        push: @escaping @Sendable (Int) -> Bool,
        pop: (Int, (Int) -> Void) -> Int
    ) {
        let n = self.count
        let clock = ContinuousClock()
        let start = clock.now
        let producer = ProducerThread(count: n, push: push)
        var received = 0
        var sum = 0
        while received < n { received += pop(batch) { sum &+= $0 } }
        producer.join()
        let seconds = (clock.now - start).seconds
        let verdict = sum == expectedSum(n) ? "" : " (WRONG SUM)"
        print("| \(name) | \(batch) | \(formatRate(Double(n) / seconds))\(verdict) |")
    }
}

private let ringSize = 1024

/// Runs `push(0..<count)` on a thread of its own, retrying each value until the ring takes it.
private final class ProducerThread: @unchecked Sendable {
    // @unchecked: `thread` is written once before `join` reads it, on the same (creating) thread.
    private let count: Int
    private let push: @Sendable (Int) -> Bool
    private var thread = pthread_t()

    init(count: Int, push: @escaping @Sendable (Int) -> Bool) {
        self.count = count
        self.push = push
        let me = Unmanaged.passRetained(self).toOpaque()
        pthread_create(
            &self.thread,
            nil,
            { argument in
                let me = Unmanaged<ProducerThread>.fromOpaque(argument!).takeRetainedValue()
                for value in 0..<me.count {
                    while !me.push(value) {}
                }
                return nil
            },
            me
        )
    }

    func join() { pthread_join(self.thread, nil) }
}

private final class MutexRing: Sendable {
    struct Ring {
        var slots = [Int](repeating: 0, count: ringSize)
        var head = 0
        var count = 0
    }
    let state = Mutex(Ring())

    @Sendable func push(_ value: Int) -> Bool {
        self.state.withLock { ring in
            guard ring.count < ringSize else { return false }
            ring.slots[(ring.head + ring.count) & (ringSize - 1)] = value
            ring.count += 1
            return true
        }
    }

    func pop(_ limit: Int, _ body: (Int) -> Void) -> Int {
        self.state.withLock { ring in
            let n = min(limit, ring.count)
            for offset in 0..<n { body(ring.slots[(ring.head + offset) & (ringSize - 1)]) }
            ring.head = (ring.head + n) & (ringSize - 1)
            ring.count -= n
            return n
        }
    }
}

private final class SpinRing: @unchecked Sendable {
    // @unchecked: `slots`, `head` and `count` are touched only while `word` is held.
    private let word = Atomic<Bool>(false)
    private var slots = [Int](repeating: 0, count: ringSize)
    private var head = 0
    private var count = 0

    private func lock() {
        while true {
            if !self.word.load(ordering: .relaxed),
                self.word.compareExchange(
                    expected: false,
                    desired: true,
                    successOrdering: .acquiring,
                    failureOrdering: .relaxed
                ).exchanged
            {
                return
            }
            var spins = 0
            while spins < 32 && self.word.load(ordering: .relaxed) { spins += 1 }
        }
    }

    private func unlock() { self.word.store(false, ordering: .releasing) }

    @Sendable func push(_ value: Int) -> Bool {
        self.lock()
        defer { self.unlock() }
        guard self.count < ringSize else { return false }
        self.slots[(self.head + self.count) & (ringSize - 1)] = value
        self.count += 1
        return true
    }

    func pop(_ limit: Int, _ body: (Int) -> Void) -> Int {
        self.lock()
        defer { self.unlock() }
        let n = min(limit, self.count)
        for offset in 0..<n { body(self.slots[(self.head + offset) & (ringSize - 1)]) }
        self.head = (self.head + n) & (ringSize - 1)
        self.count -= n
        return n
    }
}

private final class LockFreeRing: @unchecked Sendable {
    // @unchecked: `slots[i]` is written by the producer before it publishes `tail` past i (release) and read by
    // the consumer after it observes that `tail` (acquire); `cachedHead` is the producer's alone and
    // `cachedTail` the consumer's alone.
    private let slots = UnsafeMutablePointer<Int>.allocate(capacity: ringSize)
    private let head = Atomic<Int>(0)
    private let padding = (0, 0, 0, 0, 0, 0, 0, 0)  // keep `tail` off `head`'s cache line
    private let tail = Atomic<Int>(0)
    private var cachedHead = 0
    private var cachedTail = 0

    deinit { self.slots.deallocate() }

    @Sendable func push(_ value: Int) -> Bool {
        let tail = self.tail.load(ordering: .relaxed)
        if tail - self.cachedHead == ringSize {
            self.cachedHead = self.head.load(ordering: .acquiring)
            if tail - self.cachedHead == ringSize { return false }
        }
        self.slots[tail & (ringSize - 1)] = value
        self.tail.store(tail + 1, ordering: .releasing)
        return true
    }

    func pop(_ limit: Int, _ body: (Int) -> Void) -> Int {
        let head = self.head.load(ordering: .relaxed)
        if self.cachedTail == head {
            self.cachedTail = self.tail.load(ordering: .acquiring)
            if self.cachedTail == head { return 0 }
        }
        let n = min(limit, self.cachedTail - head)
        for offset in 0..<n { body(self.slots[(head + offset) & (ringSize - 1)]) }
        self.head.store(head + n, ordering: .releasing)
        return n
    }
}
