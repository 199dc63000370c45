public import Synchronization

extension MPSC {
    /// The lock-free part of a channel: a ring of slots with per-slot sequence numbers, and one atomic word that
    /// counts the ring's free slots (the permits) and carries the flags that send everybody else to the lock.
    ///
    /// Why: any lock-protected ring moves only 2.4–3.2 M values/s between this VM's two cores, because every
    /// operation moves the lock's cache line (`sluice-bench locks`, docs/BENCHMARKS.md). Here a send that finds a
    /// free slot is one compare-and-swap on `permits`, one add on `tail` and one store of the slot's sequence number;
    /// a receive is one compare-and-swap on `head` and one load of the read-mostly `attention` word. Consumers give
    /// slots back to `permits` in batches (see ``releaseTaken()``), so that the permit word's cache line stays with
    /// the producers. The channel's `Mutex` is taken only when somebody waits, the channel ends, or the ring
    /// overflows. See `docs/decisions/0002-mpsc-fast-lane.md`.
    ///
    /// The ring is Dmitry Vyukov's bounded MPMC queue: slot `i` holds sequence number `pos` when it is free for the
    /// producer that claims position `pos` (`pos & mask == i`), and `pos + 1` once that producer has written it. The
    /// consumer that takes position `pos` sets it to `pos + size`, freeing it for the producer one lap later.
    /// Producers claim positions with a plain add on `tail` because a permit guarantees that the slot is free:
    /// at most `ringPermits <= size` positions are ever claimed and not yet consumed.
    ///
    /// The permit word is `freeSlots << 4 | flags`:
    /// - ``endingBit``: the receiver closed or every sender is gone. Fast paths stop taking permits; whoever frees
    ///   the last slot takes the lock to end waiting receivers.
    /// - ``waitersBit``: senders or reservers wait for a slot (set under the lock together with queueing the first
    ///   one). Fast paths stop taking permits, so nobody overtakes them, and whoever frees a slot takes the lock to
    ///   admit the oldest.
    /// - ``spilledBit``: values wait in the state machine's spill (unbounded channels, and bounded ones larger than
    ///   the ring) and are newer than everything in the ring. Fast sends stop using the ring until the spill is
    ///   moved into it, so that each sender's values stay in order.
    /// - ``goneBit``: the receiver object is gone; a permit's send hands its value back.
    ///
    /// The flags are mirrored in `attention`, with ``receiverWaitingBit``. That word changes only under the channel
    /// lock and rarely, so every core keeps a shared copy of its line: producers read it after each write (is a
    /// receiver parked?), consumers after each take (do senders wait, is the channel ending?).
    ///
    /// `@unchecked Sendable`: the slots are plain memory handed from producer to consumer by their sequence
    /// numbers (release store, acquire load), which the compiler cannot check. Every other field is atomic or
    /// immutable.
    @usableFromInline
    final class Lane: @unchecked Sendable {
        @usableFromInline static var endingBit: Int { 1 }
        @usableFromInline static var waitersBit: Int { 2 }
        @usableFromInline static var spilledBit: Int { 4 }
        @usableFromInline static var goneBit: Int { 8 }
        @usableFromInline static var flagBits: Int { 15 }
        /// In `attention` only: a receiver is parked, or about to park (see ``attention``).
        @usableFromInline static var receiverWaitingBit: Int { 16 }
        /// One free slot in the permit word.
        @usableFromInline static var one: Int { 16 }
        /// The most slots a ring gets: the capacity of a bounded channel up to this, else this. The rest of a larger
        /// bounded channel (and the backlog of an unbounded one) waits in the spill, under the lock.
        @usableFromInline static var ringLimit: Int { 1024 }
        /// Bytes between the hot atomics, so that the producers' `tail`, the consumer's `head` and the shared
        /// `permits` never share a cache line (128: adjacent-line prefetch pairs 64-byte lines on x86-64).
        @usableFromInline static var lineStride: Int { 128 }

        /// Permits in total: the slots of the ring that values may use (`<= size`).
        @usableFromInline let ringPermits: Int
        /// `size - 1`, where `size` is the ring's length, a power of two `>= max(ringPermits, 2)`.
        @usableFromInline let mask: Int
        /// Four cache lines: the permit word; `head` and `released`; `tail`; `attention`.
        @usableFromInline let words: UnsafeMutableRawPointer
        /// One sequence number per slot (see above).
        @usableFromInline let sequences: UnsafeMutablePointer<Atomic<Int>>
        /// The slots' values; slot `i` is initialized exactly while its sequence number is `pos + 1`.
        @usableFromInline let values: UnsafeMutablePointer<Element>
        /// Taken slots a consumer gives back at once on its fast path.
        @usableFromInline let releaseBatch: Int

        @inlinable
        init(ringPermits: Int) {
            precondition(ringPermits >= 1 && ringPermits <= Self.ringLimit, "MPSC ring of \(ringPermits) slots")
            // At least two slots: with one, "written at `pos`" (`pos + 1`) and "free for `pos + 1`" (`pos + size`)
            // would be the same number, and a producer whose permit was given back between a consumer's advance of
            // `head` and its sequence store would overwrite the value being taken (found by the stress tests).
            var size = 2
            while size < ringPermits { size <<= 1 }
            self.ringPermits = ringPermits
            self.mask = size - 1
            self.words = UnsafeMutableRawPointer.allocate(byteCount: 4 * Self.lineStride, alignment: Self.lineStride)
            self.sequences = .allocate(capacity: size)
            self.values = .allocate(capacity: size)
            for index in 0..<size { (self.sequences + index).initialize(to: Atomic(index)) }
            self.words.bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(ringPermits * Self.one))
            for offset in [Self.lineStride, Self.lineStride + 8, 2 * Self.lineStride, 3 * Self.lineStride] {
                (self.words + offset).bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(0))
            }
            // How many taken slots a consumer lets pile up before giving them back: a batch keeps the permit word's
            // line with the producers; a small ring gets small batches so that producers rarely find it falsely
            // full (they then collect the taken slots themselves, under the lock).
            self.releaseBatch = max(1, min(32, ringPermits / 4))
        }

        deinit {
            // Values still in the ring: from the consumer's position to the producers'. Every claimed position was
            // written (a push completes before its sender can go), so each of these slots is initialized.
            let head = self.head.pointee.load(ordering: .acquiring)
            let tail = self.tail.pointee.load(ordering: .acquiring)
            var position = head
            while position < tail {
                let index = position & self.mask
                if self.sequences[index].load(ordering: .acquiring) == position &+ 1 {
                    (self.values + index).deinitialize(count: 1)
                }
                position += 1
            }
            self.sequences.deinitialize(count: self.mask + 1)
            self.sequences.deallocate()
            self.values.deallocate()
            self.words.deallocate()
        }

        /// `freeSlots << 4 | flags`; see the type's documentation.
        @inlinable var permits: UnsafeMutablePointer<Atomic<Int>> {
            self.words.assumingMemoryBound(to: Atomic<Int>.self)
        }
        /// The next position a consumer takes. Written by consumers only (compare-and-swap, since tasks may share a
        /// receiver).
        @inlinable var head: UnsafeMutablePointer<Atomic<Int>> {
            (self.words + Self.lineStride).assumingMemoryBound(to: Atomic<Int>.self)
        }
        /// The next position a producer claims. Written by producers only.
        @inlinable var tail: UnsafeMutablePointer<Atomic<Int>> {
            (self.words + 2 * Self.lineStride).assumingMemoryBound(to: Atomic<Int>.self)
        }
        /// Positions below this have had their permits given back. Consumers and the lock holder advance it to `head`
        /// with a compare-and-swap, so each taken slot's permit is given back exactly once (``releaseTaken()``).
        @inlinable var released: UnsafeMutablePointer<Atomic<Int>> {
            (self.words + Self.lineStride + 8).assumingMemoryBound(to: Atomic<Int>.self)
        }
        /// The permit word's flags, plus ``receiverWaitingBit``. Written only under the channel lock.
        ///
        /// It holds both halves of two Dekker pairs, all four accesses sequentially consistent, so that in each pair
        /// at least one side sees the other:
        /// - a receiver about to park sets ``receiverWaitingBit`` then looks at the next slot (``hasValue``); a
        ///   producer stores the slot's sequence number then reads this (``writeAndCheck(_:)``). Either the receiver
        ///   finds the value and does not park, or the producer sees the bit and takes the lock to resume it.
        /// - a sender about to wait sets ``waitersBit`` then collects taken slots from `head`; a consumer advances
        ///   `head` then reads this (``pop()``). Either the sender finds the freed slot, or the consumer sees the bit
        ///   and gives the slot back at once, taking the lock to admit the sender.
        @inlinable var attention: UnsafeMutablePointer<Atomic<Int>> {
            (self.words + 3 * Self.lineStride).assumingMemoryBound(to: Atomic<Int>.self)
        }

        // MARK: Permits

        /// Free slots in a permit word.
        @inlinable
        static func freeSlots(_ word: Int) -> Int { word >> 4 }

        /// The fast path's permit: takes one free slot unless a flag says the lock must decide. Lock-free.
        @inlinable @inline(__always)
        func tryAcquire() -> Bool {
            self.takePermit { $0 & Self.flagBits == 0 }
        }

        /// Under the channel lock: takes a free slot whatever the waiters, ending and gone flags say (the state machine
        /// has decided), but not while values are spilled, unless `pastSpill` (the spill is being moved into the ring).
        @inlinable
        func acquireLocked(pastSpill: Bool = false) -> Bool {
            _ = self.releaseTaken()
            return self.takePermit { pastSpill || $0 & Self.spilledBit == 0 }
        }

        /// Takes one free slot with a compare-and-swap while the permit word has one and `mayTake(word)` holds.
        @inlinable @inline(__always)
        func takePermit(_ mayTake: (Int) -> Bool) -> Bool {
            var word = self.permits.pointee.load(ordering: .relaxed)
            while word >= Self.one && mayTake(word) {
                // Acquiring: the consumer freed this slot (its sequence store) before it released the permit.
                let (exchanged, original) = self.permits.pointee.compareExchange(
                    expected: word,
                    desired: word - Self.one,
                    ordering: .acquiring
                )
                if exchanged { return true }
                word = original
            }
            return false
        }

        /// Gives `count` slots back. Returns the word before, so that the caller can tell whether the lock must hear
        /// of it (a flag was set). Slots taken by consumers come back through ``releaseTaken()`` instead.
        @inlinable @inline(__always)
        func release(_ count: Int) -> Int {
            self.permits.pointee.wrappingAdd(count &* Self.one, ordering: .sequentiallyConsistent).oldValue
        }

        /// Gives back the permits of every slot consumers took since the last time: advances `released` to `head`.
        /// Returns the permit word before and how many came back, or `nil` if none were pending.
        ///
        /// A slot counts as taken once a consumer advanced `head` past it, a few instructions before it stores the
        /// slot's new sequence number; a producer given that permit waits for the store in ``write(_:)``.
        @inlinable
        func releaseTaken() -> (word: Int, count: Int)? {
            var released = self.released.pointee.load(ordering: .relaxed)
            while true {
                let head = self.head.pointee.load(ordering: .sequentiallyConsistent)
                let count = head &- released
                guard count > 0 else { return nil }
                let (exchanged, original) = self.released.pointee.compareExchange(
                    expected: released,
                    desired: head,
                    ordering: .relaxed
                )
                if exchanged { return (self.release(count), count) }
                released = original
            }
        }

        /// Taken slots whose permits have not been given back yet.
        @inlinable
        var pendingReleases: Int {
            self.head.pointee.load(ordering: .relaxed) &- self.released.pointee.load(ordering: .relaxed)
        }

        /// Sets flags in the permit word and in `attention`. Under the channel lock only.
        @inlinable
        func setFlags(_ flags: Int) {
            if flags & Self.flagBits != 0 {
                self.permits.pointee.bitwiseOr(flags & Self.flagBits, ordering: .sequentiallyConsistent)
            }
            self.attention.pointee.bitwiseOr(flags, ordering: .sequentiallyConsistent)
        }

        /// Clears flags in the permit word and in `attention`. Under the channel lock only.
        @inlinable
        func clearFlags(_ flags: Int) {
            guard self.attention.pointee.load(ordering: .relaxed) & flags != 0 else { return }
            if flags & Self.flagBits != 0 {
                self.permits.pointee.bitwiseAnd(~(flags & Self.flagBits), ordering: .sequentiallyConsistent)
            }
            self.attention.pointee.bitwiseAnd(~flags, ordering: .sequentiallyConsistent)
        }

        /// The permit word now.
        @inlinable
        var word: Int { self.permits.pointee.load(ordering: .sequentiallyConsistent) }

        /// The `attention` word now.
        @inlinable
        var attentionWord: Int { self.attention.pointee.load(ordering: .sequentiallyConsistent) }

        /// True when every permit is back: nothing in the ring, no send on its way into it, no permit held. Collects
        /// taken slots first.
        @inlinable
        var isIdle: Bool {
            _ = self.releaseTaken()
            return Self.freeSlots(self.word) == self.ringPermits
        }

        // MARK: Ring

        /// Writes `value` into the next position. The caller holds a permit, which guarantees the slot is free (or is
        /// being freed by a consumer that already published its permit: the loop waits for its sequence store).
        @inlinable @inline(__always)
        func write(_ value: consuming Element) {
            let position = self.tail.pointee.wrappingAdd(1, ordering: .relaxed).oldValue
            let index = position & self.mask
            while self.sequences[index].load(ordering: .acquiring) != position {}
            (self.values + index).initialize(to: value)
            // Sequentially consistent: the store half of the producer's Dekker pair (see `attention`).
            self.sequences[index].store(position &+ 1, ordering: .sequentiallyConsistent)
        }

        /// ``write(_:)`` on the fast path: then reads `attention` (the load half of the producer's Dekker pair) and
        /// returns true if a receiver is parked and must be resumed under the lock.
        @inlinable @inline(__always)
        func writeAndCheck(_ value: consuming Element) -> Bool {
            self.write(value)
            return self.attention.pointee.load(ordering: .sequentiallyConsistent) & Self.receiverWaitingBit != 0
        }

        /// Takes the value at the head, if it has been written. Lock-free; safe for several consumers.
        @inlinable @inline(__always)
        func pop() -> Element? {
            var position = self.head.pointee.load(ordering: .relaxed)
            while true {
                let index = position & self.mask
                let sequence = self.sequences[index].load(ordering: .acquiring)
                let lead = sequence &- (position &+ 1)
                if lead == 0 {
                    // Sequentially consistent: the consumer's store half of the waiters Dekker pair (see `attention`).
                    let (exchanged, original) = self.head.pointee.compareExchange(
                        expected: position,
                        desired: position &+ 1,
                        ordering: .sequentiallyConsistent
                    )
                    if exchanged {
                        let value = (self.values + index).move()
                        self.sequences[index].store(position &+ self.mask &+ 1, ordering: .releasing)
                        return value
                    }
                    position = original
                } else if lead < 0 {
                    return nil  // not written yet: empty, or its producer is between claiming and writing
                } else {
                    position = self.head.pointee.load(ordering: .relaxed)  // another consumer took it
                }
            }
        }

        /// Takes up to `limit` written values from the head with one compare-and-swap. Returns how many.
        @inlinable
        func pop(upTo limit: Int, into values: inout [Element]) -> Int {
            var position = self.head.pointee.load(ordering: .relaxed)
            while true {
                var ready = 0
                while ready < limit
                    && self.sequences[(position &+ ready) & self.mask].load(ordering: .acquiring)
                        == position &+ ready &+ 1
                {
                    ready += 1
                }
                if ready == 0 {
                    let sequence = self.sequences[position & self.mask].load(ordering: .acquiring)
                    if sequence &- (position &+ 1) <= 0 { return 0 }
                    position = self.head.pointee.load(ordering: .relaxed)
                    continue
                }
                let (exchanged, original) = self.head.pointee.compareExchange(
                    expected: position,
                    desired: position &+ ready,
                    ordering: .sequentiallyConsistent
                )
                guard exchanged else {
                    position = original
                    continue
                }
                for offset in 0..<ready {
                    let index = (position &+ offset) & self.mask
                    values.append((self.values + index).move())
                    self.sequences[index].store(position &+ offset &+ self.mask &+ 1, ordering: .releasing)
                }
                return ready
            }
        }

        /// After a take: true if the consumer must give slots back now rather than in a batch, because senders wait or
        /// the channel is ending (the consumer's load half of the waiters Dekker pair, see `attention`), or because a
        /// batch is due.
        @inlinable @inline(__always)
        var mustReleaseTaken: Bool {
            self.attention.pointee.load(ordering: .sequentiallyConsistent) & (Self.waitersBit | Self.endingBit) != 0
                || self.pendingReleases >= self.releaseBatch
        }

        /// True if the value at the head has been written. Sequentially consistent: the load half of the
        /// receiver's Dekker pair (see `attention`).
        @inlinable
        var hasValue: Bool {
            let position = self.head.pointee.load(ordering: .sequentiallyConsistent)
            return self.sequences[position & self.mask].load(ordering: .sequentiallyConsistent) == position &+ 1
        }

        /// ``hasValue`` without the ordering the Dekker pair needs: for polling while spinning.
        @inlinable @inline(__always)
        var mayHaveValue: Bool { self.hasValue(at: 0) }

        /// True if the value `offset` positions past the head has been written. Relaxed: for deciding whether to wait.
        @inlinable @inline(__always)
        func hasValue(at offset: Int) -> Bool {
            let position = self.head.pointee.load(ordering: .relaxed) &+ offset
            return self.sequences[position & self.mask].load(ordering: .relaxed) == position &+ 1
        }

        /// How many values from the head on have been written, counting up to `limit`. Relaxed, like ``hasValue(at:)``.
        @inlinable
        func readyCount(upTo limit: Int) -> Int {
            let head = self.head.pointee.load(ordering: .relaxed)
            var count = 0
            while count < limit
                && self.sequences[(head &+ count) & self.mask].load(ordering: .relaxed) == head &+ count &+ 1
            {
                count += 1
            }
            return count
        }

        /// Positions claimed and not yet taken: values in the ring, plus sends between claiming and writing. Reads
        /// `tail` first, so that a concurrent snapshot never exceeds the ring's permits.
        @inlinable
        var count: Int {
            let tail = self.tail.pointee.load(ordering: .acquiring)
            let head = self.head.pointee.load(ordering: .acquiring)
            return max(0, tail &- head)
        }
    }
}
