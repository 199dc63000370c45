import SluiceWire
import Synchronization

/// The life of one subscription id (a SUB, a CONSUME or a WATCH) on the client side.
///
/// Every sequence and iterator of the subscription holds the handle. ``unsubscribe()`` ends it politely (UNSUB,
/// wait for OK); releasing the last reference without that forgets the route and sends UNSUB without waiting, so
/// a dropped subscription never keeps receiving (and a dropped consumer's messages go back to the queue).
final class RouteHandle: Sendable {
    /// The connection the route lives on.
    let connection: Connection
    /// The subscription id on the wire.
    let id: UInt32
    /// Closes the route's channel for sending: buffered events stay readable, the reader's pending send fails.
    private let closeChannel: @Sendable () -> Void
    /// Set by ``unsubscribe()``: the sequence then ends normally.
    private let unsubscribed = Atomic<Bool>(false)

    init(connection: Connection, id: UInt32, closeChannel: @escaping @Sendable () -> Void) {
        self.connection = connection
        self.id = id
        self.closeChannel = closeChannel
    }

    deinit {
        if !self.unsubscribed.load(ordering: .acquiring) { self.connection.abandon(self.id) }
    }

    /// Stops deliveries, then sends UNSUB and waits for its OK. Does nothing the second time.
    func unsubscribe() async throws {
        guard !self.unsubscribed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // Close first: if the reader is waiting for room in this subscription's buffer, it must not wait for a
        // consumer that has stopped reading, or the OK below could never be read.
        self.closeChannel()
        self.connection.removeRoute(self.id)
        guard !self.connection.isOver else { return }
        _ = try await self.connection.call { .unsub(Frame.Unsubscribe(requestID: $0, subscriptionID: self.id)) }
    }

    /// Called when the route's channel has ended: returns for a normal end (unsubscribed, or the client closed),
    /// throws the connection's end otherwise.
    func sequenceEnded() throws(SluiceError) {
        if self.unsubscribed.load(ordering: .acquiring) { return }
        let end = self.connection.endReason
        if case .closedByClient = end { return }
        throw .connectionClosed(end)
    }
}
