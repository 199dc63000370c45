import SluiceChannels

/// `sluice-bench alloc-check --count N`: the steady-state paths where nobody waits, `N` times each, on one task.
///
/// Run it under valgrind twice with different counts: if the heap allocation totals are equal, these paths
/// allocate nothing per value (what differs is only the fixed cost of setting up). docs/BENCHMARKS.md has the
/// command and the figures.
///
///     valgrind --tool=memcheck .build/release/sluice-bench alloc-check --count 10     2>&1 | grep 'total heap'
///     valgrind --tool=memcheck .build/release/sluice-bench alloc-check --count 100000 2>&1 | grep 'total heap'
struct AllocationCheck {
    let count: Int

    func run() async throws {
        // MPSC: send + recv, trySend + tryRecv, and a batch receive into a reused array, never full, never empty
        // at the receive.
        let (sender, receiver) = MPSC<Int>.channel(capacity: 64)
        var batch: [Int] = []
        batch.reserveCapacity(64)
        var sum = 0
        for value in 0..<self.count {
            try await sender.send(value)
            sum &+= try await receiver.recv() ?? 0
            sender.trySend(value)
            sum &+= try receiver.tryRecv()
            try await sender.send(value)
            batch.removeAll(keepingCapacity: true)
            _ = try await receiver.recv(upTo: 64, into: &batch)
            sum &+= batch[0]
            let permit = try await sender.reserve()
            try permit.send(value)
            sum &+= try await receiver.recv() ?? 0
        }
        // AsyncSemaphore: acquire + release.
        let semaphore = AsyncSemaphore(permits: 1)
        for _ in 0..<self.count {
            let permit = try await semaphore.acquire()
            permit.release()
        }
        print("alloc-check: \(self.count) rounds done (checksum \(sum))")
    }
}
