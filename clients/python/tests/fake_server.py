"""A scripted fake server for testing the client's own logic (routing, PING answers, connection errors).

It speaks the wire format through `sluice.codec` (itself checked against the shared vectors) and does nothing on
its own except the handshake: the test reads what the client sent and decides what the "server" sends back.
"""

from __future__ import annotations

import asyncio
from typing import List, Optional, Type, TypeVar

import support  # noqa: F401

from sluice import codec

F = TypeVar("F", bound=codec.Frame)

WELCOME = codec.Welcome(1, codec.DEFAULT_MAX_FRAME_SIZE, 0, 64, 1024, "fake 0.0")


class FakeConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = codec.FrameDecoder(1 << 24)
        self.hello: Optional[codec.Hello] = None

    async def recv(self, timeout: float = 5.0) -> codec.Frame:
        """The next frame the client sent."""
        while True:
            frame = self.decoder.next_frame()
            if frame is not None:
                return frame
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise EOFError("the client closed the connection")
            self.decoder.feed(data)

    async def expect(self, kind: Type[F], timeout: float = 5.0) -> F:
        """The next frame, which must be a `kind`."""
        frame = await self.recv(timeout)
        if not isinstance(frame, kind):
            raise AssertionError(f"expected {kind.__name__}, the client sent {frame!r}")
        return frame

    def send(self, *frames: codec.Frame) -> None:
        self.writer.write(b"".join(codec.encode(frame) for frame in frames))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_until_eof(self, timeout: float = 5.0) -> List[codec.Frame]:
        """Every frame the client sends until it closes the connection."""
        frames: List[codec.Frame] = []
        while True:
            try:
                frames.append(await self.recv(timeout))
            except EOFError:
                return frames

    def close(self) -> None:
        self.writer.close()


class FakeServer:
    """Accepts connections on 127.0.0.1 (a free port). With `welcome`, answers each HELLO with it at once."""

    def __init__(self, welcome: Optional[codec.Welcome] = WELCOME) -> None:
        self.welcome = welcome
        self.connections: "asyncio.Queue[FakeConnection]" = asyncio.Queue()
        self.server: Optional[asyncio.AbstractServer] = None
        self.port = 0
        self.all: List[FakeConnection] = []

    async def start(self) -> "FakeServer":
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = FakeConnection(reader, writer)
        self.all.append(connection)
        try:
            connection.hello = await connection.expect(codec.Hello)
        except (EOFError, ConnectionError, asyncio.TimeoutError):
            writer.close()
            return
        if self.welcome is not None:
            connection.send(self.welcome)
        await self.connections.put(connection)

    async def accept(self, timeout: float = 5.0) -> FakeConnection:
        """The next connection whose HELLO has arrived."""
        return await asyncio.wait_for(self.connections.get(), timeout)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for connection in self.all:
            connection.close()
            try:
                await connection.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        if self.server is not None:
            await self.server.wait_closed()
