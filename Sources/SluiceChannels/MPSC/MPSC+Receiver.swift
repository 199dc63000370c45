extension MPSC {
    /// The receiving half of a channel: one consumer takes values in order.
    ///
    /// It is a reference. Dropping the last reference closes the channel for good: waiting senders fail with
    /// their values handed back, and values still buffered are discarded.
    public final class Receiver: Sendable {
        @usableFromInline let storage: Storage

        @inlinable
        init(storage: Storage) { self.storage = storage }

        deinit { self.storage.receiverDropped() }

        /// Receives the next value, waiting while the channel is empty.
        ///
        /// A value that is already buffered is returned at once, without suspending and without taking the channel
        /// lock: the value is taken from the channel's lock-free ring, and its slot is free again as soon as this
        /// returns.
        ///
        /// - Returns: the oldest value, or `nil` once the channel is empty and can get no more values: every
        ///   sender is gone, or ``close()`` was called, and no ``Permit`` is outstanding.
        ///
        /// ## Errors
        /// `CancellationError` if the task is cancelled while waiting.
        ///
        /// ## Cancellation
        /// Cancel-safe: a cancelled `recv` has taken no value, and the next `recv` gets it.
        @inlinable @inline(__always)
        public func recv() async throws(CancellationError) -> Element? {
            try await self.storage.receive()
        }

        /// Receives every ready value, up to `limit`, at once.
        ///
        /// Waits only when nothing is ready; then it returns as soon as the first value arrives, together with
        /// whatever arrived with it. This is the batch receive: one atomic exchange to take up to `limit` values
        /// from the ring, one to free their slots, and at most one wake-up.
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
        @inlinable @inline(__always)
        public func recv(upTo limit: Int, into values: inout [Element]) async throws(CancellationError) -> Int {
            precondition(limit >= 1, "MPSC.recv(upTo:) needs a limit of at least 1, got \(limit)")
            let before = values.count
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
            try self.storage.tryReceive().get()
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

        /// Values buffered right now (a snapshot: senders and the receiver may be changing it). A send that has taken
        /// its slot and is writing its value counts as buffered.
        @inlinable
        public var count: Int { self.storage.count }
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
