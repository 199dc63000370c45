"""The Sluice wire format, version 1: one dataclass per frame, an encoder and an incremental decoder.

Written from ``docs/PROTOCOL.md``. Pure: bytes in, frames out, no I/O. A frame on the wire is a ``u32`` big-endian
``length`` (the bytes after it), a one-byte opcode and the opcode's fields::

    >>> encode(Ping()).hex()
    '0000000103'
    >>> decoder = FrameDecoder()
    >>> decoder.feed(bytes.fromhex("000000050500000007"))
    >>> list(decoder)
    [Ok(request_id=7)]

Decoding is strict, so every frame has exactly one encoding and ``encode(decode(b)) == b``. Malformed input raises
:class:`~sluice.errors.ProtocolError` with one of the codes 1–7 and the stream offset of the offending byte.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar, Dict, Iterable, Iterator, List, Optional, Tuple, Type, Union

from .errors import ErrorCode, ProtocolError

PROTOCOL_VERSION = 1
"""The protocol version this codec speaks."""

DEFAULT_MAX_FRAME_SIZE = 1 << 20
"""The server's default ``max_frame_size`` (1 MiB), the largest ``length`` value it accepts."""

DELIVERY_OVERHEAD = 64
"""A server frame may be this much longer than the server's ``max_frame_size`` (PROTOCOL.md, "Framing")."""

Headers = Tuple[Tuple[str, str], ...]
"""Message headers: ``(name, value)`` pairs in order; names may repeat."""

HeadersInput = Union[Headers, Iterable[Tuple[str, str]], "Dict[str, str]", None]
"""What the client API accepts as headers: a mapping, an iterable of pairs, or ``None`` for none."""

_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFF_FFFF
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


class Opcode(enum.IntEnum):
    """Frame opcodes (PROTOCOL.md, "Opcodes")."""

    HELLO = 0x01
    WELCOME = 0x02
    PING = 0x03
    PONG = 0x04
    OK = 0x05
    ERROR = 0x06
    GOODBYE = 0x07
    STATS = 0x08
    STATS_REPLY = 0x09
    PUB = 0x10
    SUB = 0x11
    UNSUB = 0x12
    MSG = 0x13
    LAGGED = 0x14
    PUSH = 0x20
    CONSUME = 0x21
    ACK = 0x22
    NACK = 0x23
    SET = 0x30
    GET = 0x31
    WATCH = 0x32
    VALUE = 0x33
    REQUEST = 0x40
    REPLY = 0x41
    RESPONSE = 0x42


def normalize_headers(headers: HeadersInput) -> Headers:
    """``headers`` as a tuple of ``(name, value)`` string pairs (a mapping keeps its iteration order)."""
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, dict) else headers
    result = tuple((str(name), str(value)) for name, value in items)
    return result


# ----------------------------------------------------------------------------------------------------------------
# Field writing


def _check_int(value: int, maximum: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise ValueError(f"{what} must be an integer in 0...{maximum}, got {value!r}")
    return value


class _Writer:
    """Appends fields to a frame body."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = bytearray()

    def u8(self, value: int, what: str) -> None:
        self.out.append(_check_int(value, 0xFF, what))

    def u16(self, value: int, what: str) -> None:
        self.out += struct.pack(">H", _check_int(value, _U16_MAX, what))

    def u32(self, value: int, what: str) -> None:
        self.out += struct.pack(">I", _check_int(value, _U32_MAX, what))

    def u64(self, value: int, what: str) -> None:
        self.out += struct.pack(">Q", _check_int(value, _U64_MAX, what))

    def string(self, value: str, what: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"{what} must be a str, got {type(value).__name__}")
        data = value.encode("utf-8")  # raises UnicodeEncodeError for lone surrogates: they are not UTF-8
        if len(data) > _U16_MAX:
            raise ValueError(f"{what} is {len(data)} bytes of UTF-8; a string field holds at most {_U16_MAX}")
        self.out += struct.pack(">H", len(data))
        self.out += data

    def headers(self, headers: Headers) -> None:
        if len(headers) > _U16_MAX:
            raise ValueError(f"{len(headers)} headers; a frame holds at most {_U16_MAX}")
        self.out += struct.pack(">H", len(headers))
        for name, value in headers:
            self.string(name, "header name")
            self.string(value, "header value")

    def payload(self, payload: bytes) -> None:
        self.out += payload


# ----------------------------------------------------------------------------------------------------------------
# Field reading


def _snippet(data: bytes, at: int) -> str:
    """Hex of up to 8 bytes either side of ``at`` (an index into ``data``), the offending byte in brackets."""
    start = max(0, at - 8)
    parts = []
    for index in range(start, min(len(data), at + 9)):
        text = f"{data[index]:02x}"
        parts.append(f"[{text}]" if index == at else text)
    if at >= len(data):
        parts.append("[]")
    return " ".join(parts)


class _Reader:
    """Reads fields front to back from one frame's bytes, checking before each that enough bytes are left.

    ``frame`` holds the whole frame including its length field; ``base`` is the stream offset of ``frame[0]``, so
    errors carry stream offsets.
    """

    __slots__ = ("frame", "pos", "base")

    def __init__(self, frame: bytes, base: int) -> None:
        self.frame = frame
        self.pos = 5  # after the length field and the opcode
        self.base = base

    def fail(self, code: ErrorCode, at: int, detail: str) -> ProtocolError:
        return ProtocolError(int(code), detail, self.base + at, _snippet(self.frame, at))

    def _take(self, size: int, what: str) -> int:
        at = self.pos
        if len(self.frame) - at < size:
            raise self.fail(
                ErrorCode.TRUNCATED_FIELD, at, f"{what} needs {size} bytes, {len(self.frame) - at} left in the frame"
            )
        self.pos = at + size
        return at

    def u8(self, what: str) -> int:
        return self.frame[self._take(1, what)]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.frame[self._take(2, what) : self.pos], "big")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.frame[self._take(4, what) : self.pos], "big")

    def u64(self, what: str) -> int:
        return int.from_bytes(self.frame[self._take(8, what) : self.pos], "big")

    def flags(self, allowed: int, what: str) -> int:
        at = self._take(1, what)
        value = self.frame[at]
        if value & ~allowed:
            raise self.fail(ErrorCode.INVALID_FLAGS, at, f"{what} 0x{value:02x} sets reserved bits")
        return value

    def string(self, what: str) -> str:
        length_at = self._take(2, f"{what} length")
        length = int.from_bytes(self.frame[length_at : self.pos], "big")
        left = len(self.frame) - self.pos
        if length > left:
            raise self.fail(
                ErrorCode.LENGTH_OVERRUN, length_at, f"{what} length {length}, {left} bytes left in the frame"
            )
        start = self.pos
        self.pos = start + length
        try:
            return self.frame[start : self.pos].decode("utf-8")
        except UnicodeDecodeError as error:
            raise self.fail(ErrorCode.INVALID_UTF8, start + error.start, f"{what} is not valid UTF-8") from None

    def headers(self) -> Headers:
        count_at = self._take(2, "header count")
        count = int.from_bytes(self.frame[count_at : self.pos], "big")
        left = len(self.frame) - self.pos
        # Each pair is at least two empty strings (4 bytes): a count that cannot fit is refused at the count.
        if count * 4 > left:
            raise self.fail(
                ErrorCode.LENGTH_OVERRUN, count_at, f"header count {count} needs at least {count * 4} bytes, {left} left"
            )
        return tuple((self.string("header name"), self.string("header value")) for _ in range(count))

    def payload(self) -> bytes:
        data = self.frame[self.pos :]
        self.pos = len(self.frame)
        return data

    def end(self) -> None:
        if self.pos != len(self.frame):
            raise self.fail(
                ErrorCode.TRAILING_BYTES, self.pos, f"{len(self.frame) - self.pos} bytes after the frame's last field"
            )


# ----------------------------------------------------------------------------------------------------------------
# Frames


class Frame:
    """Base class of every frame. ``OPCODE`` names the frame; :func:`encode` and :class:`FrameDecoder` convert."""

    OPCODE: ClassVar[Opcode]

    def _write(self, w: _Writer) -> None:
        raise NotImplementedError

    @classmethod
    def _read(cls, r: _Reader) -> "Frame":
        raise NotImplementedError


@dataclass(frozen=True)
class Hello(Frame):
    """HELLO (client, 0x01): the first frame. ``token`` is sent when not ``None`` (flag ``HAS_TOKEN``)."""

    OPCODE: ClassVar[Opcode] = Opcode.HELLO
    version: int = PROTOCOL_VERSION
    client_name: str = ""
    token: Optional[str] = None

    def _write(self, w: _Writer) -> None:
        w.u16(self.version, "version")
        w.u8(0x01 if self.token is not None else 0, "flags")
        w.string(self.client_name, "client_name")
        if self.token is not None:
            w.string(self.token, "token")

    @classmethod
    def _read(cls, r: _Reader) -> "Hello":
        version = r.u16("version")
        flags = r.flags(0x01, "HELLO flags")
        name = r.string("client_name")
        token = r.string("token") if flags & 0x01 else None
        r.end()
        return cls(version, name, token)


@dataclass(frozen=True)
class Welcome(Frame):
    """WELCOME (server, 0x02): the handshake succeeded; the server's limits."""

    OPCODE: ClassVar[Opcode] = Opcode.WELCOME
    version: int
    max_frame_size: int
    idle_timeout_ms: int
    max_inflight_requests: int
    max_subscriptions: int
    server_name: str

    def _write(self, w: _Writer) -> None:
        w.u16(self.version, "version")
        w.u32(self.max_frame_size, "max_frame_size")
        w.u32(self.idle_timeout_ms, "idle_timeout_ms")
        w.u32(self.max_inflight_requests, "max_inflight_requests")
        w.u32(self.max_subscriptions, "max_subscriptions")
        w.string(self.server_name, "server_name")

    @classmethod
    def _read(cls, r: _Reader) -> "Welcome":
        frame = cls(
            r.u16("version"),
            r.u32("max_frame_size"),
            r.u32("idle_timeout_ms"),
            r.u32("max_inflight_requests"),
            r.u32("max_subscriptions"),
            r.string("server_name"),
        )
        r.end()
        return frame


@dataclass(frozen=True)
class _Empty(Frame):
    def _write(self, w: _Writer) -> None:
        pass

    @classmethod
    def _read(cls, r: _Reader) -> "_Empty":
        r.end()
        return cls()


@dataclass(frozen=True)
class Ping(_Empty):
    """PING (either side, 0x03): the other side answers PONG."""

    OPCODE: ClassVar[Opcode] = Opcode.PING


@dataclass(frozen=True)
class Pong(_Empty):
    """PONG (either side, 0x04): the answer to PING."""

    OPCODE: ClassVar[Opcode] = Opcode.PONG


@dataclass(frozen=True)
class Goodbye(_Empty):
    """GOODBYE (either side, 0x07): the sender will send no more frames."""

    OPCODE: ClassVar[Opcode] = Opcode.GOODBYE


@dataclass(frozen=True)
class _RequestIdOnly(Frame):
    request_id: int

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")

    @classmethod
    def _read(cls, r: _Reader) -> "_RequestIdOnly":
        frame = cls(r.u32("request_id"))
        r.end()
        return frame


@dataclass(frozen=True)
class Ok(_RequestIdOnly):
    """OK (server, 0x05): the request with this id succeeded."""

    OPCODE: ClassVar[Opcode] = Opcode.OK


@dataclass(frozen=True)
class Stats(_RequestIdOnly):
    """STATS (client, 0x08): ask for the server's counters."""

    OPCODE: ClassVar[Opcode] = Opcode.STATS


@dataclass(frozen=True)
class Error(Frame):
    """ERROR (server, 0x06): ``request_id`` 0 when it belongs to no request; codes below 100 close the
    connection."""

    OPCODE: ClassVar[Opcode] = Opcode.ERROR
    request_id: int
    code: int
    message: str = ""

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.u16(self.code, "code")
        w.string(self.message, "message")

    @classmethod
    def _read(cls, r: _Reader) -> "Error":
        frame = cls(r.u32("request_id"), r.u16("code"), r.string("message"))
        r.end()
        return frame


@dataclass(frozen=True)
class StatsReply(Frame):
    """STATS_REPLY (server, 0x09): ``(name, value)`` counters in the server's order."""

    OPCODE: ClassVar[Opcode] = Opcode.STATS_REPLY
    request_id: int
    entries: Tuple[Tuple[str, int], ...] = ()

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.u16(len(self.entries), "stats count")
        for name, value in self.entries:
            w.string(name, "stats name")
            w.u64(value, "stats value")

    @classmethod
    def _read(cls, r: _Reader) -> "StatsReply":
        request_id = r.u32("request_id")
        count_at = r._take(2, "stats count")
        count = int.from_bytes(r.frame[count_at : r.pos], "big")
        left = len(r.frame) - r.pos
        # Each entry is at least an empty name and a u64 (10 bytes).
        if count * 10 > left:
            raise r.fail(
                ErrorCode.LENGTH_OVERRUN, count_at, f"stats count {count} needs at least {count * 10} bytes, {left} left"
            )
        entries = tuple((r.string("stats name"), r.u64("stats value")) for _ in range(count))
        r.end()
        return cls(request_id, entries)


@dataclass(frozen=True)
class Pub(Frame):
    """PUB (client, 0x10): publish to a subject; flag ``ACK_WANTED`` asks for OK."""

    OPCODE: ClassVar[Opcode] = Opcode.PUB
    request_id: int
    subject: str
    headers: Headers = ()
    payload: bytes = b""
    ack_wanted: bool = False

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.u8(0x01 if self.ack_wanted else 0, "flags")
        w.string(self.subject, "subject")
        w.headers(self.headers)
        w.payload(self.payload)

    @classmethod
    def _read(cls, r: _Reader) -> "Pub":
        request_id = r.u32("request_id")
        flags = r.flags(0x01, "PUB flags")
        return cls(request_id, r.string("subject"), r.headers(), r.payload(), bool(flags & 0x01))


@dataclass(frozen=True)
class Sub(Frame):
    """SUB (client, 0x11): subscribe ``subscription_id`` to ``pattern``, optionally in a queue group."""

    OPCODE: ClassVar[Opcode] = Opcode.SUB
    request_id: int
    subscription_id: int
    pattern: str
    queue_group: Optional[str] = None

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.u8(0x01 if self.queue_group is not None else 0, "flags")
        w.u32(self.subscription_id, "subscription_id")
        w.string(self.pattern, "pattern")
        if self.queue_group is not None:
            w.string(self.queue_group, "queue_group")

    @classmethod
    def _read(cls, r: _Reader) -> "Sub":
        request_id = r.u32("request_id")
        flags = r.flags(0x01, "SUB flags")
        subscription_id = r.u32("subscription_id")
        pattern = r.string("pattern")
        group = r.string("queue_group") if flags & 0x01 else None
        r.end()
        return cls(request_id, subscription_id, pattern, group)


@dataclass(frozen=True)
class Unsub(Frame):
    """UNSUB (client, 0x12): end a subscription, consumer or watch."""

    OPCODE: ClassVar[Opcode] = Opcode.UNSUB
    request_id: int
    subscription_id: int

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.u32(self.subscription_id, "subscription_id")

    @classmethod
    def _read(cls, r: _Reader) -> "Unsub":
        frame = cls(r.u32("request_id"), r.u32("subscription_id"))
        r.end()
        return frame


class MsgKind(str, enum.Enum):
    """The three kinds of MSG, named as in ``wire-vectors.json``'s ``delivery`` field."""

    SUBJECT = "subject"
    """flags 0: a PUB delivered to a subscriber."""
    QUEUE = "queue"
    """flag QUEUE (REDELIVERED optional): a PUSH delivered to a consumer, with a ``delivery_id``."""
    REQUEST = "request"
    """flag REQUEST: a REQUEST delivered to a responder, with a ``reply_id``."""


_MSG_FLAGS = {0x00: (MsgKind.SUBJECT, False), 0x02: (MsgKind.QUEUE, False), 0x03: (MsgKind.QUEUE, True),
              0x04: (MsgKind.REQUEST, False)}


@dataclass(frozen=True)
class Msg(Frame):
    """MSG (server, 0x13): a delivery to ``subscription_id``.

    ``id`` is the delivery id (``kind`` QUEUE) or the reply id (``kind`` REQUEST), ``None`` for SUBJECT;
    ``redelivered`` only ever with QUEUE.
    """

    OPCODE: ClassVar[Opcode] = Opcode.MSG
    subscription_id: int
    kind: MsgKind
    subject: str
    headers: Headers = ()
    payload: bytes = b""
    id: Optional[int] = None
    redelivered: bool = False

    def _write(self, w: _Writer) -> None:
        w.u32(self.subscription_id, "subscription_id")
        if self.kind == MsgKind.SUBJECT:
            if self.id is not None or self.redelivered:
                raise ValueError("a subject MSG has no id and is never redelivered")
            w.u8(0x00, "flags")
        else:
            if self.id is None:
                raise ValueError(f"a {self.kind.value} MSG needs an id")
            if self.redelivered and self.kind != MsgKind.QUEUE:
                raise ValueError("only a queue MSG can be redelivered")
            w.u8(0x04 if self.kind == MsgKind.REQUEST else (0x03 if self.redelivered else 0x02), "flags")
            w.u64(self.id, "delivery_id" if self.kind == MsgKind.QUEUE else "reply_id")
        w.string(self.subject, "subject")
        w.headers(self.headers)
        w.payload(self.payload)

    @classmethod
    def _read(cls, r: _Reader) -> "Msg":
        subscription_id = r.u32("subscription_id")
        flags_at = r._take(1, "MSG flags")
        flags = r.frame[flags_at]
        if flags not in _MSG_FLAGS:
            raise r.fail(ErrorCode.INVALID_FLAGS, flags_at, f"MSG flags 0x{flags:02x} are not 0x00, 0x02, 0x03 or 0x04")
        kind, redelivered = _MSG_FLAGS[flags]
        id_ = r.u64("delivery_id" if kind == MsgKind.QUEUE else "reply_id") if kind != MsgKind.SUBJECT else None
        return cls(subscription_id, kind, r.string("subject"), r.headers(), r.payload(), id_, redelivered)


@dataclass(frozen=True)
class Lagged(Frame):
    """LAGGED (server, 0x14): the subscription missed exactly ``missed`` messages."""

    OPCODE: ClassVar[Opcode] = Opcode.LAGGED
    subscription_id: int
    missed: int

    def _write(self, w: _Writer) -> None:
        w.u32(self.subscription_id, "subscription_id")
        w.u64(self.missed, "missed")

    @classmethod
    def _read(cls, r: _Reader) -> "Lagged":
        frame = cls(r.u32("subscription_id"), r.u64("missed"))
        r.end()
        return frame


@dataclass(frozen=True)
class Push(Frame):
    """PUSH (client, 0x20): put a message on a work queue; flags ``ACK_WANTED`` and ``NO_WAIT``."""

    OPCODE: ClassVar[Opcode] = Opcode.PUSH
    request_id: int
    queue: str
    headers: Headers = ()
    payload: bytes = b""
    ack_wanted: bool = False
    no_wait: bool = False

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.u8((0x01 if self.ack_wanted else 0) | (0x02 if self.no_wait else 0), "flags")
        w.string(self.queue, "queue")
        w.headers(self.headers)
        w.payload(self.payload)

    @classmethod
    def _read(cls, r: _Reader) -> "Push":
        request_id = r.u32("request_id")
        flags = r.flags(0x03, "PUSH flags")
        return cls(request_id, r.string("queue"), r.headers(), r.payload(), bool(flags & 0x01), bool(flags & 0x02))


@dataclass(frozen=True)
class Consume(Frame):
    """CONSUME (client, 0x21): consume ``queue`` with ``credit`` unsettled messages at most (again: new credit)."""

    OPCODE: ClassVar[Opcode] = Opcode.CONSUME
    request_id: int
    subscription_id: int
    credit: int
    queue: str

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.u32(self.subscription_id, "subscription_id")
        w.u32(self.credit, "credit")
        w.string(self.queue, "queue")

    @classmethod
    def _read(cls, r: _Reader) -> "Consume":
        frame = cls(r.u32("request_id"), r.u32("subscription_id"), r.u32("credit"), r.string("queue"))
        r.end()
        return frame


@dataclass(frozen=True)
class _Settle(Frame):
    request_id: int
    delivery_id: int
    ack_wanted: bool = False

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.u8(0x01 if self.ack_wanted else 0, "flags")
        w.u64(self.delivery_id, "delivery_id")

    @classmethod
    def _read(cls, r: _Reader) -> "_Settle":
        request_id = r.u32("request_id")
        flags = r.flags(0x01, f"{cls.OPCODE.name} flags")
        frame = cls(request_id, r.u64("delivery_id"), bool(flags & 0x01))
        r.end()
        return frame


@dataclass(frozen=True)
class Ack(_Settle):
    """ACK (client, 0x22): settle a queue delivery for good."""

    OPCODE: ClassVar[Opcode] = Opcode.ACK


@dataclass(frozen=True)
class Nack(_Settle):
    """NACK (client, 0x23): put a queue delivery back, to be delivered again."""

    OPCODE: ClassVar[Opcode] = Opcode.NACK


@dataclass(frozen=True)
class Set(Frame):
    """SET (client, 0x30): store a key's value (headers and payload)."""

    OPCODE: ClassVar[Opcode] = Opcode.SET
    request_id: int
    key: str
    headers: Headers = ()
    payload: bytes = b""
    ack_wanted: bool = False

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.u8(0x01 if self.ack_wanted else 0, "flags")
        w.string(self.key, "key")
        w.headers(self.headers)
        w.payload(self.payload)

    @classmethod
    def _read(cls, r: _Reader) -> "Set":
        request_id = r.u32("request_id")
        flags = r.flags(0x01, "SET flags")
        return cls(request_id, r.string("key"), r.headers(), r.payload(), bool(flags & 0x01))


@dataclass(frozen=True)
class Get(Frame):
    """GET (client, 0x31): read a key's value; answered with VALUE."""

    OPCODE: ClassVar[Opcode] = Opcode.GET
    request_id: int
    key: str

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.string(self.key, "key")

    @classmethod
    def _read(cls, r: _Reader) -> "Get":
        frame = cls(r.u32("request_id"), r.string("key"))
        r.end()
        return frame


@dataclass(frozen=True)
class Watch(Frame):
    """WATCH (client, 0x32): receive a key's current value, then every newer one, under ``subscription_id``."""

    OPCODE: ClassVar[Opcode] = Opcode.WATCH
    request_id: int
    subscription_id: int
    key: str

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.u32(self.subscription_id, "subscription_id")
        w.string(self.key, "key")

    @classmethod
    def _read(cls, r: _Reader) -> "Watch":
        frame = cls(r.u32("request_id"), r.u32("subscription_id"), r.string("key"))
        r.end()
        return frame


@dataclass(frozen=True)
class Value(Frame):
    """VALUE (server, 0x33): a key's value. With ``watch`` (flag WATCH) ``id`` is the watch's subscription id,
    without it the GET's request id. ``revision`` 0 means the key has no value."""

    OPCODE: ClassVar[Opcode] = Opcode.VALUE
    id: int
    watch: bool
    revision: int
    key: str
    headers: Headers = ()
    payload: bytes = b""

    def _write(self, w: _Writer) -> None:
        w.u32(self.id, "id")
        w.u8(0x01 if self.watch else 0, "flags")
        w.u64(self.revision, "revision")
        w.string(self.key, "key")
        w.headers(self.headers)
        w.payload(self.payload)

    @classmethod
    def _read(cls, r: _Reader) -> "Value":
        id_ = r.u32("id")
        flags = r.flags(0x01, "VALUE flags")
        return cls(id_, bool(flags & 0x01), r.u64("revision"), r.string("key"), r.headers(), r.payload())


@dataclass(frozen=True)
class Request(Frame):
    """REQUEST (client, 0x40): ask one responder of ``subject``; ``timeout_ms`` 0 = the server's default."""

    OPCODE: ClassVar[Opcode] = Opcode.REQUEST
    request_id: int
    timeout_ms: int
    subject: str
    headers: Headers = ()
    payload: bytes = b""

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.u32(self.timeout_ms, "timeout_ms")
        w.string(self.subject, "subject")
        w.headers(self.headers)
        w.payload(self.payload)

    @classmethod
    def _read(cls, r: _Reader) -> "Request":
        return cls(r.u32("request_id"), r.u32("timeout_ms"), r.string("subject"), r.headers(), r.payload())


@dataclass(frozen=True)
class Reply(Frame):
    """REPLY (client, 0x41): a responder's answer to the request MSG with ``reply_id``."""

    OPCODE: ClassVar[Opcode] = Opcode.REPLY
    request_id: int
    reply_id: int
    headers: Headers = ()
    payload: bytes = b""
    ack_wanted: bool = False

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.u8(0x01 if self.ack_wanted else 0, "flags")
        w.u64(self.reply_id, "reply_id")
        w.headers(self.headers)
        w.payload(self.payload)

    @classmethod
    def _read(cls, r: _Reader) -> "Reply":
        request_id = r.u32("request_id")
        flags = r.flags(0x01, "REPLY flags")
        return cls(request_id, r.u64("reply_id"), r.headers(), r.payload(), bool(flags & 0x01))


@dataclass(frozen=True)
class Response(Frame):
    """RESPONSE (server, 0x42): the responder's headers and payload, for the REQUEST with ``request_id``."""

    OPCODE: ClassVar[Opcode] = Opcode.RESPONSE
    request_id: int
    headers: Headers = ()
    payload: bytes = b""

    def _write(self, w: _Writer) -> None:
        w.u32(self.request_id, "request_id")
        w.headers(self.headers)
        w.payload(self.payload)

    @classmethod
    def _read(cls, r: _Reader) -> "Response":
        return cls(r.u32("request_id"), r.headers(), r.payload())


FRAME_TYPES: Dict[int, Type[Frame]] = {
    cls.OPCODE: cls
    for cls in (Hello, Welcome, Ping, Pong, Ok, Error, Goodbye, Stats, StatsReply, Pub, Sub, Unsub, Msg, Lagged,
                Push, Consume, Ack, Nack, Set, Get, Watch, Value, Request, Reply, Response)
}
"""Opcode → frame class, for every opcode of protocol version 1."""

CLIENT_FRAMES = frozenset({Hello, Ping, Pong, Goodbye, Stats, Pub, Sub, Unsub, Push, Consume, Ack, Nack, Set, Get,
                           Watch, Request, Reply})
"""Frames a client may send (PING, PONG and GOODBYE go both ways)."""

SERVER_FRAMES = frozenset({Welcome, Ping, Pong, Ok, Error, Goodbye, StatsReply, Msg, Lagged, Value, Response})
"""Frames a server may send."""


# ----------------------------------------------------------------------------------------------------------------
# Encoding and decoding


def encode(frame: Frame) -> bytes:
    """The bytes of ``frame``: length, opcode, fields.

    Raises ``ValueError`` (or ``TypeError``) when a field does not fit its wire type: an integer out of range, a
    string over 65,535 bytes of UTF-8, more than 65,535 headers, invalid MSG id/flag combinations. The frame size is
    not checked against any limit here; the client checks it against the server's ``max_frame_size``.
    """
    w = _Writer()
    w.out += b"\x00\x00\x00\x00"
    w.out.append(frame.OPCODE)
    frame._write(w)
    length = len(w.out) - 4
    if length > _U32_MAX:
        raise ValueError(f"frame of {length} bytes does not fit a u32 length")
    w.out[0:4] = struct.pack(">I", length)
    return bytes(w.out)


def decode(data: bytes, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> Frame:
    """Decode exactly one whole frame from ``data``.

    Raises :class:`~sluice.errors.ProtocolError` for malformed bytes, and ``ValueError`` if ``data`` holds less or
    more than one frame.
    """
    decoder = FrameDecoder(max_frame_size)
    decoder.feed(data)
    frame = decoder.next_frame()
    if frame is None:
        raise ValueError(f"{len(data)} bytes are not a whole frame")
    if decoder.buffered:
        raise ValueError(f"{decoder.buffered} bytes follow the frame")
    return frame


class FrameDecoder:
    """An incremental decoder: feed it bytes as they arrive, take frames out as they complete.

    Frames may be split at any byte and several may arrive at once. A ``length`` over ``max_frame_size`` is refused
    as soon as its four bytes are buffered (``FRAME_TOO_LARGE``), without waiting for the announced bytes.

    Errors raise :class:`~sluice.errors.ProtocolError` with the stream offset of the offending byte counted from the
    first byte ever fed. After an error the decoder is finished: every later :meth:`next_frame` raises the same
    error (a malformed frame ends the connection).

    Example::

        decoder = FrameDecoder(max_frame_size=welcome.max_frame_size + DELIVERY_OVERHEAD)
        while data := sock.recv(65536):
            decoder.feed(data)
            for frame in decoder:
                handle(frame)
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        #: The largest ``length`` value accepted; may be changed between frames (e.g. after WELCOME).
        self.max_frame_size: int = max_frame_size
        self._buffer = bytearray()
        self._offset = 0  # stream offset of self._buffer[0]
        self._error: Optional[ProtocolError] = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buffer)

    @property
    def offset(self) -> int:
        """The stream offset of the next byte not yet consumed as part of a frame."""
        return self._offset

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Append received bytes. Cheap; decoding happens in :meth:`next_frame`."""
        self._buffer += data

    def next_frame(self) -> Optional[Frame]:
        """The next complete frame, or ``None`` if more bytes are needed.

        Raises :class:`~sluice.errors.ProtocolError` (codes 1–7) for malformed input.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        if len(buffer) < 4:
            return None
        length = int.from_bytes(buffer[0:4], "big")
        if length > self.max_frame_size:
            self._error = ProtocolError(
                int(ErrorCode.FRAME_TOO_LARGE),
                f"length {length} is over the maximum frame size {self.max_frame_size}",
                self._offset,
                _snippet(bytes(buffer[:8]), 0),
            )
            raise self._error
        if length == 0:
            self._error = ProtocolError(
                int(ErrorCode.TRUNCATED_FIELD), "length 0: a frame has at least an opcode", self._offset,
                _snippet(bytes(buffer[:8]), 0),
            )
            raise self._error
        if len(buffer) < 4 + length:
            return None
        frame_bytes = bytes(buffer[: 4 + length])
        reader = _Reader(frame_bytes, self._offset)
        cls = FRAME_TYPES.get(frame_bytes[4])
        try:
            if cls is None:
                raise reader.fail(ErrorCode.UNKNOWN_OPCODE, 4, f"opcode 0x{frame_bytes[4]:02x} names no frame")
            frame = cls._read(reader)
        except ProtocolError as error:
            self._error = error
            raise
        del buffer[: 4 + length]
        self._offset += 4 + length
        return frame

    def __iter__(self) -> Iterator[Frame]:
        """Every complete frame buffered now (stops when more bytes are needed)."""
        while True:
            frame = self.next_frame()
            if frame is None:
                return
            yield frame

    def decode_all(self) -> List[Frame]:
        """All complete frames buffered now, as a list."""
        return list(self)
