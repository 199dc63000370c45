"""Sluice: a standard-library asyncio client for the Sluice message broker (wire protocol version 1).

Quick start::

    import asyncio, sluice

    async def main() -> None:
        async with await sluice.connect("127.0.0.1", 7420) as client:
            await client.set("config.mode", "on", ack=True)
            print((await client.get("config.mode")).text)

    asyncio.run(main())

Modules: :mod:`sluice.client` (the asyncio client), :mod:`sluice.sync` (a blocking wrapper for scripts),
:mod:`sluice.codec` (frames, encoder, incremental decoder), :mod:`sluice.errors` (error codes and exceptions).
"""

from .client import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    Client,
    Consumer,
    Delivery,
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
    parse_server,
)
from .errors import (
    AuthenticationFailed,
    BadName,
    BadSubject,
    ConnectionClosed,
    DuplicateId,
    LimitReached,
    ErrorCode,
    HelloRequired,
    IdleTimeout,
    NoResponders,
    NotPermitted,
    ProtocolError,
    QueueFull,
    RequestTimeout,
    ResponderGone,
    ShuttingDown,
    SluiceError,
    SlowConsumer,
    TooManyConnections,
    TooManySubscriptions,
    UnexpectedFrame,
    UnknownId,
    UnsupportedVersion,
    error_name,
)
from .sync import SyncClient

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "AuthenticationFailed",
    "BadName",
    "BadSubject",
    "Client",
    "ConnectionClosed",
    "Consumer",
    "Delivery",
    "DuplicateId",
    "LimitReached",
    "ErrorCode",
    "HelloRequired",
    "IdleTimeout",
    "Lagged",
    "Message",
    "NoResponders",
    "NotPermitted",
    "Payload",
    "ProtocolError",
    "QueueFull",
    "Request",
    "RequestTimeout",
    "ResponderGone",
    "Response",
    "Service",
    "ShuttingDown",
    "SluiceError",
    "SlowConsumer",
    "Subscription",
    "SyncClient",
    "TooManyConnections",
    "TooManySubscriptions",
    "UnexpectedFrame",
    "UnknownId",
    "UnsupportedVersion",
    "Value",
    "Watcher",
    "connect",
    "error_name",
    "parse_server",
]
