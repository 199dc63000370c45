public import Synchronization

extension MPSC {
    /// Lets a receiver that found the ring empty poll it for a while before it parks.
    ///
    /// Why: parking costs a thread wake-up, paid by the *producer* on its critical path (a futex wake through the
    /// global executor, about 10 µs here). With the lock-free lane a consumer drains faster than one producer
    /// fills, so it keeps finding the ring empty; measured with `perf stat` on `sluice-bench channels` 1→1, a short
    /// spin (the former `ArrivalSignal`'s ~2 µs) lost the race against the producer's own wake-up work, and the pair settled
    /// into one park and one wake per ~18 values (108,000 context switches for 2,000,000 values). Polling the head
    /// slot's sequence number for longer than a wake-up costs lets the consumer catch the next value instead. The
    /// poll reads one cache line that only changes when a producer writes that slot, so it costs the producers
    /// nothing, and they need no "notify" step.
    ///
    /// Spinning is useless when producer and consumer share a thread (the producer cannot run while we spin), as on
    /// an event loop, and wasteful on an idle channel. So it is adaptive: after a few spins
    /// in a row that caught nothing it stops, and then probes again once every `probeInterval` parks. The counter
    /// is relaxed: it only decides whether to spin; what is received is decided by the ring.
    @usableFromInline
    struct Spin: ~Copyable, Sendable {
        /// Polls of the head slot per spin: on the order of 10–30 µs on current x86-64, longer than a wake-up.
        @usableFromInline static var limit: Int { 1 << 14 }
        /// Failed spins in a row after which spinning pauses.
        @usableFromInline static var maximumFailures: Int { 4 }
        /// While paused, one park in this many probes with a spin again.
        @usableFromInline static var probeInterval: Int { 64 }

        /// Consecutive spins that caught nothing; counts past `maximumFailures` while paused.
        @usableFromInline let failures = Atomic<Int>(0)

        @inlinable
        init() {}

        /// Polls `lane` until its head slot has a value or the limit passes. Returns true if a value may be there
        /// (the caller takes it through the ring as usual); false means park now.
        @inlinable
        func wait(on lane: Lane) -> Bool {
            let failures = self.failures.load(ordering: .relaxed)
            if failures >= Self.maximumFailures {
                // Paused: count the park, and probe with a real spin once per interval.
                self.failures.store(failures &+ 1, ordering: .relaxed)
                guard (failures - Self.maximumFailures) % Self.probeInterval == Self.probeInterval - 1 else {
                    return false
                }
            }
            for _ in 0..<Self.limit where lane.mayHaveValue {
                self.failures.store(0, ordering: .relaxed)
                return true
            }
            if failures < Self.maximumFailures { self.failures.store(failures + 1, ordering: .relaxed) }
            return false
        }
    }
}

extension MPSC {
    /// Lets a batch receive (`recv(upTo:)`) that finds a few values ready, fewer than a cache line of them, wait
    /// a moment so that more arrive before it takes them.
    ///
    /// Why: a consumer that keeps up with its producer takes each value right after it is written, so every value
    /// moves the slot's cache line (its sequence number, and the value) from the producer's core to the consumer's and
    /// back: measured with `perf annotate` on `sluice-bench channels` 1→1 `recv(upTo: 64)`, two thirds of the
    /// producer's cycles were the loads and stores of that line. Waiting `time` (well under a microsecond) lets the
    /// producer fill the line undisturbed, and the consumer then takes several values per line moved: the same
    /// benchmark went from about 3.2 M to about 6 M values/s (docs/BENCHMARKS.md).
    ///
    /// A wait costs the consumer `time` and delays the values already ready by as much. It pays only when a producer
    /// writes meanwhile, on another thread; on an event loop that runs producer and consumer (the producer cannot run
    /// while we wait), or on a channel that carries a value now and then, it is wasted. So it is adaptive, like
    /// ``Spin``: after a few waits in a row that brought nothing more it stops, and probes again once per
    /// `probeInterval` receives that would have waited.
    @usableFromInline
    struct Linger: ~Copyable, Sendable {
        /// Values per cache line of sequence numbers: fewer ready than this, and the receive may wait.
        @usableFromInline static var batch: Int { 8 }
        /// How long a receive waits: a few producer writes' worth, far below a wake-up's cost.
        @usableFromInline static var time: Duration { .nanoseconds(400) }
        /// Waits in a row that brought nothing, after which waiting pauses.
        @usableFromInline static var maximumFailures: Int { 4 }
        /// While paused, one receive in this many waits again, to probe.
        @usableFromInline static var probeInterval: Int { 64 }

        /// Consecutive waits that brought nothing; counts past `maximumFailures` while paused.
        @usableFromInline let failures = Atomic<Int>(0)

        @inlinable
        init() {}

        /// Called when fewer than ``batch`` values are ready: waits ``time`` if some are ready (none ready is the
        /// slow path's business) and waiting has paid lately. Returns how many were ready before the wait, or `nil`
        /// if it did not wait.
        @inlinable @inline(never)
        func wait(on lane: Lane) -> Int? {
            // A ring smaller than a batch fills before a batch is ready: wait only for what it can hold.
            let enough = min(Self.batch, lane.ringPermits)
            let ready = lane.readyCount(upTo: enough)
            guard ready > 0 && ready < enough else { return nil }
            let failures = self.failures.load(ordering: .relaxed)
            if failures >= Self.maximumFailures {
                self.failures.store(failures &+ 1, ordering: .relaxed)
                guard (failures - Self.maximumFailures) % Self.probeInterval == Self.probeInterval - 1 else {
                    return nil
                }
            }
            let clock = ContinuousClock()
            let until = clock.now.advanced(by: Self.time)
            while clock.now < until {}
            return ready
        }

        /// After a receive that waited: it took `taken` values, `readyBefore` of which were there before the wait.
        @inlinable
        func record(readyBefore: Int, taken: Int) {
            let failures = self.failures.load(ordering: .relaxed)
            if taken > readyBefore {
                if failures != 0 { self.failures.store(0, ordering: .relaxed) }
            } else if failures < Self.maximumFailures {
                self.failures.store(failures + 1, ordering: .relaxed)
            }
        }
    }
}
