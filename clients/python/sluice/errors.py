"""Sluice error codes and the exceptions that carry them.

Every error the client raises for something the protocol reports is a :class:`SluiceError` with the numeric
``code`` and its ``name`` from the table in ``docs/PROTOCOL.md``. Match on the subclass (``except NoResponders``) or
on ``code``; never on the message, which is for humans.

Codes below 100 end the connection (the sender of the ERROR closes right after it); codes from 100 up fail only the
request that carried the id. An unknown code follows the same rule, so :attr:`SluiceError.closes_connection` is
correct for codes this module has never heard of.
"""

from __future__ import annotations

import enum
from typing import Dict, Optional, Type


class ErrorCode(enum.IntEnum):
    """The stable error codes of protocol version 1 (``docs/PROTOCOL.md``, "Error codes")."""

    FRAME_TOO_LARGE = 1
    UNKNOWN_OPCODE = 2
    TRUNCATED_FIELD = 3
    INVALID_UTF8 = 4
    LENGTH_OVERRUN = 5
    TRAILING_BYTES = 6
    INVALID_FLAGS = 7
    HELLO_REQUIRED = 10
    UNSUPPORTED_VERSION = 11
    AUTHENTICATION_FAILED = 12
    UNEXPECTED_FRAME = 13
    IDLE_TIMEOUT = 14
    SLOW_CONSUMER = 15
    TOO_MANY_CONNECTIONS = 16
    SHUTTING_DOWN = 17
    BAD_SUBJECT = 100
    BAD_NAME = 101
    NOT_PERMITTED = 102
    QUEUE_FULL = 103
    NO_RESPONDERS = 104
    RESPONDER_GONE = 105
    TIMEOUT = 106
    TOO_MANY_SUBSCRIPTIONS = 107
    UNKNOWN_ID = 108
    DUPLICATE_ID = 109
    LIMIT_REACHED = 110


def error_name(code: int) -> str:
    """The name of ``code`` (``104`` → ``"NO_RESPONDERS"``), or ``"UNKNOWN_ERROR_<code>"`` for a code not in the
    table."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"UNKNOWN_ERROR_{code}"


class SluiceError(Exception):
    """An error with a Sluice error code.

    Attributes:
        code: the numeric code (``104``).
        name: its name (``"NO_RESPONDERS"``).
        message: the human-readable text the server (or the client) gave.
        request_id: the request the error answers; 0 when it belongs to no request.

    Raised as the subclass registered for the code when there is one (:class:`NoResponders`, :class:`QueueFull`, …);
    use :meth:`from_code` to build one from a received ERROR frame.
    """

    #: Set on subclasses bound to one code; ``None`` on the base class and on the multi-code bases.
    CODE: Optional[int] = None

    def __init__(self, code: int, message: str = "", request_id: int = 0) -> None:
        self.code: int = code
        self.name: str = error_name(code)
        self.message: str = message
        self.request_id: int = request_id
        super().__init__(code, message, request_id)

    @property
    def closes_connection(self) -> bool:
        """Whether this code ends the connection (codes below 100)."""
        return self.code < 100

    @staticmethod
    def from_code(code: int, message: str = "", request_id: int = 0) -> "SluiceError":
        """The exception for an ERROR frame: the subclass registered for ``code``, else a plain
        :class:`SluiceError` (or :class:`ProtocolError` for codes 1–7)."""
        cls = _BY_CODE.get(code)
        if cls is not None:
            return cls(code, message, request_id)
        if 1 <= code <= 7:
            return ProtocolError(code, message)
        return SluiceError(code, message, request_id)

    def __str__(self) -> str:
        text = f"{self.name} ({self.code})"
        if self.message:
            text += f": {self.message}"
        if self.request_id:
            text += f" [request {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, name={self.name!r}, message={self.message!r})"


class ProtocolError(SluiceError):
    """Malformed bytes (codes 1–7): what a decoder finds in a stream.

    Attributes:
        offset: the stream offset (from the first byte of the connection) of the offending byte.
        snippet: a hex dump of the bytes around it, for logs.

    Raised by :class:`sluice.codec.FrameDecoder`; when the server sends malformed bytes, the client closes the
    connection and fails its waiters with :class:`ConnectionClosed` whose ``error`` is this exception.
    """

    def __init__(self, code: int, message: str = "", offset: int = 0, snippet: str = "") -> None:
        super().__init__(code, message, 0)
        self.offset: int = offset
        self.snippet: str = snippet

    def __str__(self) -> str:
        text = f"{self.name} ({self.code}) at offset {self.offset}"
        if self.message:
            text += f": {self.message}"
        if self.snippet:
            text += f" [{self.snippet}]"
        return text

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.code, self.message, self.offset, self.snippet))


class ConnectionClosed(SluiceError):
    """The connection ended; raised by every call still waiting on it and every call made after.

    Attributes:
        reason: ``"closed"`` (the client called ``close()``), ``"goodbye"`` (the server sent GOODBYE),
            ``"error"`` (the server sent an ERROR with a code below 100, see ``error``), ``"protocol"`` (the server
            sent malformed bytes, see ``error``), ``"eof"`` (the socket closed), ``"timeout"`` (the server stayed
            silent past the idle timeout).
        error: the :class:`SluiceError` that ended the connection, when there was one.

    ``code`` and ``name`` are those of ``error`` when there is one, else ``0`` and ``"CONNECTION_CLOSED"``.
    """

    def __init__(self, reason: str, error: Optional[SluiceError] = None, detail: str = "") -> None:
        message = detail or (str(error) if error is not None else f"connection ended ({reason})")
        super().__init__(error.code if error is not None else 0, message, 0)
        if error is None:
            self.name = "CONNECTION_CLOSED"
        self.reason: str = reason
        self.error: Optional[SluiceError] = error

    @property
    def closes_connection(self) -> bool:
        return True

    def __str__(self) -> str:
        return f"connection closed ({self.reason}): {self.message}"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.reason, self.error, self.message))


# One subclass per code a caller is likely to match on. Each is still a SluiceError with `code` and `name`.


class HelloRequired(SluiceError):
    """10 HELLO_REQUIRED: the first frame was not HELLO."""

    CODE = 10


class UnsupportedVersion(SluiceError):
    """11 UNSUPPORTED_VERSION: the server does not speak the protocol version asked for."""

    CODE = 11


class AuthenticationFailed(SluiceError):
    """12 AUTHENTICATION_FAILED: HELLO's token is missing or wrong."""

    CODE = 12


class UnexpectedFrame(SluiceError):
    """13 UNEXPECTED_FRAME: a valid frame the receiving side never accepts."""

    CODE = 13


class IdleTimeout(SluiceError):
    """14 IDLE_TIMEOUT: nothing arrived for longer than the idle timeout."""

    CODE = 14


class SlowConsumer(SluiceError):
    """15 SLOW_CONSUMER: the client read too slowly and the server's outgoing buffer passed its limit."""

    CODE = 15


class TooManyConnections(SluiceError):
    """16 TOO_MANY_CONNECTIONS: the server is at its connection limit."""

    CODE = 16


class ShuttingDown(SluiceError):
    """17 SHUTTING_DOWN: the server is shutting down."""

    CODE = 17


class BadSubject(SluiceError):
    """100 BAD_SUBJECT: a subject or pattern breaks the name grammar."""

    CODE = 100


class BadName(SluiceError):
    """101 BAD_NAME: a queue, key or queue-group name breaks the grammar."""

    CODE = 101


class NotPermitted(SluiceError):
    """102 NOT_PERMITTED: the connection may not do this."""

    CODE = 102


class QueueFull(SluiceError):
    """103 QUEUE_FULL: a PUSH with ``no_wait`` found the queue full."""

    CODE = 103


class NoResponders(SluiceError):
    """104 NO_RESPONDERS: a REQUEST found nobody serving the subject."""

    CODE = 104


class ResponderGone(SluiceError):
    """105 RESPONDER_GONE: the chosen responder left before replying."""

    CODE = 105


class RequestTimeout(SluiceError):
    """106 TIMEOUT: no RESPONSE before the REQUEST's timeout."""

    CODE = 106


class TooManySubscriptions(SluiceError):
    """107 TOO_MANY_SUBSCRIPTIONS: SUB, CONSUME or WATCH past the server's ``max_subscriptions``."""

    CODE = 107


class UnknownId(SluiceError):
    """108 UNKNOWN_ID: UNSUB, ACK, NACK or REPLY named an id the server does not know (any more)."""

    CODE = 108


class DuplicateId(SluiceError):
    """109 DUPLICATE_ID: SUB, CONSUME or WATCH reused a live subscription id."""

    CODE = 109


class LimitReached(SluiceError):
    """110 LIMIT_REACHED: SET or WATCH of a new key, or PUSH or CONSUME of a new queue, past the server's limit
    on keys or queues (``--max-keys``, ``--max-queues``)."""

    CODE = 110


_BY_CODE: Dict[int, Type[SluiceError]] = {
    cls.CODE: cls
    for cls in (
        HelloRequired,
        UnsupportedVersion,
        AuthenticationFailed,
        UnexpectedFrame,
        IdleTimeout,
        SlowConsumer,
        TooManyConnections,
        ShuttingDown,
        BadSubject,
        BadName,
        NotPermitted,
        QueueFull,
        NoResponders,
        ResponderGone,
        RequestTimeout,
        TooManySubscriptions,
        UnknownId,
        DuplicateId,
        LimitReached,
    )
    if cls.CODE is not None
}
