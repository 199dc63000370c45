import Testing

@testable import SluiceChannels

/// The elements of `buffer`, oldest first, read through the subscript.
private func contents<Element>(_ buffer: borrowing RingBuffer<Element>) -> [Element] {
    var result: [Element] = []
    for offset in 0..<buffer.count { result.append(buffer[offset]) }
    return result
}

/// A buffer of capacity 8 whose contents `values` start at slot 5, so they wrap past the end of the storage.
private func wrappedBuffer(_ values: [Int]) -> RingBuffer<Int> {
    var buffer = RingBuffer<Int>(minimumCapacity: 8)
    for filler in 0..<5 { buffer.append(-1 - filler) }
    for _ in 0..<5 { _ = buffer.popFirst() }
    for value in values { buffer.append(value) }
    return buffer
}

@Suite("RingBuffer")
struct RingBufferTests {
    @Test("append and popFirst keep FIFO order across growth and wrap-around")
    func fifoAcrossGrowthAndWrap() {
        // Given a buffer of 4 slots whose head has moved to slot 2
        var buffer = RingBuffer<Int>(minimumCapacity: 4)
        for value in 0..<3 { buffer.append(value) }
        #expect(buffer.popFirst() == 0)
        #expect(buffer.popFirst() == 1)
        // When it fills past the end of the storage (wraps) and then grows while wrapped
        for value in 3..<21 { buffer.append(value) }
        // Then every value comes out once, oldest first
        #expect(buffer.count == 19)
        var popped: [Int] = []
        while let value = buffer.popFirst() { popped.append(value) }
        #expect(popped == Array(2..<21))
        #expect(buffer.count == 0)
        #expect(buffer.popFirst() == nil)
    }

    @Test("a buffer created with room for zero or one element still grows")
    func tinyCapacity() {
        for minimum in [0, 1] {
            var buffer = RingBuffer<Int>(minimumCapacity: minimum)
            for value in 0..<9 { buffer.append(value) }
            #expect(contents(buffer) == Array(0..<9))
        }
    }

    @Test("popFirst(upTo:into:) moves at most limit values, in order, after what the array holds")
    func popFirstUpTo() {
        // Given the values 10...15 wrapped around the end of the storage
        var buffer = wrappedBuffer(Array(10...15))
        var out = [99]
        // When taking 4, then a non-positive number, then more than remain
        buffer.popFirst(upTo: 4, into: &out)
        #expect(out == [99, 10, 11, 12, 13])
        buffer.popFirst(upTo: 0, into: &out)
        buffer.popFirst(upTo: -3, into: &out)
        #expect(out == [99, 10, 11, 12, 13])
        #expect(buffer.count == 2)
        buffer.popFirst(upTo: 100, into: &out)
        // Then everything arrived once, in order, and the buffer is empty and usable
        #expect(out == [99] + Array(10...15))
        #expect(buffer.count == 0)
        buffer.append(7)
        #expect(buffer.popFirst() == 7)
    }

    @Test("removeFirst(where:) takes the head, a middle or the tail element and keeps the others in order")
    func removeFirstWhere() {
        for (target, expectedRest) in [
            (10, [11, 12, 13, 14, 15]), (12, [10, 11, 13, 14, 15]), (13, [10, 11, 12, 14, 15]),
            (15, [10, 11, 12, 13, 14]),
        ] {
            // Given 10...15 wrapped around the end of an 8-slot storage
            var buffer = wrappedBuffer(Array(10...15))
            // When removing one element
            let removed = buffer.removeFirst(where: { $0 == target })
            // Then exactly it is gone and the order of the rest is kept, also for later appends
            #expect(removed == target)
            #expect(contents(buffer) == expectedRest)
            buffer.append(16)
            buffer.append(17)
            buffer.append(18)
            var all: [Int] = []
            buffer.drain { all.append($0) }
            #expect(all == expectedRest + [16, 17, 18])
        }
    }

    @Test("removeFirst(where:) removes only the first match and returns nil when nothing matches")
    func removeFirstWhereFirstMatchOnly() {
        var buffer = wrappedBuffer([1, 2, 1, 2])
        #expect(buffer.removeFirst(where: { $0 == 3 }) == nil)
        #expect(contents(buffer) == [1, 2, 1, 2])
        #expect(buffer.removeFirst(where: { $0 == 2 }) == 2)
        #expect(contents(buffer) == [1, 1, 2])
        var empty = RingBuffer<Int>()
        #expect(empty.removeFirst(where: { _ in true }) == nil)
    }

    @Test("drain hands every element to the body oldest first and leaves the buffer empty")
    func drain() {
        var buffer = wrappedBuffer(Array(0..<7))
        var seen: [Int] = []
        buffer.drain { seen.append($0) }
        #expect(seen == Array(0..<7))
        #expect(buffer.count == 0)
        #expect(buffer.first == nil)
    }

    @Test("the subscript reads and writes by offset from the oldest element, across the wrap point")
    func subscriptAcrossWrap() {
        let buffer = wrappedBuffer([0, 1, 2, 3, 4, 5])
        #expect(buffer.first == 0)
        #expect(buffer[2] == 2)
        #expect(buffer[5] == 5)
        buffer[3] = 30  // slot 0 of the storage: past the wrap
        buffer[0] = 100
        #expect(contents(buffer) == [100, 1, 2, 30, 4, 5])
        #expect(buffer.first == 100)
    }

    @Test("removeAll destroys every element and the buffer stays usable")
    func removeAll() {
        let counter = DeinitCounter()
        var buffer = RingBuffer<DeinitTracked>(minimumCapacity: 4)
        for id in 0..<3 { buffer.append(DeinitTracked(id, counter)) }
        _ = buffer.popFirst()
        for id in 3..<6 { buffer.append(DeinitTracked(id, counter)) }  // wrapped
        buffer.removeAll()
        #expect(buffer.count == 0)
        #expect(counter.destroyed == 6)
        buffer.append(DeinitTracked(6, counter))
        #expect(buffer.first?.id == 6)
        #expect(counter.destroyedTwice.isEmpty)
    }

    @Test("every element is destroyed exactly once, whichever way it leaves, including the buffer's deinit")
    func elementsDestroyedExactlyOnce() {
        let counter = DeinitCounter()
        do {
            // Given a buffer that grew while wrapped and then wrapped again
            var buffer = RingBuffer<DeinitTracked>(minimumCapacity: 4)
            for id in 0..<3 { buffer.append(DeinitTracked(id, counter)) }
            _ = buffer.popFirst()  // 0
            for id in 3..<10 { buffer.append(DeinitTracked(id, counter)) }  // grows while wrapped
            #expect(counter.destroyed == 1)
            // When elements leave by every path
            var batch: [DeinitTracked] = []
            buffer.popFirst(upTo: 3, into: &batch)  // 1, 2, 3
            #expect(counter.destroyed == 1, "moved, not destroyed")
            batch.removeAll()
            #expect(counter.destroyed == 4)
            #expect(buffer.removeFirst(where: { $0.id == 6 })?.id == 6)  // middle
            #expect(buffer.removeFirst(where: { $0.id == 4 })?.id == 4)  // head
            #expect(buffer.removeFirst(where: { $0.id == 9 })?.id == 9)  // tail
            #expect(counter.destroyed == 7)
            buffer[0] = DeinitTracked(100, counter)  // replaces 5
            #expect(counter.destroyCount(of: 5) == 1)
            for id in 10..<16 { buffer.append(DeinitTracked(id, counter)) }
            var drained: [Int] = []
            buffer.drain { drained.append($0.id) }
            #expect(drained == [100, 7, 8, 10, 11, 12, 13, 14, 15])
            #expect(counter.destroyed == 17)
            // The head is now at slot 12 of 16: these wrap to slots 12...15, 0, 1
            for id in 16..<22 { buffer.append(DeinitTracked(id, counter)) }
            _ = buffer.popFirst()
            // Then the buffer goes out of scope holding 17...21, wrapped
            #expect(counter.destroyed == 18)
        }
        #expect(counter.destroyed == counter.createdCount)
        #expect(counter.destroyedTwice.isEmpty)
    }

    @Test("the deinit of a buffer whose contents wrap past the end of the storage destroys each element once")
    func deinitOfWrappedBuffer() {
        let counter = DeinitCounter()
        do {
            var buffer = RingBuffer<DeinitTracked>(minimumCapacity: 8)
            for id in 0..<6 { buffer.append(DeinitTracked(id, counter)) }
            for _ in 0..<5 { _ = buffer.popFirst() }
            for id in 6..<12 { buffer.append(DeinitTracked(id, counter)) }  // occupies slots 5, 6, 7, 0, 1, 2, 3
            #expect(buffer.count == 7)
            #expect(counter.destroyed == 5)
        }
        #expect(counter.destroyed == 12)
        #expect(counter.destroyedTwice.isEmpty)
    }

    @Test(
        "random operations match an Array model and destroy each element exactly once",
        arguments: [1, 2, 3, 0xDEAD_BEEF] as [UInt64]
    )
    func matchesArrayModel(seed: UInt64) {
        var rng = SplitMix64Generator(seed: seed)
        let counter = DeinitCounter()
        var model: [Int] = []  // ids, oldest first
        var next = 0
        func make() -> DeinitTracked {
            next += 1
            return DeinitTracked(next, counter)
        }
        do {
            var buffer = RingBuffer<DeinitTracked>(minimumCapacity: rng.below(6))
            for _ in 0..<3000 {
                switch rng.below(10) {
                case 0...3:
                    let element = make()
                    model.append(element.id)
                    buffer.append(element)
                case 4, 5:
                    #expect(buffer.popFirst()?.id == (model.isEmpty ? nil : model.removeFirst()))
                case 6:
                    let limit = rng.below(6) - 1
                    var out: [DeinitTracked] = []
                    buffer.popFirst(upTo: limit, into: &out)
                    let n = max(0, min(limit, model.count))
                    #expect(out.map(\.id) == Array(model.prefix(n)))
                    model.removeFirst(n)
                case 7:
                    guard !model.isEmpty else { continue }
                    let target = model[rng.below(model.count)]
                    #expect(buffer.removeFirst(where: { $0.id == target })?.id == target)
                    model.remove(at: model.firstIndex(of: target)!)
                case 8:
                    guard !model.isEmpty else { continue }
                    let offset = rng.below(model.count)
                    #expect(buffer[offset].id == model[offset])
                    let element = make()
                    model[offset] = element.id
                    buffer[offset] = element
                default:
                    if rng.chance(10) {
                        var drained: [Int] = []
                        buffer.drain { drained.append($0.id) }
                        #expect(drained == model)
                        model.removeAll()
                    }
                }
                #expect(buffer.count == model.count)
                #expect(buffer.first?.id == model.first)
                #expect(counter.destroyed == next - model.count, "only removed elements are destroyed")
            }
            #expect(contents(buffer).map(\.id) == model)
        }
        #expect(counter.destroyed == next)
        #expect(counter.destroyedTwice.isEmpty)
    }
}
