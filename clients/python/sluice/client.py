"""The asyncio Sluice client.

One :class:`Client` is one TCP connection. A single reader task decodes every frame the server sends and routes it:
OK, ERROR, VALUE (GET), STATS_REPLY and RESPONSE to the future waiting for that request id; MSG, LAGGED and VALUE
(WATCH) to the subscription with that subscription id; PING is answered with PONG. GOODBYE, an ERROR with a code
below 100, malformed bytes or the end of the socket end the connection: every waiter fails with
:class:`~sluice.errors.ConnectionClosed`.

Example::

    async with await sluice.connect("127.0.0.1", 7420) as client:
        sub = await client.subscribe("orders.*")
        await client.publish("orders.new", b"hello")
        async for event in sub:
            if isinstance(event, sluice.Lagged):
                print("missed", event.missed)
            else:
                print(event.subject, event.payload)
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from dataclasses import dataclass, field
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Deque,
    Dict,
    Generic,
    List,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

from . import codec
from .codec import DELIVERY_OVERHEAD, DEFAULT_MAX_FRAME_SIZE, Headers, HeadersInput, MsgKind, normalize_headers
from .errors import ConnectionClosed, ProtocolError, SluiceError, UnexpectedFrame, UnsupportedVersion

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Client",
    "Consumer",
    "Delivery",
    "Lagged",
    "Message",
    "Payload",
    "Request",
    "Response",
    "Service",
    "Subscription",
    "Value",
    "Watcher",
    "connect",
    "parse_server",
]

logger = logging.getLogger("sluice")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7420

Payload = Union[bytes, bytearray, memoryview, str]
"""What the API accepts as a payload; ``str`` is sent as UTF-8."""

_READ_SIZE = 256 * 1024
_FLUSH_THRESHOLD = 64 * 1024
_MAX_ID = 0xFFFF_FFFF


def _payload(value: Payload) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def parse_server(server: str, default_port: int = DEFAULT_PORT) -> Tuple[str, int]:
    """``"host:port"`` (or ``"host"``, or ``"[::1]:7420"``) as ``(host, port)``."""
    host, sep, port = server.rpartition(":")
    if not sep or (host.count(":") and not host.startswith("[")):
        return server.strip("[]"), default_port
    return host.strip("[]") or DEFAULT_HOST, int(port)


# ----------------------------------------------------------------------------------------------------------------
# What the client hands to the application


@dataclass(frozen=True)
class Message:
    """A message delivered to a subscription (MSG).

    Attributes:
        subject: the subject it was published to (for queue deliveries, the queue name).
        payload: its bytes.
        headers: its ``(name, value)`` pairs, in order.
        subscription_id: the subscription it was delivered to.
    """

    subject: str
    payload: bytes
    headers: Headers
    subscription_id: int

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header ``name``, or ``default``."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.payload.decode("utf-8")


@dataclass(frozen=True)
class Request(Message):
    """A request delivered to a responder (MSG with flag REQUEST). Answer it once with :meth:`reply`.

    Attributes:
        reply_id: the server's id for this request, echoed by REPLY.
    """

    reply_id: int = 0
    _client: Optional["Client"] = field(default=None, repr=False, compare=False)
    _state: Dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    @property
    def replied(self) -> bool:
        """Whether :meth:`reply` was called."""
        return self._state.get("replied", False)

    async def reply(self, payload: Payload = b"", *, headers: HeadersInput = None, ack: bool = False) -> None:
        """Send the response (REPLY).

        With ``ack`` wait for the server's OK. A failure (``UnknownId``: the requester timed out or left) is raised
        with ``ack``; without it, it goes to the client's ``on_error`` handler.

        Raises:
            RuntimeError: the request was already answered.
        """
        if self._client is None:
            raise RuntimeError("this request was not delivered by a client")
        if self.replied:
            raise RuntimeError(f"request {self.reply_id} was already answered")
        self._state["replied"] = True
        await self._client._send_request(
            lambda rid: codec.Reply(rid, self.reply_id, normalize_headers(headers), _payload(payload), ack), ack
        )


@dataclass(frozen=True)
class Delivery(Message):
    """A work-queue message delivered to a consumer (MSG with flag QUEUE). Settle it once with :meth:`ack` or
    :meth:`nack`; each frees one unit of the consumer's credit.

    Attributes:
        delivery_id: the server's id for this delivery.
        redelivered: it was delivered before and not acknowledged (NACK, or its consumer left).
    """

    delivery_id: int = 0
    redelivered: bool = False
    _client: Optional["Client"] = field(default=None, repr=False, compare=False)
    _state: Dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    @property
    def settled(self) -> bool:
        """Whether :meth:`ack` or :meth:`nack` was called."""
        return self._state.get("settled", False)

    async def ack(self, *, confirm: bool = False) -> None:
        """Settle the message for good (ACK). With ``confirm`` wait for the server's OK.

        Raises:
            RuntimeError: already settled.
            UnknownId: (with ``confirm``) the server no longer knows this delivery.
        """
        await self._settle(codec.Ack, confirm)

    async def nack(self, *, confirm: bool = False) -> None:
        """Give the message back to be delivered again, flagged ``redelivered`` (NACK). With ``confirm`` wait for
        the server's OK.

        Raises:
            RuntimeError: already settled.
            UnknownId: (with ``confirm``) the server no longer knows this delivery.
        """
        await self._settle(codec.Nack, confirm)

    async def _settle(self, kind: Any, confirm: bool) -> None:
        if self._client is None:
            raise RuntimeError("this delivery was not delivered by a client")
        if self.settled:
            raise RuntimeError(f"delivery {self.delivery_id} was already settled")
        self._state["settled"] = True
        await self._client._send_request(lambda rid: kind(rid, self.delivery_id, confirm), confirm)


@dataclass(frozen=True)
class Lagged:
    """The subscription missed ``missed`` messages; the iteration continues after this event.

    Attributes:
        missed: exactly how many messages were skipped.
        subscription_id: the subscription.
        local: ``False`` when the server sent LAGGED (this subscriber fell behind the subject's buffer); ``True``
            when the client dropped the oldest undelivered messages because the application fell more than
            ``max_pending`` behind (the server may also have sent LAGGED in the dropped part; the count is the
            total).
    """

    missed: int
    subscription_id: int
    local: bool = False


@dataclass(frozen=True)
class Value:
    """A key's value (VALUE).

    Attributes:
        key: the key.
        revision: how many SETs the key has seen; 0 means it has no value (then payload and headers are empty).
        payload: the value's bytes.
        headers: the value's headers.
    """

    key: str
    revision: int
    payload: bytes
    headers: Headers

    @property
    def exists(self) -> bool:
        """Whether the key has a value (revision > 0)."""
        return self.revision > 0

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.payload.decode("utf-8")


@dataclass(frozen=True)
class Response:
    """The answer to :meth:`Client.request` (RESPONSE)."""

    payload: bytes
    headers: Headers

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header ``name``, or ``default``."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.payload.decode("utf-8")


# ----------------------------------------------------------------------------------------------------------------
# Per-subscription buffering

T = TypeVar("T")


class _Inbox(Generic[T]):
    """What the reader task puts and the application takes, for one subscription id.

    The reader never waits here (it must keep routing every other frame), so the inbox is bounded differently per
    kind: subject subscriptions drop their oldest items past ``max_pending`` and report a local :class:`Lagged`;
    watches keep only the newest value (the protocol's own promise for watchers); consumers need no bound, the
    server never sends more than their credit.
    """

    def __init__(self, subscription_id: int, max_pending: Optional[int] = None, latest_only: bool = False) -> None:
        self.subscription_id = subscription_id
        self._items: Deque[Union[T, Lagged]] = collections.deque()
        self._max_pending = max_pending
        self._latest_only = latest_only
        self._dropped = 0
        self._waiters: Deque["asyncio.Future[None]"] = collections.deque()
        self._closed = False
        self._error: Optional[BaseException] = None

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: Union[T, Lagged]) -> None:
        if self._closed:
            return
        if self._latest_only:
            self._items.clear()
        elif self._max_pending is not None and len(self._items) >= self._max_pending:
            dropped = self._items.popleft()
            self._dropped += dropped.missed if isinstance(dropped, Lagged) else 1
        self._items.append(item)
        self._wake()

    def close(self, error: Optional[BaseException] = None) -> None:
        """Ends the stream: at once with ``error`` (raised to takers), or cleanly (iteration stops). Items not yet
        taken are discarded either way."""
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._items.clear()
        self._dropped = 0
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def get(self) -> Union[T, Lagged]:
        """The next item; raises ``StopAsyncIteration`` after a clean close, the close error otherwise."""
        while True:
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            if self._dropped:
                missed, self._dropped = self._dropped, 0
                return Lagged(missed, self.subscription_id, local=True)
            if self._items:
                return self._items.popleft()
            waiter: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # Pass a wake-up we consumed on to the next taker, so no item waits with a taker waiting.
                if waiter.done() and not waiter.cancelled() and self._items:
                    self._wake()
                raise


class _Stream:
    """Common part of :class:`Subscription`, :class:`Consumer` and :class:`Watcher`."""

    def __init__(self, client: "Client", inbox: _Inbox[Any]) -> None:
        self._client = client
        self._inbox = inbox

    @property
    def id(self) -> int:
        """The subscription id (chosen by the client, unique among this connection's live subscriptions)."""
        return self._inbox.subscription_id

    @property
    def closed(self) -> bool:
        """Whether the stream ended (unsubscribed, or the connection closed)."""
        return self._inbox.closed

    async def unsubscribe(self) -> None:
        """End the subscription (UNSUB) and wait for the server's OK. Iteration then stops; items not yet taken are
        discarded (for a consumer the server delivers its unacknowledged messages again, to any consumer).

        Idempotent; does nothing once the connection is closed.
        """
        await self._client._unsubscribe(self._inbox)

    async def __aenter__(self: "S") -> "S":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if not self._client.is_closed:
            try:
                await self.unsubscribe()
            except ConnectionClosed:
                pass


S = TypeVar("S", bound=_Stream)


class Subscription(_Stream):
    """A subject subscription: an async iterator of :class:`Message` (and :class:`Request` when someone sends a
    REQUEST to a matching subject) interleaved with :class:`Lagged` events.

    Iteration ends after :meth:`unsubscribe` or :meth:`Client.close`, and raises
    :class:`~sluice.errors.ConnectionClosed` if the connection ends otherwise.
    """

    def __init__(self, client: "Client", inbox: _Inbox[Message], pattern: str, queue_group: Optional[str]) -> None:
        super().__init__(client, inbox)
        self.pattern: str = pattern
        self.queue_group: Optional[str] = queue_group

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Union[Message, Lagged]:
        return await self._inbox.get()

    async def next(self, timeout: Optional[float] = None) -> Union[Message, Lagged]:
        """The next event, waiting at most ``timeout`` seconds (``asyncio.TimeoutError`` after).

        Raises ``StopAsyncIteration`` when the subscription has ended."""
        return await asyncio.wait_for(self._inbox.get(), timeout)


class Consumer(_Stream):
    """A work-queue consumer: an async iterator of :class:`Delivery`. Settle each with ``ack()`` or ``nack()``; the
    server sends at most ``credit`` unsettled deliveries."""

    def __init__(self, client: "Client", inbox: _Inbox[Delivery], queue: str, credit: int) -> None:
        super().__init__(client, inbox)
        self.queue: str = queue
        self.credit: int = credit

    def __aiter__(self) -> "Consumer":
        return self

    async def __anext__(self) -> Delivery:
        item = await self._inbox.get()
        assert isinstance(item, Delivery)
        return item

    async def next(self, timeout: Optional[float] = None) -> Delivery:
        """The next delivery, waiting at most ``timeout`` seconds (``asyncio.TimeoutError`` after)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    async def set_credit(self, credit: int) -> None:
        """Change the credit (CONSUME again with the same id); 0 pauses delivery."""
        await self._client._send_request(lambda rid: codec.Consume(rid, self.id, credit, self.queue), True)
        self.credit = credit


class Watcher(_Stream):
    """A key watch: an async iterator of :class:`Value` — the current value at once, then newer ones. Only the newest
    value not yet taken is kept, so a slow watcher skips intermediate values but always ends on the newest."""

    def __init__(self, client: "Client", inbox: _Inbox[Value], key: str) -> None:
        super().__init__(client, inbox)
        self.key: str = key

    def __aiter__(self) -> "Watcher":
        return self

    async def __anext__(self) -> Value:
        item = await self._inbox.get()
        assert isinstance(item, Value)
        return item

    async def next(self, timeout: Optional[float] = None) -> Value:
        """The next value, waiting at most ``timeout`` seconds (``asyncio.TimeoutError`` after)."""
        return await asyncio.wait_for(self.__anext__(), timeout)


Handler = Callable[[Request], Union[Payload, None, Awaitable[Union[Payload, None]]]]
"""A request handler for :meth:`Client.serve`: returns the response payload (or replies itself and returns None)."""


class Service:
    """A running request/reply responder started by :meth:`Client.serve`."""

    def __init__(self, subscription: Subscription, handler: Handler, concurrency: int) -> None:
        self.subscription: Subscription = subscription
        self._handler = handler
        self._slots = asyncio.Semaphore(concurrency)
        self._running: "set[asyncio.Task[None]]" = set()
        self._task = asyncio.ensure_future(self._serve())

    async def _serve(self) -> None:
        try:
            async for event in self.subscription:
                if isinstance(event, Request):
                    await self._slots.acquire()
                    task = asyncio.ensure_future(self._answer(event))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                elif isinstance(event, Lagged):
                    logger.warning("service %s dropped %d requests (lagged)", self.subscription.pattern, event.missed)
        except ConnectionClosed as error:
            logger.info("service %s ended: %s", self.subscription.pattern, error)

    async def _answer(self, request: Request) -> None:
        try:
            result = self._handler(request)
            if inspect.isawaitable(result):
                result = await result
            if not request.replied:
                await request.reply(b"" if result is None else result)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("handler for %s failed on request %d; no reply sent", request.subject, request.reply_id)
        finally:
            self._slots.release()

    async def stop(self) -> None:
        """Unsubscribe (so no new requests arrive) and wait for the handlers still running."""
        if not self.subscription._client.is_closed:
            try:
                await self.subscription.unsubscribe()
            except ConnectionClosed:
                pass
        await self._task
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def wait(self) -> None:
        """Wait until the service ends (stopped, unsubscribed or the connection closed)."""
        await asyncio.shield(self._task)


# ----------------------------------------------------------------------------------------------------------------
# The connection


ErrorHandler = Callable[[SluiceError], None]


def _log_error(error: SluiceError) -> None:
    logger.warning("sluice: unanswered error: %s", error)


class Client:
    """One connection to a Sluice server. Create it with :func:`connect` (or :meth:`Client.connect`).

    Every method is a coroutine and may be called from several tasks at once. Methods raise
    :class:`~sluice.errors.SluiceError` subclasses for the server's answers (``NoResponders``, ``QueueFull``, …) and
    :class:`~sluice.errors.ConnectionClosed` once the connection has ended. Use as ``async with`` to close on exit.

    Errors the server sends for frames nobody waits for (a ``publish`` without ``ack`` to a bad subject, say:
    failures are always answered) go to ``on_error``, which logs them by default.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        welcome: codec.Welcome,
        decoder: codec.FrameDecoder,
        *,
        on_error: Optional[ErrorHandler] = None,
        keepalive: bool = True,
    ) -> None:
        """Internal: use :func:`connect`."""
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        #: The server's WELCOME: its protocol version, limits and name.
        self.welcome: codec.Welcome = welcome
        self._decoder = decoder
        self._decoder.max_frame_size = welcome.max_frame_size + DELIVERY_OVERHEAD
        self._on_error: ErrorHandler = on_error or _log_error
        # request id -> the future its answer resolves (OK, ERROR, VALUE, STATS_REPLY, RESPONSE frame).
        self._pending: Dict[int, "asyncio.Future[codec.Frame]"] = {}
        self._next_request_id = 1
        # subscription id -> the inbox its MSG, LAGGED and VALUE(watch) go to.
        self._inboxes: Dict[int, _Inbox[Any]] = {}
        self._next_subscription_id = 1
        # One entry per PING we sent, oldest first; None for keepalive pings nobody awaits.
        self._pings: Deque[Optional["asyncio.Future[None]"]] = collections.deque()
        self._out = bytearray()
        self._flush_scheduled = False
        self._drain_lock = asyncio.Lock()  # Python 3.9 asserts on concurrent StreamWriter.drain()
        self._closing = False  # close() called: no new frames
        self._closed: Optional[ConnectionClosed] = None
        self._last_received = self._loop.time()
        self._reader_task = asyncio.ensure_future(self._read_loop())
        self._keepalive_task: Optional["asyncio.Task[None]"] = None
        if keepalive and welcome.idle_timeout_ms:
            self._keepalive_task = asyncio.ensure_future(self._keepalive(welcome.idle_timeout_ms / 1000))

    # -- connecting and closing -----------------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        token: Optional[str] = None,
        name: str = "sluice-python",
        timeout: Optional[float] = 10.0,
        on_error: Optional[ErrorHandler] = None,
        keepalive: bool = True,
    ) -> "Client":
        """Connect, send HELLO and wait for WELCOME. Same as :func:`connect`."""
        return await connect(host, port, token=token, name=name, timeout=timeout, on_error=on_error,
                             keepalive=keepalive)

    @property
    def is_closed(self) -> bool:
        """Whether the connection has ended or :meth:`close` was called."""
        return self._closed is not None or self._closing

    @property
    def server_name(self) -> str:
        """The server's name and version from WELCOME (``"sluiced 0.1.0"``)."""
        return self.welcome.server_name

    async def close(self, timeout: float = 5.0) -> None:
        """Leave politely: send GOODBYE, read (and route) until the server closes the connection, then close.

        Pending requests fail with ``ConnectionClosed(reason="closed")``; subscription iterators stop. If the server
        has not closed within ``timeout`` seconds the socket is closed anyway. Idempotent.
        """
        if self._closed is None and not self._closing:
            self._closing = True
            self._queue(codec.encode(codec.Goodbye()))
            self._flush()
            try:
                await asyncio.wait_for(asyncio.shield(self._reader_task), timeout)
            except asyncio.TimeoutError:
                self._finish(ConnectionClosed("closed", detail="the server did not close after GOODBYE"))
        await self.wait_closed()

    async def wait_closed(self) -> ConnectionClosed:
        """Wait until the connection has ended; returns why."""
        try:
            await asyncio.shield(self._reader_task)
        except asyncio.CancelledError:
            if not self._reader_task.cancelled():
                raise
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass
        assert self._closed is not None
        return self._closed

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- subjects -------------------------------------------------------------------------------------------------

    async def publish(self, subject: str, payload: Payload = b"", *, headers: HeadersInput = None,
                      ack: bool = False) -> None:
        """Publish to ``subject`` (PUB).

        Without ``ack`` (the fast path) the call returns once the frame is queued and a failure goes to
        ``on_error``; with ``ack`` it waits for the server's OK and raises its ERROR (``BadSubject``, …).
        """
        await self._send_request(
            lambda rid: codec.Pub(rid, subject, normalize_headers(headers), _payload(payload), ack), ack
        )

    async def subscribe(self, pattern: str, *, queue_group: Optional[str] = None,
                        max_pending: Optional[int] = 65536) -> Subscription:
        """Subscribe to ``pattern`` (SUB; ``*`` matches one token, a final ``>`` one or more) and wait for the OK.

        Every matching message published after this returns is delivered. Members of one ``queue_group`` share the
        messages (one member each). ``max_pending`` bounds the messages buffered in this process for a slow
        iterator: past it the oldest are dropped and a local :class:`Lagged` reports how many (``None``: no bound).

        Raises:
            BadSubject, BadName, TooManySubscriptions, DuplicateId: the server's refusal.
        """
        inbox: _Inbox[Message] = _Inbox(self._allocate_subscription_id(), max_pending)
        await self._open_stream(inbox, lambda rid: codec.Sub(rid, inbox.subscription_id, pattern, queue_group))
        return Subscription(self, inbox, pattern, queue_group)

    # -- queues ---------------------------------------------------------------------------------------------------

    async def push(self, queue: str, payload: Payload = b"", *, headers: HeadersInput = None, ack: bool = False,
                   no_wait: bool = False) -> None:
        """Put a message on work queue ``queue`` (PUSH).

        A full queue makes the server stop reading this connection until there is room; with ``no_wait`` the push
        fails at once with ``QueueFull`` instead. With ``ack`` wait for the OK (and raise the failure); without it a
        failure goes to ``on_error`` — so use ``ack=True`` with ``no_wait=True`` to see ``QueueFull`` here.
        """
        await self._send_request(
            lambda rid: codec.Push(rid, queue, normalize_headers(headers), _payload(payload), ack, no_wait), ack
        )

    async def consume(self, queue: str, *, credit: int = 1) -> Consumer:
        """Consume work queue ``queue`` (CONSUME) with at most ``credit`` unsettled deliveries; waits for the OK.

        Raises:
            BadName, TooManySubscriptions: the server's refusal.
        """
        inbox: _Inbox[Delivery] = _Inbox(self._allocate_subscription_id())
        await self._open_stream(inbox, lambda rid: codec.Consume(rid, inbox.subscription_id, credit, queue))
        return Consumer(self, inbox, queue, credit)

    # -- keys -----------------------------------------------------------------------------------------------------

    async def set(self, key: str, value: Payload = b"", *, headers: HeadersInput = None, ack: bool = False) -> None:
        """Store ``key``'s value (SET). With ``ack`` wait for the OK (and raise ``BadName``, …)."""
        await self._send_request(
            lambda rid: codec.Set(rid, key, normalize_headers(headers), _payload(value), ack), ack
        )

    async def get(self, key: str) -> Value:
        """The value of ``key`` (GET); ``revision`` 0 when it has none."""
        frame = await self._send_request(lambda rid: codec.Get(rid, key), True)
        assert isinstance(frame, codec.Value)
        return Value(frame.key, frame.revision, frame.payload, frame.headers)

    async def watch(self, key: str) -> Watcher:
        """Watch ``key`` (WATCH): the returned iterator yields its current value at once, then the newest after each
        change."""
        inbox: _Inbox[Value] = _Inbox(self._allocate_subscription_id(), latest_only=True)
        await self._open_stream(inbox, lambda rid: codec.Watch(rid, inbox.subscription_id, key))
        return Watcher(self, inbox, key)

    # -- requests -------------------------------------------------------------------------------------------------

    async def request(self, subject: str, payload: Payload = b"", *, headers: HeadersInput = None,
                      timeout: Optional[float] = 5.0) -> Response:
        """Ask one responder serving ``subject`` (REQUEST) and wait for its RESPONSE.

        ``timeout`` (seconds) is sent to the server, which answers ``TIMEOUT`` when it passes; ``None`` uses the
        server's default. The client also stops waiting one second after the timeout in case the answer is lost.

        Raises:
            NoResponders: nobody serves the subject.
            ResponderGone: the chosen responder left before replying.
            RequestTimeout: no response in time (code 106 ``TIMEOUT``).
        """
        timeout_ms = 0 if timeout is None else max(1, min(_MAX_ID, round(timeout * 1000)))
        frame = await self._send_request(
            lambda rid: codec.Request(rid, timeout_ms, subject, normalize_headers(headers), _payload(payload)),
            True,
            None if timeout is None else timeout + 1.0,
        )
        assert isinstance(frame, codec.Response)
        return Response(frame.payload, frame.headers)

    async def serve(self, subject: str, handler: Handler, *, queue_group: Optional[str] = None,
                    concurrency: int = 16) -> Service:
        """Serve requests on ``subject`` (a pattern): subscribe, and for each request call ``handler`` (a function or
        coroutine function) and reply with what it returns (bytes or str; ``None`` = empty), unless it called
        ``request.reply(...)`` itself. At most ``concurrency`` handlers run at once. If a handler raises, the error
        is logged and no reply is sent (the requester gets ``TIMEOUT``).

        Returns the :class:`Service`; ``await service.stop()`` to stop serving.
        """
        subscription = await self.subscribe(subject, queue_group=queue_group)
        return Service(subscription, handler, concurrency)

    # -- session --------------------------------------------------------------------------------------------------

    async def ping(self, timeout: Optional[float] = 10.0) -> float:
        """Send PING and wait for the PONG; returns the round trip in seconds."""
        self._check_open()
        waiter: "asyncio.Future[None]" = self._loop.create_future()
        self._pings.append(waiter)
        started = self._loop.time()
        self._queue(codec.encode(codec.Ping()))
        await self._drain()
        await asyncio.wait_for(asyncio.shield(waiter), timeout)
        return self._loop.time() - started

    async def stats(self) -> Dict[str, int]:
        """The server's counters (STATS), in the server's order."""
        frame = await self._send_request(lambda rid: codec.Stats(rid), True)
        assert isinstance(frame, codec.StatsReply)
        return dict(frame.entries)

    # -- internals: sending ---------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed
        if self._closing:
            raise ConnectionClosed("closed", detail="close() was called")

    def _allocate_request_id(self) -> int:
        # Ids only need to differ among unanswered requests, so the counter wraps (skipping 0 and ids in use).
        while True:
            rid = self._next_request_id
            self._next_request_id = rid % _MAX_ID + 1
            if rid not in self._pending:
                return rid

    def _allocate_subscription_id(self) -> int:
        while True:
            sid = self._next_subscription_id
            self._next_subscription_id = sid % _MAX_ID + 1
            if sid not in self._inboxes:
                return sid

    def _queue(self, data: bytes) -> None:
        """Buffer an encoded frame; frames queued in one loop iteration go out in one write."""
        if len(data) - 4 > self.welcome.max_frame_size:
            raise ValueError(
                f"frame of {len(data) - 4} bytes is over the server's max_frame_size {self.welcome.max_frame_size}"
            )
        self._out += data
        if len(self._out) >= _FLUSH_THRESHOLD:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and not self._writer.is_closing():
            self._writer.write(bytes(self._out))
        self._out.clear()

    async def _drain(self) -> None:
        """Wait while the socket's send buffer is over its high-water mark (backpressure)."""
        try:
            async with self._drain_lock:
                await self._writer.drain()
        except (ConnectionError, OSError) as error:
            self._finish(ConnectionClosed("eof", detail=f"write failed: {error}"))
            assert self._closed is not None
            raise self._closed from error

    async def _send_request(self, make: Callable[[int], codec.Frame], answered: bool,
                            timeout: Optional[float] = None) -> Optional[codec.Frame]:
        """Send the frame ``make(request_id)``; when ``answered``, wait for and return the answer (raising ERROR).

        An abandoned wait (cancelled or timed out) leaves the id reserved until its answer arrives, so a late answer
        can never resolve a newer request.
        """
        self._check_open()
        rid = self._allocate_request_id()
        data = codec.encode(make(rid))
        if not answered:
            self._queue(data)
            await self._drain()
            return None
        future: "asyncio.Future[codec.Frame]" = self._loop.create_future()
        self._queue(data)
        self._pending[rid] = future
        await self._drain()
        try:
            frame = await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            raise SluiceError.from_code(106, "no answer from the server in time", rid) from None
        if isinstance(frame, codec.Error):
            raise SluiceError.from_code(frame.code, frame.message, frame.request_id)
        return frame

    async def _open_stream(self, inbox: _Inbox[Any], make: Callable[[int], codec.Frame]) -> None:
        # Register before sending: a MSG may arrive before the OK.
        self._inboxes[inbox.subscription_id] = inbox
        try:
            await self._send_request(make, True)
        except BaseException:
            if self._inboxes.get(inbox.subscription_id) is inbox:
                del self._inboxes[inbox.subscription_id]
            inbox.close()
            raise

    async def _unsubscribe(self, inbox: _Inbox[Any]) -> None:
        if self._inboxes.get(inbox.subscription_id) is not inbox or self.is_closed:
            inbox.close()
            return
        inbox.close()  # stop iteration now; MSGs still arriving before the OK are dropped by the router
        try:
            await self._send_request(lambda rid: codec.Unsub(rid, inbox.subscription_id), True)
        finally:
            if self._inboxes.get(inbox.subscription_id) is inbox:
                del self._inboxes[inbox.subscription_id]

    # -- internals: reading and routing ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reason: ConnectionClosed
        try:
            # WELCOME may have arrived in the same read as later frames: route what the handshake left buffered.
            self._route_buffered()
            while self._closed is None:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    reason = ConnectionClosed("closed" if self._closing else "eof",
                                              detail="" if self._closing else "the server closed the connection")
                    break
                self._last_received = self._loop.time()
                self._decoder.feed(data)
                self._route_buffered()
            else:
                return
        except ProtocolError as error:
            reason = ConnectionClosed("protocol", error)
        except SluiceError as error:  # an ERROR < 100, or a frame the server must not send
            reason = error if isinstance(error, ConnectionClosed) else ConnectionClosed("error", error)
        except (ConnectionError, OSError) as error:
            reason = ConnectionClosed("closed" if self._closing else "eof", detail=f"read failed: {error}")
        except asyncio.CancelledError:
            self._finish(ConnectionClosed("closed", detail="reader cancelled"))
            raise
        self._finish(reason)

    def _route_buffered(self) -> None:
        for frame in self._decoder:
            self._route(frame)
            if self._closed is not None:
                return

    def _route(self, frame: codec.Frame) -> None:
        if isinstance(frame, codec.Msg):
            inbox = self._inboxes.get(frame.subscription_id)
            if inbox is None or inbox.closed:
                return  # after unsubscribe: the server stops once it has answered UNSUB
            inbox.put(self._message(frame))
        elif isinstance(frame, (codec.Ok, codec.StatsReply, codec.Response)):
            self._resolve(frame.request_id, frame)
        elif isinstance(frame, codec.Value):
            if frame.watch:
                inbox = self._inboxes.get(frame.id)
                if inbox is not None:
                    inbox.put(Value(frame.key, frame.revision, frame.payload, frame.headers))
            else:
                self._resolve(frame.id, frame)
        elif isinstance(frame, codec.Error):
            if frame.code < 100:
                raise ConnectionClosed("error", SluiceError.from_code(frame.code, frame.message, frame.request_id))
            future = self._pending.pop(frame.request_id, None) if frame.request_id else None
            if future is not None:
                if not future.done():
                    future.set_result(frame)
            else:
                self._report(SluiceError.from_code(frame.code, frame.message, frame.request_id))
        elif isinstance(frame, codec.Lagged):
            inbox = self._inboxes.get(frame.subscription_id)
            if inbox is not None:
                inbox.put(Lagged(frame.missed, frame.subscription_id))
        elif isinstance(frame, codec.Ping):
            if not self._closing and not self._writer.is_closing():  # after our GOODBYE we send nothing
                self._queue(codec.encode(codec.Pong()))
        elif isinstance(frame, codec.Pong):
            if self._pings:
                waiter = self._pings.popleft()
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        elif isinstance(frame, codec.Goodbye):
            if self._closing:  # a server may answer our GOODBYE with its own before closing: still our close
                raise ConnectionClosed("closed", detail="the server said GOODBYE after ours")
            raise ConnectionClosed("goodbye", detail="the server said GOODBYE")
        else:
            # WELCOME again, or a client frame: a valid frame this side never accepts.
            raise ConnectionClosed("protocol", UnexpectedFrame(13, f"the server sent {frame.OPCODE.name}"))

    def _resolve(self, request_id: int, frame: codec.Frame) -> None:
        future = self._pending.pop(request_id, None)
        if future is None:
            logger.debug("answer for unknown request id %d ignored", request_id)
        elif not future.done():
            future.set_result(frame)

    def _message(self, frame: codec.Msg) -> Message:
        if frame.kind == MsgKind.QUEUE:
            return Delivery(frame.subject, frame.payload, frame.headers, frame.subscription_id,
                            frame.id or 0, frame.redelivered, self)
        if frame.kind == MsgKind.REQUEST:
            return Request(frame.subject, frame.payload, frame.headers, frame.subscription_id, frame.id or 0, self)
        return Message(frame.subject, frame.payload, frame.headers, frame.subscription_id)

    def _report(self, error: SluiceError) -> None:
        try:
            self._on_error(error)
        except Exception:
            logger.exception("on_error handler failed")

    def _finish(self, reason: ConnectionClosed) -> None:
        """The connection has ended: fail every waiter, end every stream, close the socket. Runs once."""
        if self._closed is not None:
            return
        self._closed = reason
        if reason.reason not in ("closed", "goodbye", "eof") or reason.error is not None:
            logger.warning("sluice: %s", reason)
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(reason)
                future.exception()  # mark retrieved: abandoned waits must not log "never retrieved"
        pings, self._pings = self._pings, collections.deque()
        for waiter in pings:
            if waiter is not None and not waiter.done():
                waiter.set_exception(reason)
                waiter.exception()
        inboxes, self._inboxes = self._inboxes, {}
        stream_error = None if reason.reason == "closed" else reason
        for inbox in inboxes.values():
            inbox.close(stream_error)
        self._out.clear()
        if self._keepalive_task is not None and self._keepalive_task is not asyncio.current_task():
            self._keepalive_task.cancel()
        self._writer.close()

    async def _keepalive(self, idle_timeout: float) -> None:
        """PING after half the idle timeout of silence from the server; give up after the whole timeout."""
        half = idle_timeout / 2
        last_ping = 0.0
        try:
            while self._closed is None:
                await asyncio.sleep(half / 2)
                now = self._loop.time()
                silent = now - self._last_received
                if silent >= idle_timeout:
                    self._finish(ConnectionClosed("timeout", detail=f"nothing from the server for {silent:.1f} s"))
                    return
                if silent >= half and now - last_ping >= half and not self._closing:
                    last_ping = now
                    self._pings.append(None)
                    self._queue(codec.encode(codec.Ping()))
        except asyncio.CancelledError:
            pass


async def connect(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    token: Optional[str] = None,
    name: str = "sluice-python",
    timeout: Optional[float] = 10.0,
    on_error: Optional[ErrorHandler] = None,
    keepalive: bool = True,
) -> Client:
    """Connect to a Sluice server: open TCP, send HELLO (with ``token`` if given), wait for WELCOME.

    Args:
        host, port: the server (``sluiced`` listens on 127.0.0.1:7420 by default).
        token: the server's token, if it requires one.
        name: a client name for the server's logs.
        timeout: seconds for the TCP connect and the handshake together (``None``: no limit).
        on_error: called with server errors that no call waits for (failures of frames sent without ``ack``).
        keepalive: PING the server after half its idle timeout of silence and close the connection (reason
            ``"timeout"``) after a whole idle timeout without a byte from it.

    Raises:
        AuthenticationFailed, UnsupportedVersion, TooManyConnections, ShuttingDown: the server refused the HELLO.
        OSError: the TCP connection failed; ``asyncio.TimeoutError``: ``timeout`` passed.
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    decoder = codec.FrameDecoder(DEFAULT_MAX_FRAME_SIZE + DELIVERY_OVERHEAD)
    try:
        writer.write(codec.encode(codec.Hello(codec.PROTOCOL_VERSION, name, token)))
        welcome = await asyncio.wait_for(_handshake(reader, decoder), timeout)
    except BaseException:
        writer.close()
        raise
    return Client(reader, writer, welcome, decoder, on_error=on_error, keepalive=keepalive)


async def _handshake(reader: asyncio.StreamReader, decoder: codec.FrameDecoder) -> codec.Welcome:
    while True:
        frame = decoder.next_frame()
        if frame is None:
            data = await reader.read(_READ_SIZE)
            if not data:
                raise ConnectionClosed("eof", detail="the server closed the connection before WELCOME")
            decoder.feed(data)
            continue
        if isinstance(frame, codec.Error):
            raise SluiceError.from_code(frame.code, frame.message, frame.request_id)
        if not isinstance(frame, codec.Welcome):
            raise UnexpectedFrame(13, f"expected WELCOME, the server sent {frame.OPCODE.name}")
        if frame.version != codec.PROTOCOL_VERSION:
            raise UnsupportedVersion(11, f"the server speaks protocol version {frame.version}")
        return frame
