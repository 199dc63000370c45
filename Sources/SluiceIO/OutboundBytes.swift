/// Bytes a ``TCPStream`` can write without copying them first.
///
/// A write borrows the bytes (``withUnsafeBytes(_:)``) only for the length of each `sendmsg` call, and keeps the
/// value itself alive across the suspensions in between; a conforming type only has to hand out a pointer to its
/// storage. `[UInt8]` and `ArraySlice<UInt8>` conform here; other modules conform their own buffer types, e.g.
/// SluiceWire's payload:
///
/// ```swift
/// extension Payload: @retroactive OutboundBytes {}   // in a module that sees both
/// ```
///
/// Requirements: ``count`` equals the count of the buffer ``withUnsafeBytes(_:)`` passes, and the bytes do not
/// change while the value is alive (a value type, or a class that never mutates shared storage).
public protocol OutboundBytes: Sendable {
    /// The number of bytes.
    var count: Int { get }

    /// Calls `body` with the bytes; the pointer is valid only inside `body`.
    func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result
}

// The standard library's `withUnsafeBytes` on arrays is `rethrows`, which does not witness a typed-throws
// requirement; these overloads do the same thing with typed throws. They are more constrained than the standard
// library's (`Element == UInt8`), so existing calls resolve exactly as before wherever the untyped form is asked for.

extension Array: OutboundBytes where Element == UInt8 {
    /// Calls `body` with the array's bytes (typed-throws form of the standard library's `withUnsafeBytes`).
    @inlinable
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        var outcome: Swift.Result<Result, Failure>? = nil
        self.withUnsafeBufferPointer { buffer in
            outcome = Swift.Result { () throws(Failure) in try body(UnsafeRawBufferPointer(buffer)) }
        }
        return try outcome!.get()
    }
}

extension ArraySlice: OutboundBytes where Element == UInt8 {
    /// Calls `body` with the slice's bytes (typed-throws form of the standard library's `withUnsafeBytes`).
    @inlinable
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        var outcome: Swift.Result<Result, Failure>? = nil
        self.withUnsafeBufferPointer { buffer in
            outcome = Swift.Result { () throws(Failure) in try body(UnsafeRawBufferPointer(buffer)) }
        }
        return try outcome!.get()
    }
}
