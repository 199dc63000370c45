/// A growable FIFO ring buffer: the queue behind every channel and every waiter list.
///
/// It is `~Copyable` on purpose. Channel state lives inside a lock, and a copyable buffer there would be one
/// accidental `let` binding away from aliasing (or, with copy-on-write, copying) the whole queue on the hot path.
/// A noncopyable buffer cannot be copied at all, so every mutation happens in place, with no uniqueness check.
///
/// The slots live in a `ManagedBuffer` (one allocation: header and elements together) whose class `deinit`
/// destroys the elements. The struct itself has no `deinit`: Swift 6.3's optimizer crashes when it inlines the
/// `deinit` of a noncopyable struct into the `@inlinable` code of another module (reproduced in ten lines; see
/// `docs/decisions/0001-channel-state-machines.md`), and every channel's hot path is `@inlinable` so that clients
/// specialize it.
///
/// Capacity is a power of two addressed with a mask; it doubles when full and never shrinks (channels are
/// long-lived, and re-growing would allocate on the hot path).
@usableFromInline
struct RingBuffer<Element>: ~Copyable {
    @usableFromInline
    struct Header {
        /// Index of the oldest element.
        @usableFromInline var head: Int
        /// Number of initialized slots starting at `head` (wrapping).
        @usableFromInline var count: Int
        /// Allocated slots, a power of two so that `index & (capacity - 1)` wraps.
        @usableFromInline var capacity: Int

        @inlinable
        init(head: Int, count: Int, capacity: Int) {
            self.head = head
            self.count = count
            self.capacity = capacity
        }
    }

    /// Owns the slots and destroys whatever is still in them when the buffer goes away.
    @usableFromInline
    final class Slots: ManagedBuffer<Header, Element> {
        deinit {
            self.withUnsafeMutablePointers { header, elements in
                let h = header.pointee
                let firstRun = min(h.count, h.capacity - h.head)
                (elements + h.head).deinitialize(count: firstRun)
                elements.deinitialize(count: h.count - firstRun)
            }
        }

        @inlinable
        static func make(capacity: Int) -> Slots {
            let buffer = Slots.create(minimumCapacity: capacity) { _ in Header(head: 0, count: 0, capacity: capacity) }
            return unsafeDowncast(buffer, to: Slots.self)
        }
    }

    @usableFromInline var slots: Slots

    /// Creates an empty buffer with room for at least `minimumCapacity` elements before it grows.
    @inlinable
    init(minimumCapacity: Int = 4) {
        var capacity = 1
        while capacity < max(minimumCapacity, 1) { capacity <<= 1 }
        self.slots = Slots.make(capacity: capacity)
    }

    /// The header, read through its pointer: `ManagedBuffer.header` is a class property, and each access to it goes
    /// through the runtime's exclusivity checks (`swift_beginAccess`, a few percent of a work queue's instructions).
    @inlinable
    var header: Header { self.slots.withUnsafeMutablePointerToHeader { $0.pointee } }

    @inlinable
    var count: Int { self.header.count }

    @inlinable
    var isEmpty: Bool { self.header.count == 0 }

    /// The oldest element, if any.
    @inlinable
    var first: Element? {
        self.slots.withUnsafeMutablePointers { header, elements in
            header.pointee.count == 0 ? nil : elements[header.pointee.head]
        }
    }

    /// Appends `element` after the newest one, growing the storage when it is full.
    @inlinable
    mutating func append(_ element: Element) {
        let header = self.header
        if header.count == header.capacity { self.grow() }
        self.slots.withUnsafeMutablePointers { header, elements in
            let h = header.pointee
            (elements + ((h.head + h.count) & (h.capacity - 1))).initialize(to: element)
            header.pointee.count = h.count + 1
        }
    }

    /// Removes and returns the oldest element, or `nil` when empty.
    @inlinable
    mutating func popFirst() -> Element? {
        self.slots.withUnsafeMutablePointers { header, elements in
            let h = header.pointee
            guard h.count > 0 else { return nil }
            let element = (elements + h.head).move()
            header.pointee.head = (h.head + 1) & (h.capacity - 1)
            header.pointee.count = h.count - 1
            return element
        }
    }

    /// Moves up to `limit` of the oldest elements, in order, onto the end of `array`.
    @inlinable
    mutating func popFirst(upTo limit: Int, into array: inout [Element]) {
        self.slots.withUnsafeMutablePointers { header, elements in
            var h = header.pointee
            let n = min(limit, h.count)
            guard n > 0 else { return }
            // Grow geometrically: reserving exactly `count + n` would reallocate on every call for a caller that
            // keeps appending to one array.
            if array.capacity < array.count + n { array.reserveCapacity(max(array.count + n, array.capacity * 2)) }
            for _ in 0..<n {
                array.append((elements + h.head).move())
                h.head = (h.head + 1) & (h.capacity - 1)
            }
            h.count -= n
            header.pointee = h
        }
    }

    /// The element `offset` places after the oldest one. `offset` must be in `0..<count`.
    @inlinable
    subscript(offset: Int) -> Element {
        get {
            self.slots.withUnsafeMutablePointers { header, elements in
                let h = header.pointee
                precondition(offset >= 0 && offset < h.count, "RingBuffer index \(offset) out of 0..<\(h.count)")
                return elements[(h.head + offset) & (h.capacity - 1)]
            }
        }
        nonmutating set {
            self.slots.withUnsafeMutablePointers { header, elements in
                let h = header.pointee
                precondition(offset >= 0 && offset < h.count, "RingBuffer index \(offset) out of 0..<\(h.count)")
                elements[(h.head + offset) & (h.capacity - 1)] = newValue
            }
        }
    }

    /// Removes and returns the first element that matches, keeping the others in order. O(count): it is
    /// used only for cancellation, which takes a waiter out of the middle of its queue.
    @inlinable
    mutating func removeFirst(where matches: (borrowing Element) -> Bool) -> Element? {
        self.slots.withUnsafeMutablePointers { header, elements in
            let h = header.pointee
            let mask = h.capacity - 1
            var found: Int? = nil
            for offset in 0..<h.count where matches(elements[(h.head + offset) & mask]) {
                found = offset
                break
            }
            guard let offset = found else { return nil }
            if offset == 0 {
                // The oldest waiter is the usual one to be cancelled: advance the head, shift nothing.
                header.pointee.head = (h.head + 1) & mask
                header.pointee.count = h.count - 1
                return (elements + h.head).move()
            }
            let removed = (elements + ((h.head + offset) & mask)).move()
            // Close the gap by shifting the newer elements one slot towards the head.
            for index in offset..<(h.count - 1) {
                (elements + ((h.head + index) & mask)).initialize(to: (elements + ((h.head + index + 1) & mask)).move())
            }
            header.pointee.count = h.count - 1
            return removed
        }
    }

    /// Removes every element, oldest first, handing each to `body`.
    @inlinable
    mutating func drain(_ body: (consuming Element) -> Void) {
        while let element = self.popFirst() { body(element) }
    }

    /// Destroys every element.
    @inlinable
    mutating func removeAll() {
        while self.popFirst() != nil {}
    }

    @inlinable
    mutating func grow() {
        let old = self.header
        let bigger = Slots.make(capacity: old.capacity * 2)
        self.slots.withUnsafeMutablePointers { _, from in
            bigger.withUnsafeMutablePointers { header, to in
                // Move the (possibly wrapped) contents so that they start at index 0 of the new storage.
                let firstRun = min(old.count, old.capacity - old.head)
                to.moveInitialize(from: from + old.head, count: firstRun)
                (to + firstRun).moveInitialize(from: from, count: old.count - firstRun)
                header.pointee.count = old.count
            }
        }
        // Everything moved out: the old slots' deinit must destroy nothing.
        self.slots.withUnsafeMutablePointerToHeader { $0.pointee.count = 0 }
        self.slots = bigger
    }
}
