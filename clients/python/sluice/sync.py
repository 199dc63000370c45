"""A blocking wrapper around :class:`sluice.Client` for scripts.

How it works: each :class:`SyncClient` starts one event loop on a daemon background thread and keeps the asyncio
client there; every method submits the matching coroutine to that loop (``asyncio.run_coroutine_threadsafe``) and
blocks the calling thread until it finishes. So the connection keeps being served (PINGs answered, messages
buffered) between calls, and a ``SyncClient`` may be used from several threads. Do not call it from inside a running
event loop's thread: use the asyncio client there.

Example::

    from sluice.sync import SyncClient

    with SyncClient("127.0.0.1", 7420) as client:
        client.push("jobs", b"resize 1.png", ack=True)
        for job in client.consume("jobs", credit=1):
            print(job.payload)
            job.ack()
            break
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Callable, Coroutine, Dict, Generic, Iterator, Optional, TypeVar, Union

from .client import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    Client,
    Consumer,
    Delivery,
    ErrorHandler,
    Lagged,
    Message,
    Payload,
    Request,
    Response,
    Service,
    Subscription,
    Value,
    Watcher,
    connect,
)
from .codec import Headers, HeadersInput, Welcome

__all__ = ["SyncClient", "SyncConsumer", "SyncDelivery", "SyncService", "SyncSubscription", "SyncWatcher"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="sluice-sync-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: Optional[float] = None) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncClient called from its own event loop thread (e.g. inside a handler)")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no result within {timeout} s") from None

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(5)


class SyncDelivery:
    """A queue delivery (see :class:`sluice.Delivery`) with blocking :meth:`ack` and :meth:`nack`."""

    def __init__(self, delivery: Delivery, runner: _LoopThread) -> None:
        self.delivery: Delivery = delivery
        self._runner = runner

    @property
    def subject(self) -> str:
        """The queue name."""
        return self.delivery.subject

    @property
    def payload(self) -> bytes:
        """The message's bytes."""
        return self.delivery.payload

    @property
    def text(self) -> str:
        """The payload as UTF-8 text."""
        return self.delivery.text

    @property
    def headers(self) -> Headers:
        """The message's headers."""
        return self.delivery.headers

    @property
    def delivery_id(self) -> int:
        """The server's id for this delivery."""
        return self.delivery.delivery_id

    @property
    def redelivered(self) -> bool:
        """Whether it was delivered before without an ACK."""
        return self.delivery.redelivered

    def ack(self, *, confirm: bool = False) -> None:
        """Settle for good (ACK); ``confirm`` waits for the server's OK."""
        self._runner.call(self.delivery.ack(confirm=confirm))

    def nack(self, *, confirm: bool = False) -> None:
        """Give back for redelivery (NACK); ``confirm`` waits for the server's OK."""
        self._runner.call(self.delivery.nack(confirm=confirm))

    def __repr__(self) -> str:
        return f"SyncDelivery({self.delivery!r})"


class _SyncStream(Generic[T]):
    def __init__(self, stream: Union[Subscription, Consumer, Watcher], runner: _LoopThread) -> None:
        self._stream = stream
        self._runner = runner

    @property
    def id(self) -> int:
        """The subscription id."""
        return self._stream.id

    def _next(self, timeout: Optional[float]) -> Any:
        try:
            return self._runner.call(self._stream.__anext__(), timeout)
        except StopAsyncIteration:
            raise StopIteration from None

    def unsubscribe(self) -> None:
        """End the subscription (UNSUB) and wait for the OK."""
        self._runner.call(self._stream.unsubscribe())

    def __iter__(self) -> Iterator[T]:
        return self  # type: ignore[return-value]

    def __enter__(self: "_S") -> "_S":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._stream.closed:
            self.unsubscribe()


_S = TypeVar("_S", bound=_SyncStream[Any])


class SyncSubscription(_SyncStream[Union[Message, Lagged]]):
    """A blocking iterator over a :class:`sluice.Subscription`: :class:`sluice.Message` and :class:`sluice.Lagged`
    events."""

    def __next__(self) -> Union[Message, Lagged]:
        return self._next(None)  # type: ignore[no-any-return]

    def next(self, timeout: Optional[float] = None) -> Union[Message, Lagged]:
        """The next event; ``TimeoutError`` after ``timeout`` seconds, ``StopIteration`` once ended."""
        return self._next(timeout)  # type: ignore[no-any-return]


class SyncConsumer(_SyncStream[SyncDelivery]):
    """A blocking iterator over a :class:`sluice.Consumer`, yielding :class:`SyncDelivery`."""

    def __next__(self) -> SyncDelivery:
        return SyncDelivery(self._next(None), self._runner)

    def next(self, timeout: Optional[float] = None) -> SyncDelivery:
        """The next delivery; ``TimeoutError`` after ``timeout`` seconds, ``StopIteration`` once ended."""
        return SyncDelivery(self._next(timeout), self._runner)


class SyncWatcher(_SyncStream[Value]):
    """A blocking iterator over a :class:`sluice.Watcher`: the current value, then newer ones."""

    def __next__(self) -> Value:
        return self._next(None)  # type: ignore[no-any-return]

    def next(self, timeout: Optional[float] = None) -> Value:
        """The next value; ``TimeoutError`` after ``timeout`` seconds, ``StopIteration`` once ended."""
        return self._next(timeout)  # type: ignore[no-any-return]


class SyncService:
    """A running responder started by :meth:`SyncClient.serve`."""

    def __init__(self, service: Service, runner: _LoopThread) -> None:
        self._service = service
        self._runner = runner

    def stop(self) -> None:
        """Stop serving and wait for running handlers."""
        self._runner.call(self._service.stop())

    def wait(self) -> None:
        """Block until the service ends (stopped, or the connection closed)."""
        self._runner.call(self._service.wait())


class SyncClient:
    """A blocking Sluice client: the same operations as :class:`sluice.Client`, as plain methods.

    Arguments are those of :func:`sluice.connect`; the constructor connects (and raises what ``connect`` raises).
    Every method takes the same arguments as the asyncio method of the same name.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        token: Optional[str] = None,
        name: str = "sluice-python-sync",
        timeout: Optional[float] = 10.0,
        on_error: Optional[ErrorHandler] = None,
        keepalive: bool = True,
    ) -> None:
        self._runner = _LoopThread()
        try:
            self._client: Client = self._runner.call(
                connect(host, port, token=token, name=name, timeout=timeout, on_error=on_error, keepalive=keepalive)
            )
        except BaseException:
            self._runner.stop()
            raise

    @property
    def client(self) -> Client:
        """The underlying asyncio client (use it only from coroutines run on :attr:`loop`)."""
        return self._client

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The background event loop."""
        return self._runner.loop

    @property
    def welcome(self) -> Welcome:
        """The server's WELCOME."""
        return self._client.welcome

    def publish(self, subject: str, payload: Payload = b"", *, headers: HeadersInput = None,
                ack: bool = False) -> None:
        """See :meth:`sluice.Client.publish`."""
        self._runner.call(self._client.publish(subject, payload, headers=headers, ack=ack))

    def subscribe(self, pattern: str, *, queue_group: Optional[str] = None,
                  max_pending: Optional[int] = 65536) -> SyncSubscription:
        """See :meth:`sluice.Client.subscribe`."""
        stream = self._runner.call(self._client.subscribe(pattern, queue_group=queue_group, max_pending=max_pending))
        return SyncSubscription(stream, self._runner)

    def push(self, queue: str, payload: Payload = b"", *, headers: HeadersInput = None, ack: bool = False,
             no_wait: bool = False) -> None:
        """See :meth:`sluice.Client.push`."""
        self._runner.call(self._client.push(queue, payload, headers=headers, ack=ack, no_wait=no_wait))

    def consume(self, queue: str, *, credit: int = 1) -> SyncConsumer:
        """See :meth:`sluice.Client.consume`."""
        return SyncConsumer(self._runner.call(self._client.consume(queue, credit=credit)), self._runner)

    def set(self, key: str, value: Payload = b"", *, headers: HeadersInput = None, ack: bool = False) -> None:
        """See :meth:`sluice.Client.set`."""
        self._runner.call(self._client.set(key, value, headers=headers, ack=ack))

    def get(self, key: str) -> Value:
        """See :meth:`sluice.Client.get`."""
        return self._runner.call(self._client.get(key))

    def watch(self, key: str) -> SyncWatcher:
        """See :meth:`sluice.Client.watch`."""
        return SyncWatcher(self._runner.call(self._client.watch(key)), self._runner)

    def request(self, subject: str, payload: Payload = b"", *, headers: HeadersInput = None,
                timeout: Optional[float] = 5.0) -> Response:
        """See :meth:`sluice.Client.request`."""
        return self._runner.call(self._client.request(subject, payload, headers=headers, timeout=timeout))

    def serve(self, subject: str, handler: Callable[[Request], Optional[Payload]], *,
              queue_group: Optional[str] = None, concurrency: int = 16) -> SyncService:
        """Serve requests on ``subject`` with a plain (blocking) ``handler``: it runs on a worker thread of the loop's
        default executor and returns the reply payload (``None`` = empty). See :meth:`sluice.Client.serve`."""

        async def run(request: Request) -> Optional[Payload]:
            return await asyncio.get_running_loop().run_in_executor(None, handler, request)

        service = self._runner.call(
            self._client.serve(subject, run, queue_group=queue_group, concurrency=concurrency)
        )
        return SyncService(service, self._runner)

    def ping(self, timeout: Optional[float] = 10.0) -> float:
        """See :meth:`sluice.Client.ping`."""
        return self._runner.call(self._client.ping(timeout))

    def stats(self) -> Dict[str, int]:
        """See :meth:`sluice.Client.stats`."""
        return self._runner.call(self._client.stats())

    def close(self, timeout: float = 5.0) -> None:
        """Send GOODBYE, wait for the server to close, stop the background loop. Idempotent."""
        if self._runner.loop.is_running():
            try:
                self._runner.call(self._client.close(timeout))
            finally:
                self._runner.stop()

    def __enter__(self) -> "SyncClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
