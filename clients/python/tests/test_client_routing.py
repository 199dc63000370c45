"""The asyncio client against a scripted fake server: handshake, routing by request and subscription id, PING
answers, connection-ending errors, close. (The real daemon is exercised by test_daemon.py.)"""

from __future__ import annotations

import asyncio
import logging
import threading
import unittest
from typing import Any, Coroutine, List, Optional, TypeVar

import support  # noqa: F401

import sluice
from sluice import codec
from fake_server import WELCOME, FakeConnection, FakeServer

T = TypeVar("T")


class RoutingTestCase(unittest.IsolatedAsyncioTestCase):
    welcome: Optional[codec.Welcome] = WELCOME

    async def asyncSetUp(self) -> None:
        self.server = await FakeServer(self.welcome).start()
        self.errors: List[sluice.SluiceError] = []
        self.clients: List[sluice.Client] = []

    async def asyncTearDown(self) -> None:
        for client in self.clients:
            if not client.is_closed:
                client._finish(sluice.ConnectionClosed("closed"))
            await client.wait_closed()
        await self.server.stop()

    async def connect(self, **options: Any) -> "tuple[sluice.Client, FakeConnection]":
        client = await sluice.connect("127.0.0.1", self.server.port, on_error=self.errors.append, **options)
        self.clients.append(client)
        return client, await self.server.accept()


class HandshakeTests(RoutingTestCase):
    async def test_hello_carries_name_and_token_and_welcome_is_kept(self) -> None:
        client, conn = await self.connect(token="s3cret", name="tester")
        self.assertEqual(conn.hello, codec.Hello(1, "tester", "s3cret"))
        self.assertEqual(client.welcome, WELCOME)
        self.assertEqual(client.server_name, "fake 0.0")

    async def test_hello_without_token_has_no_token_flag(self) -> None:
        _, conn = await self.connect()
        assert conn.hello is not None
        self.assertIsNone(conn.hello.token)


class HandshakeRefusedTests(RoutingTestCase):
    welcome = None

    async def test_error_answer_to_hello_raises_its_subclass(self) -> None:
        async def refuse() -> None:
            conn = await self.server.accept()
            conn.send(codec.Error(0, 12, "bad token"))
            conn.close()

        refuser = asyncio.ensure_future(refuse())
        with self.assertRaises(sluice.AuthenticationFailed) as caught:
            await sluice.connect("127.0.0.1", self.server.port, token="wrong")
        await refuser
        self.assertEqual((caught.exception.code, caught.exception.name), (12, "AUTHENTICATION_FAILED"))
        self.assertTrue(caught.exception.closes_connection)

    async def test_other_first_frame_is_unexpected(self) -> None:
        async def misbehave() -> None:
            conn = await self.server.accept()
            conn.send(codec.Ok(1))

        task = asyncio.ensure_future(misbehave())
        with self.assertRaises(sluice.UnexpectedFrame):
            await sluice.connect("127.0.0.1", self.server.port)
        await task


class RequestRoutingTests(RoutingTestCase):
    async def test_answers_reach_their_request_ids_in_any_order(self) -> None:
        client, conn = await self.connect()
        first = asyncio.ensure_future(client.request("time.now", b"1", timeout=2))
        second = asyncio.ensure_future(client.request("time.now", b"2", timeout=2))
        a = await conn.expect(codec.Request)
        b = await conn.expect(codec.Request)
        self.assertEqual((a.payload, b.payload, a.timeout_ms), (b"1", b"2", 2000))
        self.assertNotEqual(a.request_id, b.request_id)
        self.assertNotEqual(a.request_id, 0)
        conn.send(codec.Response(b.request_id, (("h", "v"),), b"for two"),
                  codec.Response(a.request_id, (), b"for one"))
        self.assertEqual((await first).payload, b"for one")
        response = await second
        self.assertEqual((response.payload, response.header("h")), (b"for two", "v"))

    async def test_get_stats_and_acked_publish(self) -> None:
        client, conn = await self.connect()
        get = asyncio.ensure_future(client.get("config.mode"))
        stats = asyncio.ensure_future(client.stats())
        publish = asyncio.ensure_future(client.publish("a.b", "text", headers={"trace": "x1"}, ack=True))
        g = await conn.expect(codec.Get)
        s = await conn.expect(codec.Stats)
        p = await conn.expect(codec.Pub)
        self.assertEqual((p.subject, p.headers, p.payload, p.ack_wanted), ("a.b", (("trace", "x1"),), b"text", True))
        conn.send(codec.Ok(p.request_id), codec.StatsReply(s.request_id, (("connections", 2), ("messages_in", 9))),
                  codec.Value(g.request_id, False, 3, "config.mode", (), b"on"))
        self.assertEqual(await get, sluice.Value("config.mode", 3, b"on", ()))
        self.assertEqual(await stats, {"connections": 2, "messages_in": 9})
        await publish

    async def test_request_errors_raise_subclasses_and_connection_stays_open(self) -> None:
        client, conn = await self.connect()
        for code, cls in ((104, sluice.NoResponders), (105, sluice.ResponderGone), (106, sluice.RequestTimeout)):
            with self.subTest(code=code):
                call = asyncio.ensure_future(client.request("nobody.home"))
                frame = await conn.expect(codec.Request)
                conn.send(codec.Error(frame.request_id, code, "nope"))
                with self.assertRaises(cls) as caught:
                    await call
                self.assertIsInstance(caught.exception, sluice.SluiceError)
                self.assertEqual(caught.exception.code, code)
                self.assertEqual(caught.exception.name, sluice.error_name(code))
                self.assertEqual(caught.exception.request_id, frame.request_id)
                self.assertFalse(caught.exception.closes_connection)
        self.assertFalse(client.is_closed)

    async def test_unknown_code_from_100_up_fails_only_the_request(self) -> None:
        client, conn = await self.connect()
        call = asyncio.ensure_future(client.set("k", b"v", ack=True))
        frame = await conn.expect(codec.Set)
        conn.send(codec.Error(frame.request_id, 777, "new"))
        with self.assertRaises(sluice.SluiceError) as caught:
            await call
        self.assertEqual((caught.exception.code, caught.exception.name), (777, "UNKNOWN_ERROR_777"))
        self.assertFalse(client.is_closed)

    async def test_error_for_a_frame_sent_without_ack_goes_to_on_error(self) -> None:
        client, conn = await self.connect()
        await client.publish("bad subject", b"")
        frame = await conn.expect(codec.Pub)
        self.assertFalse(frame.ack_wanted)
        conn.send(codec.Error(frame.request_id, 100, "bad subject"), codec.Pong())
        client._pings.append(None)  # the PONG marks when the ERROR has been routed
        while client._pings:
            await asyncio.sleep(0.01)
        self.assertEqual([type(e) for e in self.errors], [sluice.BadSubject])

    async def test_frame_over_the_servers_limit_is_refused_locally(self) -> None:
        client, _ = await self.connect()
        with self.assertRaises(ValueError):
            await client.publish("big", b"x" * WELCOME.max_frame_size)
        await client.publish("big", b"x" * (WELCOME.max_frame_size - 10 - 3))  # exactly the largest PUB payload

    async def test_request_ids_wrap_and_skip_ids_in_use(self) -> None:
        client, conn = await self.connect()
        client._next_request_id = 0xFFFF_FFFF
        first = asyncio.ensure_future(client.get("a"))
        a = await conn.expect(codec.Get)
        client._next_request_id = 0xFFFF_FFFF  # as if the counter came round again while `a` is unanswered
        second = asyncio.ensure_future(client.get("b"))
        b = await conn.expect(codec.Get)
        self.assertEqual((a.request_id, b.request_id), (0xFFFF_FFFF, 1))
        conn.send(codec.Value(b.request_id, False, 0, "b"), codec.Value(a.request_id, False, 0, "a"))
        self.assertEqual(((await first).key, (await second).key), ("a", "b"))


class SessionTests(RoutingTestCase):
    async def test_server_ping_is_answered_with_pong(self) -> None:
        _, conn = await self.connect()
        conn.send(codec.Ping())
        await conn.expect(codec.Pong)

    async def test_client_ping_waits_for_pong(self) -> None:
        client, conn = await self.connect()
        ping = asyncio.ensure_future(client.ping())
        await conn.expect(codec.Ping)
        self.assertFalse(ping.done())
        conn.send(codec.Pong())
        self.assertGreaterEqual(await ping, 0.0)

    async def test_error_below_100_fails_every_waiter_and_stream(self) -> None:
        client, conn = await self.connect()
        sub_task = asyncio.ensure_future(client.subscribe("orders.*"))
        sub_frame = await conn.expect(codec.Sub)
        conn.send(codec.Ok(sub_frame.request_id))
        sub = await sub_task
        waiting = asyncio.ensure_future(client.request("x", timeout=None))
        await conn.expect(codec.Request)
        with self.assertLogs("sluice", logging.WARNING):
            conn.send(codec.Error(0, 14, "idle"))
            with self.assertRaises(sluice.ConnectionClosed) as caught:
                await waiting
        closed = caught.exception
        self.assertEqual((closed.reason, closed.code, closed.name), ("error", 14, "IDLE_TIMEOUT"))
        self.assertIsInstance(closed.error, sluice.IdleTimeout)
        with self.assertRaises(sluice.ConnectionClosed):
            await sub.__anext__()
        with self.assertRaises(sluice.ConnectionClosed):
            await client.publish("a", b"")
        self.assertTrue(client.is_closed)
        self.assertEqual(await conn.read_until_eof(), [])

    async def test_goodbye_ends_the_connection(self) -> None:
        client, conn = await self.connect()
        waiting = asyncio.ensure_future(client.get("k"))
        await conn.expect(codec.Get)
        conn.send(codec.Goodbye())
        with self.assertRaises(sluice.ConnectionClosed) as caught:
            await waiting
        self.assertEqual((caught.exception.reason, caught.exception.code), ("goodbye", 0))
        self.assertEqual(await conn.read_until_eof(), [])

    async def test_malformed_frame_from_the_server_closes_the_connection(self) -> None:
        client, conn = await self.connect()
        waiting = asyncio.ensure_future(client.get("k"))
        await conn.expect(codec.Get)
        with self.assertLogs("sluice", logging.WARNING):
            conn.send_raw(bytes.fromhex("0000000203" "00"))  # PING with a trailing byte
            reason = await client.wait_closed()
        self.assertEqual(reason.reason, "protocol")
        assert isinstance(reason.error, sluice.ProtocolError)
        # The stream offset counts from the connection's first byte: the WELCOME came before.
        self.assertEqual((reason.error.code, reason.error.offset), (6, len(codec.encode(WELCOME)) + 5))
        with self.assertRaises(sluice.ConnectionClosed):
            await waiting

    async def test_frame_only_a_client_sends_is_unexpected(self) -> None:
        client, conn = await self.connect()
        with self.assertLogs("sluice", logging.WARNING):
            conn.send(codec.Get(1, "k"))
            reason = await client.wait_closed()
        self.assertIsInstance(reason.error, sluice.UnexpectedFrame)

    async def test_eof_ends_the_connection(self) -> None:
        client, conn = await self.connect()
        conn.close()
        reason = await client.wait_closed()
        self.assertEqual(reason.reason, "eof")

    async def test_close_sends_goodbye_and_reads_until_the_server_closes(self) -> None:
        client, conn = await self.connect()
        sub_task = asyncio.ensure_future(client.subscribe("a"))
        sub_frame = await conn.expect(codec.Sub)
        conn.send(codec.Ok(sub_frame.request_id))
        sub = await sub_task
        closing = asyncio.ensure_future(client.close())
        await conn.expect(codec.Goodbye)
        await asyncio.sleep(0.05)
        self.assertFalse(closing.done())  # still reading: the server has not closed yet
        conn.send(codec.Ping(), codec.Goodbye())  # no PONG after our GOODBYE; a GOODBYE back is fine
        conn.close()
        await closing
        self.assertEqual((await client.wait_closed()).reason, "closed")
        with self.assertRaises(StopAsyncIteration):  # streams end cleanly on close()
            await sub.__anext__()
        with self.assertRaises(sluice.ConnectionClosed):
            await client.ping()

    async def test_keepalive_pings_a_silent_server_then_gives_up(self) -> None:
        self.server.welcome = codec.Welcome(1, 1 << 20, 200, 64, 1024, "fake")
        client, conn = await self.connect()
        await conn.expect(codec.Ping, timeout=2)
        with self.assertLogs("sluice", logging.WARNING):
            reason = await asyncio.wait_for(client.wait_closed(), 2)
        self.assertEqual(reason.reason, "timeout")


class SubscriptionRoutingTests(RoutingTestCase):
    last_frame: Any = None

    async def open(self, client: sluice.Client, conn: FakeConnection, call: "Coroutine[Any, Any, T]") -> T:
        task = asyncio.ensure_future(call)
        frame = await conn.recv()
        self.last_frame = frame
        conn.send(codec.Ok(self.last_frame.request_id))
        return await task

    async def test_msgs_and_lagged_reach_their_subscription(self) -> None:
        client, conn = await self.connect()
        one = await self.open(client, conn, client.subscribe("orders.*"))
        self.assertEqual(self.last_frame, codec.Sub(self.last_frame.request_id, one.id, "orders.*", None))
        two = await self.open(client, conn, client.subscribe("jobs.>", queue_group="workers"))
        self.assertEqual(self.last_frame.queue_group, "workers")  # type: ignore[attr-defined]
        self.assertNotEqual(one.id, two.id)
        conn.send(
            codec.Msg(two.id, codec.MsgKind.SUBJECT, "jobs.a.b", (("k", "v"),), b"2"),
            codec.Msg(one.id, codec.MsgKind.SUBJECT, "orders.new", (), b"1"),
            codec.Lagged(one.id, 17),
            codec.Msg(one.id, codec.MsgKind.SUBJECT, "orders.old", (), b"3"),
        )
        self.assertEqual(await one.next(2), sluice.Message("orders.new", b"1", (), one.id))
        self.assertEqual(await one.next(2), sluice.Lagged(17, one.id, local=False))
        self.assertEqual((await one.next(2)).payload, b"3")  # type: ignore[union-attr]
        message = await two.next(2)
        assert isinstance(message, sluice.Message)
        self.assertEqual((message.subject, message.header("k"), message.text), ("jobs.a.b", "v", "2"))

    async def test_slow_iterator_past_max_pending_gets_a_local_lagged(self) -> None:
        client, conn = await self.connect()
        sub = await self.open(client, conn, client.subscribe("s", max_pending=2))
        conn.send(*[codec.Msg(sub.id, codec.MsgKind.SUBJECT, "s", (), bytes([i])) for i in range(5)])
        conn.send(codec.Ping())
        await conn.expect(codec.Pong)  # everything before the PING has been routed
        self.assertEqual(await sub.next(1), sluice.Lagged(3, sub.id, local=True))
        self.assertEqual([(await sub.next(1)).payload for _ in range(2)], [b"\x03", b"\x04"])  # type: ignore

    async def test_unsubscribe_waits_for_ok_and_ends_iteration(self) -> None:
        client, conn = await self.connect()
        sub = await self.open(client, conn, client.subscribe("s"))
        reader = asyncio.ensure_future(sub.__anext__())
        unsub = asyncio.ensure_future(sub.unsubscribe())
        frame = await conn.expect(codec.Unsub)
        self.assertEqual(frame.subscription_id, sub.id)
        conn.send(codec.Msg(sub.id, codec.MsgKind.SUBJECT, "s", (), b"late"), codec.Ok(frame.request_id))
        await unsub
        with self.assertRaises(StopAsyncIteration):
            await reader
        self.assertNotIn(sub.id, client._inboxes)

    async def test_refused_subscription_raises_and_is_forgotten(self) -> None:
        client, conn = await self.connect()
        task = asyncio.ensure_future(client.subscribe("bad..subject"))
        frame = await conn.expect(codec.Sub)
        conn.send(codec.Error(frame.request_id, 100, "bad subject"))
        with self.assertRaises(sluice.BadSubject):
            await task
        self.assertEqual(client._inboxes, {})

    async def test_consumer_deliveries_ack_and_nack(self) -> None:
        client, conn = await self.connect()
        consumer = await self.open(client, conn, client.consume("jobs", credit=2))
        self.assertEqual(self.last_frame, codec.Consume(self.last_frame.request_id, consumer.id, 2, "jobs"))
        conn.send(codec.Msg(consumer.id, codec.MsgKind.QUEUE, "jobs", (), b"a", 41),
                  codec.Msg(consumer.id, codec.MsgKind.QUEUE, "jobs", (), b"b", 42, redelivered=True))
        first = await consumer.next(2)
        second = await consumer.next(2)
        self.assertEqual((first.delivery_id, first.redelivered, second.redelivered), (41, False, True))
        await first.ack()
        ack = await conn.expect(codec.Ack)
        self.assertEqual((ack.delivery_id, ack.ack_wanted), (41, False))
        nacking = asyncio.ensure_future(second.nack(confirm=True))
        nack = await conn.expect(codec.Nack)
        self.assertEqual((nack.delivery_id, nack.ack_wanted), (42, True))
        conn.send(codec.Ok(nack.request_id))
        await nacking
        with self.assertRaises(RuntimeError):
            await first.ack()
        credit = asyncio.ensure_future(consumer.set_credit(0))
        frame = await conn.expect(codec.Consume)
        self.assertEqual((frame.subscription_id, frame.credit), (consumer.id, 0))
        conn.send(codec.Ok(frame.request_id))
        await credit

    async def test_watch_values_route_by_subscription_id_and_keep_the_newest(self) -> None:
        client, conn = await self.connect()
        watcher = await self.open(client, conn, client.watch("config.mode"))
        self.assertEqual(self.last_frame, codec.Watch(self.last_frame.request_id, watcher.id, "config.mode"))
        conn.send(codec.Value(watcher.id, True, 0, "config.mode"))
        self.assertFalse((await watcher.next(2)).exists)
        conn.send(*[codec.Value(watcher.id, True, revision, "config.mode", (), b"v%d" % revision)
                    for revision in (1, 2, 3)])
        conn.send(codec.Ping())
        await conn.expect(codec.Pong)
        newest = await watcher.next(2)
        self.assertEqual((newest.revision, newest.text), (3, "v3"))

    async def test_serve_replies_with_the_handlers_result(self) -> None:
        client, conn = await self.connect()

        async def double(request: sluice.Request) -> bytes:
            return request.payload * 2

        serving = asyncio.ensure_future(client.serve("math.double", double))
        sub = await conn.expect(codec.Sub)
        conn.send(codec.Ok(sub.request_id))
        service = await serving
        conn.send(codec.Msg(sub.subscription_id, codec.MsgKind.REQUEST, "math.double", (), b"ab", 8),
                  codec.Msg(sub.subscription_id, codec.MsgKind.SUBJECT, "math.double", (), b"ignored"))
        reply = await conn.expect(codec.Reply)
        self.assertEqual((reply.reply_id, reply.payload, reply.ack_wanted), (8, b"abab", False))
        stopping = asyncio.ensure_future(service.stop())
        unsub = await conn.expect(codec.Unsub)
        conn.send(codec.Ok(unsub.request_id))
        await stopping

    async def test_request_delivered_to_a_subscription_can_be_answered(self) -> None:
        client, conn = await self.connect()
        sub = await self.open(client, conn, client.subscribe("time.now"))
        conn.send(codec.Msg(sub.id, codec.MsgKind.REQUEST, "time.now", (), b"", 2**64 - 1))
        request = await sub.next(2)
        assert isinstance(request, sluice.Request)
        answering = asyncio.ensure_future(request.reply("12", headers=[("a", "1"), ("a", "2")], ack=True))
        reply = await conn.expect(codec.Reply)
        self.assertEqual((reply.reply_id, reply.headers, reply.payload), (2**64 - 1, (("a", "1"), ("a", "2")), b"12"))
        conn.send(codec.Error(reply.request_id, 108, "too late"))
        with self.assertRaises(sluice.UnknownId):
            await answering


class _BackgroundServer:
    """A FakeServer on its own loop thread, for the blocking client (which runs its own loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: FakeServer = self.run(self._start())

    async def _start(self) -> FakeServer:
        return await FakeServer().start()

    def run(self, coro: "Coroutine[Any, Any, T]") -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class SyncClientTests(unittest.TestCase):
    def setUp(self) -> None:
        self.background = _BackgroundServer()
        self.addCleanup(self.background.stop)

    def test_blocking_calls_and_iteration(self) -> None:
        server = self.background.server
        client = sluice.SyncClient("127.0.0.1", server.port)
        conn = self.background.run(server.accept())

        async def answer_next() -> codec.Frame:
            frame = await conn.recv()
            if isinstance(frame, codec.Get):
                conn.send(codec.Value(frame.request_id, False, 1, frame.key, (), b"on"))
            elif isinstance(frame, (codec.Consume, codec.Unsub)):
                conn.send(codec.Ok(frame.request_id))
            elif isinstance(frame, codec.Goodbye):
                conn.close()
            return frame

        answering = asyncio.run_coroutine_threadsafe(answer_next(), self.background.loop)
        self.assertEqual(client.get("config.mode").text, "on")
        answering.result(5)
        answering = asyncio.run_coroutine_threadsafe(answer_next(), self.background.loop)
        consumer = client.consume("jobs", credit=1)
        answering.result(5)
        conn.send(codec.Msg(consumer.id, codec.MsgKind.QUEUE, "jobs", (), b"job", 5))
        job = next(iter(consumer))
        self.assertEqual((job.payload, job.delivery_id), (b"job", 5))
        job.ack()
        ack = self.background.run(conn.expect(codec.Ack))
        self.assertEqual(ack.delivery_id, 5)
        with self.assertRaises(TimeoutError):
            consumer.next(timeout=0.05)
        answering = asyncio.run_coroutine_threadsafe(answer_next(), self.background.loop)
        client.close()
        self.assertIsInstance(answering.result(5), codec.Goodbye)
        self.assertTrue(client.client.is_closed)


if __name__ == "__main__":
    unittest.main()
