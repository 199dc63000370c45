#!/usr/bin/env python3
"""A request/reply service: answers requests on a subject, and a client mode that calls it.

Run against a local daemon (from the repository root)::

    swift build --product sluiced && .build/debug/sluiced --port 7420 &
    python3 clients/python/examples/service.py --server 127.0.0.1:7420 serve

then call it from another terminal::

    python3 clients/python/examples/service.py --server 127.0.0.1:7420 call "hello world"
    # -> HELLO WORLD   (served by service.py, 2 ms)

The service answers two subjects: `text.upper` (the payload in upper case) and `time.now` (the server time, ISO
8601). Start several `serve` processes with `--group workers` to share the load: each request goes to one of them.
Calling with nobody serving prints NO_RESPONDERS; a slow service prints TIMEOUT.

Without installing the package, the script finds it next to itself (clients/python/sluice).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the package beside this script, if not installed

import sluice  # noqa: E402


def upper(request: sluice.Request) -> bytes:
    return request.payload.upper()


async def now(request: sluice.Request) -> None:
    # A handler may also reply itself, with headers.
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat()
    await request.reply(stamp, headers={"served-by": "service.py"})


async def serve(client: sluice.Client, group: Optional[str]) -> None:
    services = [
        await client.serve("text.upper", upper, queue_group=group),
        await client.serve("time.now", now, queue_group=group),
    ]
    print(f"serving text.upper and time.now on {client.server_name}; Ctrl-C stops", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    ended = asyncio.ensure_future(services[0].wait())  # ends if the connection does
    await asyncio.wait({ended, asyncio.ensure_future(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    for service in services:
        await service.stop()


async def call(client: sluice.Client, subject: str, text: str, timeout: float) -> int:
    started = time.monotonic()
    try:
        response = await client.request(subject, text, headers={"caller": "service.py"}, timeout=timeout)
    except (sluice.NoResponders, sluice.RequestTimeout, sluice.ResponderGone) as error:
        print(f"{error.name}: {error.message}", file=sys.stderr)
        return 1
    elapsed = (time.monotonic() - started) * 1000
    print(f"{response.text}   (served by {response.header('served-by', 'service.py')}, {elapsed:.0f} ms)")
    return 0


async def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:7420", help="host:port of sluiced (default 127.0.0.1:7420)")
    parser.add_argument("--token", default=None, help="the daemon's token, if it requires one")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_command = commands.add_parser("serve", help="answer requests")
    serve_command.add_argument("--group", default=None, help="queue group shared by several service processes")
    call_command = commands.add_parser("call", help="send one request")
    call_command.add_argument("text", nargs="?", default="hello")
    call_command.add_argument("--subject", default="text.upper", help="text.upper (default) or time.now")
    call_command.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    args = parser.parse_args(argv)
    host, port = sluice.parse_server(args.server)
    try:
        client = await sluice.connect(host, port, token=args.token, name="service.py")
    except (OSError, sluice.SluiceError) as error:
        print(f"service.py: cannot connect to {args.server}: {error}", file=sys.stderr)
        return 1
    async with client:
        if args.command == "serve":
            await serve(client, args.group)
            return 0
        return await call(client, args.subject, args.text, args.timeout)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
