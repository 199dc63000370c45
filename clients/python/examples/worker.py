#!/usr/bin/env python3
"""A work-queue worker: consumes a queue, handles each job, ACKs it (or NACKs it for a retry when it fails).

Run against a local daemon (from the repository root)::

    swift build --product sluiced && .build/debug/sluiced --port 7420 &
    python3 clients/python/examples/worker.py --server 127.0.0.1:7420 --queue jobs --credit 4

then feed it jobs from another terminal (any payload; "fail" makes the handler raise once to show a NACK)::

    python3 clients/python/examples/worker.py --server 127.0.0.1:7420 --queue jobs --push "resize a.png" fail

(or with the CLI: `sluice push --server 127.0.0.1:7420 jobs "resize a.png"`). Stop the worker with Ctrl-C: it
takes no new job, finishes and acknowledges the ones it holds, unsubscribes and leaves with GOODBYE; jobs a worker took but never acknowledged (it
crashed, say) go to another worker, flagged redelivered.

Without installing the package, the script finds it next to itself (clients/python/sluice).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the package beside this script, if not installed

import sluice  # noqa: E402


async def handle(job: sluice.Delivery) -> None:
    """The work. Replace with yours; raising means "retry later" here."""
    if job.text == "fail" and not job.redelivered:
        raise RuntimeError("failing once on purpose")
    await asyncio.sleep(0.1)  # pretend to work
    print(f"done: {job.text!r}{' (redelivered)' if job.redelivered else ''}", flush=True)


async def work(client: sluice.Client, queue: str, credit: int) -> None:
    consumer = await client.consume(queue, credit=credit)
    print(f"consuming {queue!r} with credit {credit} on {client.server_name}; Ctrl-C stops", flush=True)
    # Ctrl-C or SIGTERM: take no new job, finish and settle the ones held, then unsubscribe.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    running: "set[asyncio.Task[None]]" = set()

    async def run(job: sluice.Delivery) -> None:
        try:
            await handle(job)
        except Exception as error:  # the job goes back to the queue, flagged redelivered
            print(f"failed: {job.text!r}: {error}; NACK", flush=True)
            await job.nack()
        else:
            await job.ack()

    stopping = asyncio.ensure_future(stop.wait())
    # Up to `credit` jobs run at once: the server sends no more until one is settled.
    while True:
        taking = asyncio.ensure_future(consumer.__anext__())
        await asyncio.wait({taking, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not taking.done():
            taking.cancel()  # nothing is lost: a job not yet taken stays buffered, then goes back on unsubscribe
            break
        task = asyncio.ensure_future(run(taking.result()))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.gather(*running, return_exceptions=True)
    await consumer.unsubscribe()


async def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:7420", help="host:port of sluiced (default 127.0.0.1:7420)")
    parser.add_argument("--token", default=None, help="the daemon's token, if it requires one")
    parser.add_argument("--queue", default="jobs", help="the work queue (default jobs)")
    parser.add_argument("--credit", type=int, default=4, help="jobs in flight at once (default 4)")
    parser.add_argument("--push", nargs="+", metavar="PAYLOAD", help="push these jobs and exit instead of working")
    args = parser.parse_args(argv)
    host, port = sluice.parse_server(args.server)
    try:
        client = await sluice.connect(host, port, token=args.token, name="worker.py")
    except (OSError, sluice.SluiceError) as error:
        print(f"worker.py: cannot connect to {args.server}: {error}", file=sys.stderr)
        return 1
    async with client:
        if args.push:
            for payload in args.push:
                await client.push(args.queue, payload, ack=True)
            print(f"pushed {len(args.push)} job(s) to {args.queue!r}")
            return 0
        try:
            await work(client, args.queue, args.credit)
        except sluice.ConnectionClosed as error:
            print(f"worker.py: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
