/// A single-value channel: one ``Sender`` holds the newest value, any number of ``Receiver``s watch it change.
///
/// `Watch` stores exactly one value, and every send replaces it. It is the channel for state where only the
/// newest value matters: a configuration, a health flag, the daemon's shutdown signal, the latest value of a
/// broker key (what `WATCH` serves). It needs no backpressure and its memory never grows: there is no queue,
/// only the value. Sends never wait and never fail; a value sent while no receiver exists is still stored.
///
/// ## Change notifications
///
/// The channel numbers its values. The initial value is version 0, and each send that notifies makes a new
/// version. Every receiver remembers the newest version it has **seen**:
///
/// - ``Watch/channel(_:)`` and ``Sender/subscribe()`` create receivers that have seen the current value;
///   ``Receiver/clone()`` creates one that has seen what the original has seen.
/// - ``Receiver/borrowAndUpdate()`` returns the current value and marks it seen; ``Receiver/borrow()`` only
///   returns it.
/// - ``Receiver/changed()`` returns at once if the channel holds a version the receiver has not seen, marking
///   the newest one seen; otherwise it waits for the next send.
///
/// A slow receiver does not see every value. If three sends happen while it is busy, its next `changed()`
/// returns once and ``Receiver/borrowAndUpdate()`` gives the third value. It may skip intermediate values, but
/// it always ends on the last one: that is the whole contract, and all a latest-value watcher needs.
///
/// ## changed versus hasChanged
///
/// ``Receiver/changed()`` is the waiting call: it returns for an unseen version, also after the sender is gone,
/// and throws ``RecvError/closed`` only when the sender is gone **and** the receiver has seen the last value.
/// ``Receiver/hasChanged()`` is the non-waiting question "is there something new?", marks nothing, and, as in
/// tokio, throws ``RecvError/closed`` as soon as the sender is gone, even if an unseen last value remains. Loop
/// on `changed()` to consume values; use `hasChanged()` to poll without consuming.
///
/// ## Closing
///
/// - **Sender gone.** When the last reference to the ``Sender`` goes away, the channel closes: waiting
///   `changed()` calls throw ``RecvError/closed`` (their receivers have seen the last value, or they would not
///   be waiting), and receivers that are behind get the last value first. The value stays readable through
///   ``Receiver/borrow()`` for as long as a receiver exists.
/// - **Receivers gone.** The sender counts its receivers (``Sender/receiverCount``). When the last one goes,
///   ``Sender/isClosed`` becomes true and ``Sender/closed()`` returns, but sending still works and still stores
///   the value, so that a receiver created later by ``Sender/subscribe()`` sees it.
///
/// ## Examples
///
/// ```swift
/// let (shutdown, watcher) = Watch<Bool>.channel(false)
/// for session in sessions {
///     session.run(shutdown: watcher.clone())      // each session: `try await shutdown.changed()`
/// }
/// shutdown.send(true)                              // every session wakes once
/// ```
///
/// A watcher that reports the current value at once and then every newest value:
///
/// ```swift
/// let (temperature, receiver) = Watch<Double>.channel(20.0)
/// Task {
///     for await celsius in receiver { print(celsius) }   // 20.0, then the newest after each change
/// }                                                       // ends after the last value once the sender is gone
/// temperature.send(21.5)
/// ```
public enum Watch<Value: Sendable> {
    /// Creates a watch channel holding `initial`, with one receiver that has seen it.
    ///
    /// - Parameter initial: the value the channel holds until the first send (version 0).
    /// - Returns: the sender, and a first receiver whose ``Receiver/changed()`` waits for the first send.
    ///
    /// ## Examples
    /// ```swift
    /// let (sender, receiver) = Watch<Int>.channel(0)
    /// print(receiver.borrow())                 // 0
    /// sender.send(1)
    /// try await receiver.changed()             // returns at once: version 1 is unseen
    /// ```
    @inlinable
    public static func channel(_ initial: Value) -> (sender: Sender, receiver: Receiver) {
        let storage = Storage(initial: initial)
        // The state machine starts with one receiver registered in slot 0.
        return (Sender(storage: storage), Receiver(storage: storage, slot: 0))
    }

    /// Why a receiver can wait for no more changes.
    public enum RecvError: Error, Equatable {
        /// The sender is gone: no value can change any more. ``Receiver/changed()`` throws it only after the
        /// receiver has seen the last value; ``Receiver/hasChanged()`` as soon as the sender is gone.
        case closed
    }
}
