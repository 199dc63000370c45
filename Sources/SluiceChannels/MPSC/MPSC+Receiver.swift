public import Synchronization

extension MPSC {
    /// The receiving half of a channel: one consumer takes values in order.
    ///
    /// It is a reference. Dropping the last reference closes the channel for good: waiting senders fail with
    /// their values handed back, and values still buffered are discarded.
    public final class Receiver: Sendable {
        @usableFromInline let storage: Storage
        /// Values this receiver already took from the channel in one batch and has not handed out yet.
        ///
        /// Why: with one lock round trip per `recv()`, the producer and the consumer take the channel lock in
        /// turns, and its cache line crosses cores twice per value (measured in an A/B run: 1.1 M values/s 1→1
        /// before, 9–10 M/s with batches). So `recv()` takes up to ``batchSize`` values under one channel lock and
        /// hands them out from here. Only receiving tasks touch this lock, so it is uncontended and its cache line
        /// stays on the consumer's core. The values keep their slots until handed out: each hand-out publishes a
        /// running total (``Storage/handedOut``) that senders apply when they find the channel full, and that
        /// the receiver applies itself under the channel lock when senders are already waiting.
        @usableFromInline let taken = Locked(TakenValues())

        /// Up to how many values one `recv()` takes from the channel at once.
        @inlinable static var batchSize: Int { 64 }

        @inlinable
        init(storage: Storage) { self.storage = storage }

        deinit { self.storage.receiverDropped() }

        /// Receives the next value, waiting while the channel is empty.
        ///
        /// A value that is already buffered is returned at once, without suspending.
        ///
        /// To spare the channel lock, a `recv()` that finds several values buffered takes up to 64 of them at once
        /// and returns the rest from later calls, without taking the channel lock. Those values still count
        /// against the channel's capacity until `recv()` returns them (so a bounded channel never holds more than
        /// its capacity, taken values included), ``count`` includes them, and dropping the receiver discards them
        /// like any buffered value.
        ///
        /// - Returns: the oldest value, or `nil` once the channel is empty and can get no more values: every
        ///   sender is gone, or ``close()`` was called, and no ``Permit`` is outstanding.
        ///
        /// ## Errors
        /// `CancellationError` if the task is cancelled while waiting.
        ///
        /// ## Cancellation
        /// Cancel-safe: a cancelled `recv` has taken no value, and the next `recv` gets it.
        @inlinable
        public func recv() async throws(CancellationError) -> Element? {
            if let value = self.handOut() { return value }
            var batch = self.taken.withLock { $0.takeSpare() }
            guard try await self.storage.receive(upTo: Self.batchSize, into: &batch, hold: true) else { return nil }
            batch.reverse()  // newest first, so that `popLast` hands out the oldest and releases it
            let first = batch.removeLast()
            let total = self.taken.withLock {
                $0.putBack(&batch)
                return $0.countHandedOut(1, publishingTo: self.storage)
            }
            self.storage.receiverHandedOut(total: total)
            return first
        }

        /// The oldest value of the current batch, if any, counted as handed out (which frees its slot).
        @inlinable
        func handOut() -> Element? {
            guard
                let (value, total) = self.taken.withLock({ taken -> (Element, UInt64)? in
                    guard let value = taken.popOldest() else { return nil }
                    return (value, taken.countHandedOut(1, publishingTo: self.storage))
                })
            else { return nil }
            self.storage.receiverHandedOut(total: total)
            return value
        }

        /// Receives every ready value, up to `limit`, under one lock.
        ///
        /// Waits only when nothing is ready; then it returns as soon as the first value arrives, together with
        /// whatever arrived with it. This is the batch receive: one lock and one wake-up for up to `limit`
        /// values.
        ///
        /// - Parameter limit: the most values to return, at least 1.
        /// - Returns: between 1 and `limit` values in order, or an empty array once the channel has ended.
        ///
        /// ## Errors
        /// `CancellationError` if the task is cancelled while waiting. Cancel-safe like ``recv()``.
        @inlinable
        public func recv(upTo limit: Int) async throws(CancellationError) -> [Element] {
            var values: [Element] = []
            _ = try await self.recv(upTo: limit, into: &values)
            return values
        }

        /// Appends every ready value, up to `limit`, to `values`; reuse one array to receive without allocating.
        ///
        /// - Returns: how many values were appended; 0 only once the channel has ended.
        ///
        /// ## Errors
        /// `CancellationError` if the task is cancelled while waiting. Cancel-safe like ``recv()``.
        @inlinable
        public func recv(upTo limit: Int, into values: inout [Element]) async throws(CancellationError) -> Int {
            precondition(limit >= 1, "MPSC.recv(upTo:) needs a limit of at least 1, got \(limit)")
            let before = values.count
            // Values an earlier `recv()` already took come first, then whatever the channel has ready. (Only
            // code that mixes `recv()` and `recv(upTo:)` gets here with values taken; the array is built then.)
            if let (taken, total) = self.taken.withLock({ taken -> ([Element], UInt64)? in
                guard let values = taken.popOldest(upTo: limit) else { return nil }
                return (values, taken.countHandedOut(values.count, publishingTo: self.storage))
            }) {
                self.storage.receiverHandedOut(total: total)
                values.append(contentsOf: taken)
                let fromTaken = taken.count
                if fromTaken < limit { _ = self.storage.tryReceive(upTo: limit - fromTaken, into: &values) }
                return values.count - before
            }
            _ = try await self.storage.receive(upTo: limit, into: &values)
            return values.count - before
        }

        /// Receives a value if one is buffered, without waiting.
        ///
        /// ## Errors
        /// ``TryRecvError/empty`` when nothing is buffered yet; ``TryRecvError/disconnected`` when nothing is
        /// buffered and nothing more can arrive.
        @inlinable
        public func tryRecv() throws(TryRecvError) -> Element {
            if let value = self.handOut() { return value }
            return try self.storage.tryReceive().get()
        }

        /// Closes the channel for sending, keeping what is buffered.
        ///
        /// Every later ``Sender/send(_:)`` or ``Sender/trySend(_:)`` fails with its value handed back, and every
        /// sender waiting now fails the same way. Buffered values, and values sent through permits that were
        /// already reserved, can still be received; after them ``recv()`` returns `nil`.
        @inlinable
        public func close() {
            self.storage.close()
        }

        /// Values buffered right now, including any an earlier ``recv()`` took in a batch and has not returned yet.
        @inlinable
        public var count: Int { self.storage.count + self.taken.withLock { $0.count } }
    }
}

extension MPSC.Receiver: AsyncSequence {
    public typealias Failure = Never

    /// Iterates values until the channel ends or the iterating task is cancelled.
    public struct AsyncIterator: AsyncIteratorProtocol {
        @usableFromInline let receiver: MPSC.Receiver
        /// Set once `next()` returned `nil`: an iterator that ended stays ended, as `AsyncIteratorProtocol`
        /// requires, even if the channel later gets a value (after a cancellation ended the iteration).
        @usableFromInline var ended = false

        @inlinable
        init(receiver: MPSC.Receiver) { self.receiver = receiver }

        /// The next value, or `nil` when the channel has ended or the task was cancelled (no value is taken
        /// then). After the first `nil` every call returns `nil`.
        @inlinable
        public mutating func next() async -> Element? {
            guard !self.ended else { return nil }
            do {
                if let value = try await self.receiver.recv() { return value }
            } catch {}
            self.ended = true
            return nil
        }
    }

    @inlinable
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(receiver: self)
    }
}

extension MPSC {
    /// A receiver's batch of values taken from the channel and not handed out yet (see ``Receiver/taken``). The
    /// values still count against the channel's capacity until they are handed out.
    @usableFromInline
    struct TakenValues: ~Copyable {
        /// Newest first: `popLast` hands out the oldest value and releases the slot's reference at once.
        @usableFromInline var ready: [Element] = []
        /// An empty array with capacity, reused for the next batch so that refilling allocates nothing.
        @usableFromInline var spare: [Element] = []
        /// How many batch values were handed out so far; published to ``Storage/handedOut``.
        @usableFromInline var handedOut: UInt64 = 0

        @inlinable
        init() {}

        @inlinable
        var count: Int { self.ready.count }

        @inlinable
        mutating func popOldest() -> Element? { self.ready.popLast() }

        /// Up to `limit` of the oldest values, or `nil` (without allocating) when there are none.
        @inlinable
        mutating func popOldest(upTo limit: Int) -> [Element]? {
            guard !self.ready.isEmpty else { return nil }
            var values: [Element] = []
            while values.count < limit, let value = self.ready.popLast() { values.append(value) }
            return values
        }

        /// Counts `n` more values handed out and publishes the total while still under the receiver's lock (so
        /// totals from tasks sharing the receiver are published in order). Returns the total.
        @inlinable
        mutating func countHandedOut(_ n: Int, publishingTo storage: Storage) -> UInt64 {
            self.handedOut &+= UInt64(n)
            storage.handedOut.store(self.handedOut, ordering: .sequentiallyConsistent)
            return self.handedOut
        }

        @inlinable
        mutating func takeSpare() -> [Element] {
            var spare: [Element] = []
            swap(&spare, &self.spare)
            spare.removeAll(keepingCapacity: true)
            return spare
        }

        /// Stores a batch (newest first). If another task sharing the receiver put a batch back meanwhile, its
        /// values are handed out first: tasks that share one receiver get values in no particular order between
        /// them, while each batch stays in order.
        @inlinable
        mutating func putBack(_ batch: inout [Element]) {
            if self.ready.isEmpty {
                swap(&self.ready, &batch)
            } else {
                self.ready.insert(contentsOf: batch, at: 0)
                batch.removeAll(keepingCapacity: true)
            }
            self.spare = batch
        }
    }
}
