/// A growable FIFO ring buffer: the queue behind every channel and every waiter list.
///
/// It is `~Copyable` on purpose. Channel state lives inside a `Mutex`, and a copyable buffer there would be one
/// accidental `let` binding away from a copy-on-write of the whole queue on the hot path. A noncopyable buffer
/// cannot be copied at all, so every mutation happens in place and no reference count is ever touched.
///
/// Storage is a power-of-two array addressed with a mask; it doubles when full and never shrinks below the
/// largest size it reached (channels are long-lived, and re-growing would allocate on the hot path).
struct RingBuffer<Element>: ~Copyable {
    /// The slots; `head` is the index of the oldest element, the rest follow modulo `capacity`.
    private var storage: UnsafeMutablePointer<Element>
    /// Allocated slots, always a power of two so that `index & mask` wraps.
    private var capacity: Int
    private var head = 0
    /// Number of initialized slots starting at `head`.
    private(set) var count = 0

    /// Creates an empty buffer with room for at least `minimumCapacity` elements before it grows.
    init(minimumCapacity: Int = 4) {
        var capacity = 1
        while capacity < max(minimumCapacity, 1) { capacity <<= 1 }
        self.capacity = capacity
        self.storage = .allocate(capacity: capacity)
    }

    deinit {
        // Deinitialize the (possibly wrapped) occupied run, then free the slots.
        let firstRun = min(self.count, self.capacity - self.head)
        (self.storage + self.head).deinitialize(count: firstRun)
        self.storage.deinitialize(count: self.count - firstRun)
        self.storage.deallocate()
    }

    var isEmpty: Bool { self.count == 0 }

    private var mask: Int { self.capacity - 1 }

    /// The oldest element, if any.
    var first: Element? {
        self.count == 0 ? nil : self.storage[self.head]
    }

    /// Appends `element` after the newest one, growing the storage when it is full.
    mutating func append(_ element: consuming Element) {
        if self.count == self.capacity { self.grow() }
        (self.storage + ((self.head + self.count) & self.mask)).initialize(to: element)
        self.count += 1
    }

    /// Removes and returns the oldest element, or `nil` when empty.
    mutating func popFirst() -> Element? {
        guard self.count > 0 else { return nil }
        let element = (self.storage + self.head).move()
        self.head = (self.head + 1) & self.mask
        self.count -= 1
        return element
    }

    /// Moves up to `limit` of the oldest elements, in order, onto the end of `array`.
    mutating func popFirst(upTo limit: Int, into array: inout [Element]) {
        let n = min(limit, self.count)
        guard n > 0 else { return }
        array.reserveCapacity(array.count + n)
        for _ in 0..<n {
            array.append((self.storage + self.head).move())
            self.head = (self.head + 1) & self.mask
        }
        self.count -= n
    }

    /// The element `offset` places after the oldest one. `offset` must be in `0..<count`.
    subscript(offset: Int) -> Element {
        get {
            precondition(offset >= 0 && offset < self.count, "RingBuffer index \(offset) out of 0..<\(self.count)")
            return self.storage[(self.head + offset) & self.mask]
        }
        set {
            precondition(offset >= 0 && offset < self.count, "RingBuffer index \(offset) out of 0..<\(self.count)")
            self.storage[(self.head + offset) & self.mask] = newValue
        }
    }

    /// Removes and returns the first element that matches, keeping the others in order. O(count): it is
    /// used only for cancellation, which takes a waiter out of the middle of its queue.
    mutating func removeFirst(where matches: (borrowing Element) -> Bool) -> Element? {
        var found: Int? = nil
        for offset in 0..<self.count where matches(self.storage[(self.head + offset) & self.mask]) {
            found = offset
            break
        }
        guard let offset = found else { return nil }
        let removed = (self.storage + ((self.head + offset) & self.mask)).move()
        // Close the gap by shifting the newer elements one slot towards the head.
        for index in offset..<(self.count - 1) {
            let from = (self.head + index + 1) & self.mask
            let to = (self.head + index) & self.mask
            (self.storage + to).initialize(to: (self.storage + from).move())
        }
        self.count -= 1
        return removed
    }

    /// Removes every element, oldest first, handing each to `body`.
    mutating func drain(_ body: (consuming Element) -> Void) {
        while let element = self.popFirst() { body(element) }
    }

    /// Destroys every element.
    mutating func removeAll() {
        while self.count > 0 {
            (self.storage + self.head).deinitialize(count: 1)
            self.head = (self.head + 1) & self.mask
            self.count -= 1
        }
        self.head = 0
    }

    private mutating func grow() {
        let newCapacity = self.capacity * 2
        let newStorage = UnsafeMutablePointer<Element>.allocate(capacity: newCapacity)
        // Move the (possibly wrapped) contents so that they start at index 0 of the new storage.
        let firstRun = min(self.count, self.capacity - self.head)
        (newStorage).moveInitialize(from: self.storage + self.head, count: firstRun)
        (newStorage + firstRun).moveInitialize(from: self.storage, count: self.count - firstRun)
        self.storage.deallocate()
        self.storage = newStorage
        self.capacity = newCapacity
        self.head = 0
    }
}
