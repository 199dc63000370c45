import SluiceIO
import SluiceWire

/// A published message as the router stores it: once, shared by every subscriber that receives it.
///
/// The payload is a ``Payload`` view: copying a `Delivery` copies references, never bytes.
struct Delivery: Sendable {
    /// The subject it was published to.
    let subject: String
    /// The publisher's headers.
    let headers: Headers
    /// The publisher's bytes.
    let payload: Payload
}

/// Who serves a subscription: enough to deliver to it directly (REQUEST) and to tell subscriptions apart.
struct Member: Sendable {
    /// The connection.
    let session: SessionID
    /// The client's subscription id on that connection.
    let subscriptionID: UInt32
    /// Where its frames go.
    let outbox: Outbox
    /// Closes the connection (a delivery the client cannot take).
    let closer: SessionCloser

    /// Whether `other` is the same subscription.
    func isSame(_ other: Member) -> Bool {
        self.session == other.session && self.subscriptionID == other.subscriptionID
    }
}

/// A connection's number, unique for the server's life.
typealias SessionID = UInt64
