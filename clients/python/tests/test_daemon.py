"""Integration tests against the real `sluiced` daemon, started on a free port as a subprocess.

The binary is $SLUICED, else <repo>/.build/debug/sluiced (`swift build --product sluiced`). When it is missing these
tests FAIL, saying how to build it; set SLUICE_SKIP_DAEMON_TESTS=1 to skip them instead.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from typing import Any, ClassVar, List, Optional, Sequence

import support

import sluice

_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test uses (tests share one daemon per class)."""
    return f"{prefix}.t{os.getpid()}n{next(_names)}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """A `sluiced` subprocess on 127.0.0.1 and a free port; stderr goes to a temporary log file."""

    def __init__(self, binary: str, args: Sequence[str]) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="sluiced-", suffix=".log", delete=False)
        self.command = [binary, "--host", "127.0.0.1", "--port", str(self.port), *args]
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{' '.join(self.command)} exited with {self.process.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{' '.join(self.command)} did not listen within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as file:
            return file.read()[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        os.unlink(self.log.name)


class DaemonTestCase(unittest.IsolatedAsyncioTestCase):
    """Starts one daemon (with `daemon_args`) for the class; each test connects its own clients."""

    daemon_args: ClassVar[List[str]] = []
    daemon: ClassVar[Optional[Daemon]] = None
    unavailable: ClassVar[Optional[str]] = None

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        if os.environ.get("SLUICE_SKIP_DAEMON_TESTS") == "1":
            raise unittest.SkipTest("SLUICE_SKIP_DAEMON_TESTS=1")
        binary = support.sluiced_path()
        cls.daemon = None
        cls.unavailable = None
        if not binary.is_file() or not os.access(binary, os.X_OK):
            cls.unavailable = (
                f"the sluiced binary is missing at {binary}: run `swift build --product sluiced` in the repository "
                f"root (or set SLUICED=/path/to/sluiced; SLUICE_SKIP_DAEMON_TESTS=1 skips these tests)"
            )
            return
        daemon = Daemon(str(binary), cls.daemon_args)
        try:
            daemon.wait_ready()
        except RuntimeError as error:
            daemon.stop()
            cls.unavailable = str(error)
            return
        cls.daemon = daemon

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.daemon is not None:
            cls.daemon.stop()
            cls.daemon = None
        super().tearDownClass()

    def setUp(self) -> None:
        if self.unavailable is not None:
            self.fail(self.unavailable)
        self.clients: List[sluice.Client] = []
        self.errors: List[sluice.SluiceError] = []

    async def asyncTearDown(self) -> None:
        for client in self.clients:
            await client.close()

    async def connect(self, **options: Any) -> sluice.Client:
        assert self.daemon is not None
        options.setdefault("on_error", self.errors.append)
        client = await sluice.connect("127.0.0.1", self.daemon.port, **options)
        self.clients.append(client)
        return client

    async def until(self, stream: Any, predicate: Any, timeout: float = 5.0) -> Any:
        """Events from `stream` until one satisfies `predicate`; returns the list including it."""
        seen = []
        while True:
            event = await stream.next(timeout)
            seen.append(event)
            if predicate(event):
                return seen


class SubjectTests(DaemonTestCase):
    async def test_wildcards_and_headers(self) -> None:
        base = unique("orders")
        subscriber = await self.connect()
        publisher = await self.connect()
        one = await subscriber.subscribe(f"{base}.*")
        many = await subscriber.subscribe(f"{base}.>")
        await publisher.publish(f"{base}.new", b"1", headers=[("trace", "x1"), ("trace", "x2"), ("", "")])
        await publisher.publish(f"{base}.eu.new", "2")
        await publisher.publish(base, b"3")  # matches neither: `*` and `>` need a token
        await publisher.publish(f"{base}.end", b"", ack=True)  # in order per publisher: it comes last
        is_end = lambda event: event.subject == f"{base}.end"  # noqa: E731
        got_one = await self.until(one, is_end)
        got_many = await self.until(many, is_end)
        self.assertEqual([m.subject for m in got_one], [f"{base}.new", f"{base}.end"])
        self.assertEqual([m.subject for m in got_many], [f"{base}.new", f"{base}.eu.new", f"{base}.end"])
        first = got_one[0]
        self.assertIsInstance(first, sluice.Message)
        self.assertNotIsInstance(first, (sluice.Request, sluice.Delivery))
        self.assertEqual((first.payload, first.headers), (b"1", (("trace", "x1"), ("trace", "x2"), ("", ""))))
        self.assertEqual(first.subscription_id, one.id)
        self.assertEqual(got_many[1].payload, b"2")

    async def test_bad_subject_fails_the_request_only(self) -> None:
        client = await self.connect()
        with self.assertRaises(sluice.BadSubject) as caught:
            await client.publish("orders..new", b"", ack=True)
        self.assertEqual((caught.exception.code, caught.exception.name), (100, "BAD_SUBJECT"))
        with self.assertRaises(sluice.BadSubject):
            await client.subscribe("orders.>.x")
        await client.ping()
        self.assertFalse(client.is_closed)

    async def test_unsubscribe_stops_delivery(self) -> None:
        subject = unique("news")
        client = await self.connect()
        sub = await client.subscribe(subject)
        keep = await client.subscribe(subject)
        await sub.unsubscribe()
        await client.publish(subject, b"after", ack=True)
        self.assertEqual((await keep.next(5)).payload, b"after")  # type: ignore[union-attr]
        with self.assertRaises(StopAsyncIteration):
            await sub.next(1)

    async def test_queue_group_members_share_messages(self) -> None:
        subject = unique("work")
        a, b, publisher = await self.connect(), await self.connect(), await self.connect()
        sub_a = await a.subscribe(subject, queue_group="g")
        sub_b = await b.subscribe(subject, queue_group="g")
        for i in range(20):
            await publisher.publish(subject, str(i), ack=True)
        received: List[str] = []

        async def drain(sub: sluice.Subscription) -> None:
            try:
                while True:
                    event = await sub.next(1.0)
                    received.append(event.text)  # type: ignore[union-attr]
            except asyncio.TimeoutError:
                pass

        await asyncio.gather(drain(sub_a), drain(sub_b))
        self.assertEqual(sorted(received, key=int), [str(i) for i in range(20)])


class QueueTests(DaemonTestCase):
    async def test_push_consume_ack(self) -> None:
        queue = unique("jobs")
        producer, worker = await self.connect(), await self.connect()
        for i in range(3):
            await producer.push(queue, f"job {i}", headers={"n": str(i)}, ack=True)
        consumer = await worker.consume(queue, credit=10)
        deliveries = [await consumer.next(5) for _ in range(3)]
        self.assertEqual(sorted(d.text for d in deliveries), ["job 0", "job 1", "job 2"])
        for delivery in deliveries:
            self.assertIsInstance(delivery, sluice.Delivery)
            self.assertFalse(delivery.redelivered)
            self.assertEqual(delivery.subject, queue)
            self.assertEqual(delivery.header("n"), delivery.text[-1])
            await delivery.ack(confirm=True)
        await producer.push(queue, b"sentinel", ack=True)
        after = await consumer.next(5)
        self.assertEqual((after.payload, after.redelivered), (b"sentinel", False))  # nothing came back
        await after.ack()

    async def test_nack_redelivers(self) -> None:
        queue = unique("jobs")
        client = await self.connect()
        await client.push(queue, b"retry me", ack=True)
        consumer = await client.consume(queue, credit=1)
        first = await consumer.next(5)
        self.assertFalse(first.redelivered)
        await first.nack(confirm=True)
        again = await consumer.next(5)
        self.assertEqual((again.payload, again.redelivered), (b"retry me", True))
        await again.ack(confirm=True)

    async def test_consumer_that_disconnects_gets_its_messages_redelivered(self) -> None:
        queue = unique("jobs")
        producer = await self.connect()
        leaver = await self.connect()
        await producer.push(queue, b"unfinished", ack=True)
        leaving = await leaver.consume(queue, credit=1)
        taken = await leaving.next(5)
        self.assertFalse(taken.redelivered)
        await leaver.close()  # without ACK
        stayer = await self.connect()
        consumer = await stayer.consume(queue, credit=1)
        again = await consumer.next(5)
        self.assertEqual((again.payload, again.redelivered), (b"unfinished", True))
        await again.ack(confirm=True)

    async def test_credit_bounds_unsettled_deliveries(self) -> None:
        queue = unique("jobs")
        client = await self.connect()
        for i in range(3):
            await client.push(queue, str(i), ack=True)
        consumer = await client.consume(queue, credit=1)
        first = await consumer.next(5)
        with self.assertRaises(asyncio.TimeoutError):
            await consumer.next(0.3)  # credit 1: no second delivery before the first is settled
        await first.ack()
        second = await consumer.next(5)
        await second.ack()
        await consumer.set_credit(5)
        await (await consumer.next(5)).ack()


class KeyLimitTests(DaemonTestCase):
    daemon_args = ["--max-keys", "1"]

    async def test_a_new_key_past_max_keys_fails_with_limit_reached(self) -> None:
        client = await self.connect()
        await client.set("only", b"1", ack=True)
        with self.assertRaises(sluice.LimitReached) as caught:
            await client.set("another", b"2", ack=True)
        self.assertEqual((caught.exception.code, caught.exception.name), (110, "LIMIT_REACHED"))
        self.assertFalse(client.is_closed)
        await client.set("only", b"3", ack=True)  # the existing key still takes values
        self.assertEqual((await client.get("only")).payload, b"3")


class FullQueueTests(DaemonTestCase):
    daemon_args = ["--queue-capacity", "2"]

    async def test_no_wait_push_to_a_full_queue_fails_with_queue_full(self) -> None:
        queue = unique("small")
        client = await self.connect()
        await client.push(queue, b"1", ack=True)
        await client.push(queue, b"2", ack=True, no_wait=True)
        with self.assertRaises(sluice.QueueFull) as caught:
            await client.push(queue, b"3", ack=True, no_wait=True)
        self.assertEqual((caught.exception.code, caught.exception.name), (103, "QUEUE_FULL"))
        self.assertFalse(client.is_closed)
        await client.push(queue, b"4", no_wait=True)  # without ack the failure is still answered: on_error
        await client.ping()
        self.assertEqual([e.code for e in self.errors], [103])

    async def test_push_without_no_wait_waits_for_room(self) -> None:
        queue = unique("small")
        producer, worker = await self.connect(), await self.connect()
        await producer.push(queue, b"1", ack=True)
        await producer.push(queue, b"2", ack=True)
        blocked = asyncio.ensure_future(producer.push(queue, b"3", ack=True))
        done, _ = await asyncio.wait({blocked}, timeout=0.3)
        self.assertFalse(done, "a PUSH to a full queue was answered before there was room")
        consumer = await worker.consume(queue, credit=1)
        await (await consumer.next(5)).ack()
        await asyncio.wait_for(blocked, 5)


class KeyTests(DaemonTestCase):
    async def test_set_get_watch(self) -> None:
        key = unique("config")
        client, writer = await self.connect(), await self.connect()
        missing = await client.get(key)
        self.assertEqual((missing.revision, missing.exists, missing.payload, missing.headers), (0, False, b"", ()))
        await writer.set(key, b"on", headers={"by": "test"}, ack=True)
        value = await client.get(key)
        self.assertEqual((value.key, value.revision, value.text, value.headers), (key, 1, "on", (("by", "test"),)))
        watcher = await client.watch(key)
        current = await watcher.next(5)
        self.assertEqual((current.revision, current.text), (1, "on"))
        for text in ("v2", "v3", "v4"):
            await writer.set(key, text)
        seen = await self.until(watcher, lambda v: v.revision == 4)
        self.assertEqual(seen[-1].text, "v4")
        revisions = [v.revision for v in seen]
        self.assertEqual(revisions, sorted(set(revisions)))  # newer each time, possibly skipping some
        await watcher.unsubscribe()

    async def test_watch_of_a_key_without_value_starts_at_revision_zero(self) -> None:
        key = unique("absent")
        client = await self.connect()
        watcher = await client.watch(key)
        self.assertFalse((await watcher.next(5)).exists)
        await client.set(key, b"now", ack=True)
        self.assertEqual((await watcher.next(5)).text, "now")

    async def test_bad_key_name(self) -> None:
        client = await self.connect()
        with self.assertRaises(sluice.BadName):
            await client.set("bad key", b"", ack=True)


class RequestTests(DaemonTestCase):
    async def test_request_reply(self) -> None:
        subject = unique("time")
        responder, requester = await self.connect(), await self.connect()

        def handle(request: sluice.Request) -> bytes:
            return b"re: " + request.payload

        service = await responder.serve(subject, handle)
        response = await requester.request(subject, b"now?", timeout=5)
        self.assertEqual(response.payload, b"re: now?")

        async def with_headers(request: sluice.Request) -> None:
            await request.reply(request.payload, headers=[("echo", request.header("q") or "")], ack=True)

        await service.stop()
        service = await responder.serve(subject, with_headers)
        response = await requester.request(subject, b"x", headers={"q": "1"}, timeout=5)
        self.assertEqual((response.payload, response.header("echo")), (b"x", "1"))
        await service.stop()

    async def test_no_responders(self) -> None:
        client = await self.connect()
        with self.assertRaises(sluice.NoResponders) as caught:
            await client.request(unique("nobody"), b"?", timeout=5)
        self.assertEqual((caught.exception.code, caught.exception.name), (104, "NO_RESPONDERS"))
        await client.ping()

    async def test_timeout_then_late_reply_is_unknown(self) -> None:
        subject = unique("slow")
        responder, requester = await self.connect(), await self.connect()
        sub = await responder.subscribe(subject)  # serves the subject but does not answer in time
        with self.assertRaises(sluice.RequestTimeout) as caught:
            await requester.request(subject, b"?", timeout=0.3)
        self.assertEqual((caught.exception.code, caught.exception.name), (106, "TIMEOUT"))
        request = await sub.next(5)
        assert isinstance(request, sluice.Request)
        with self.assertRaises(sluice.UnknownId):
            await request.reply(b"too late", ack=True)

    async def test_responder_gone(self) -> None:
        subject = unique("flaky")
        responder, requester = await self.connect(), await self.connect()
        sub = await responder.subscribe(subject)
        asking = asyncio.ensure_future(requester.request(subject, b"?", timeout=10))
        await sub.next(5)
        await responder.close()
        with self.assertRaises(sluice.ResponderGone):
            await asking


class SessionTests(DaemonTestCase):
    async def test_welcome_ping_and_stats(self) -> None:
        client = await self.connect()
        self.assertEqual(client.welcome.version, 1)
        self.assertGreater(client.welcome.max_frame_size, 0)
        self.assertTrue(client.server_name)
        self.assertGreaterEqual(await client.ping(), 0.0)
        stats = await client.stats()
        self.assertIsInstance(stats, dict)
        self.assertTrue(stats, "STATS_REPLY had no counters")
        for name, value in stats.items():
            self.assertIsInstance(name, str)
            self.assertIsInstance(value, int)

    async def test_close_says_goodbye_and_the_server_closes(self) -> None:
        client = await self.connect()
        sub = await client.subscribe(unique("bye"))
        await client.close()
        self.assertEqual((await client.wait_closed()).reason, "closed")
        with self.assertRaises(StopAsyncIteration):
            await sub.next(1)
        with self.assertRaises(sluice.ConnectionClosed):
            await client.publish("a", b"")

    async def test_largest_publish_fits(self) -> None:
        subject = unique("big")
        client = await self.connect()
        sub = await client.subscribe(subject)
        payload = b"x" * (client.welcome.max_frame_size - 10 - len(subject))
        await client.publish(subject, payload, ack=True)
        self.assertEqual(len((await sub.next(10)).payload), len(payload))  # type: ignore[union-attr]

    async def test_sync_client(self) -> None:
        assert self.daemon is not None
        port = self.daemon.port
        queue = unique("sync")

        def script() -> List[bytes]:
            with sluice.SyncClient("127.0.0.1", port) as client:
                client.push(queue, b"a", ack=True)
                client.set(queue, b"v", ack=True)
                consumer = client.consume(queue)
                job = consumer.next(5)
                job.ack(confirm=True)
                return [job.payload, client.get(queue).payload]

        self.assertEqual(await asyncio.get_running_loop().run_in_executor(None, script), [b"a", b"v"])


class TokenTests(DaemonTestCase):
    daemon_args = ["--token", "s3cret"]

    async def test_token_is_required(self) -> None:
        assert self.daemon is not None
        for token in (None, "wrong"):
            with self.subTest(token=token):
                with self.assertRaises(sluice.AuthenticationFailed) as caught:
                    await sluice.connect("127.0.0.1", self.daemon.port, token=token)
                self.assertEqual(caught.exception.code, 12)
        client = await self.connect(token="s3cret")
        await client.ping()


if __name__ == "__main__":
    unittest.main()
