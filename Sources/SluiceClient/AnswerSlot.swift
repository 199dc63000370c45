import SluiceChannels
import SluiceWire
import Synchronization

/// What a waiting call gets: the frame that answered it (OK, ERROR, VALUE, STATS_REPLY, RESPONSE, PONG,
/// WELCOME), or why no answer will come.
typealias Answer = Result<Frame, SluiceError>

/// One waiting call's reply slot: a `Oneshot` whose sender the reader task (or the connection's end, or a
/// request's backstop timer) fires once.
///
/// The `Oneshot.Sender` is noncopyable, so it cannot sit in the connection's dictionary of waiters directly; this
/// class owns it behind a `Mutex` and the first ``resolve(_:)`` takes it, so any later one does nothing. That makes
/// the three possible resolvers (answer, connection end, timeout) race safely.
final class AnswerSlot: Sendable {
    /// The sending half until the first ``resolve(_:)`` takes it.
    private let sender: Locked<Oneshot<Answer>.Sender?>
    /// The caller awaits this.
    private let receiver: Oneshot<Answer>.Receiver

    init() {
        let channel = Oneshot<Answer>.channel()
        self.receiver = channel.receiver
        self.sender = Locked(channel.sender)
    }

    /// Delivers `answer` if nothing was delivered yet; otherwise does nothing.
    func resolve(_ answer: Answer) {
        let taken = self.sender.withLock { $0.take() }
        if let sender = taken {
            try? sender.send(answer)  // fails only if the caller stopped waiting: nothing to do then
        }
    }

    /// Waits for the answer.
    ///
    /// ## Errors
    /// `CancellationError` if the waiting task is cancelled; the answer, if it comes later, is dropped.
    func value() async throws(CancellationError) -> Answer {
        do {
            return try await self.receiver.value()
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // `senderDropped` cannot happen (the slot owns the sender until it sends), but never trap on it.
            return .failure(.connectionClosed(.failure("the answer was lost")))
        }
    }
}
