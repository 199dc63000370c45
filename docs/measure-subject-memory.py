#!/usr/bin/env python3
"""Resident memory per subscribed subject: starts a sluiced binary on port 7499, subscribes one connection to
COUNT distinct subjects (none published to), and prints the daemon's VmRSS growth per subject.

    python3 docs/measure-subject-memory.py .build/release/sluiced 2000
"""
import asyncio
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients" / "python"))
import sluice  # noqa: E402


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def main(binary: str, count: int) -> None:
    daemon = subprocess.Popen(
        [binary, "--port", "7499", "--max-subscriptions", str(max(count, 1024))], stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)
        client = await sluice.connect("127.0.0.1", 7499)
        await client.ping()
        before = rss_kib(daemon.pid)
        subscriptions = [await client.subscribe(f"device.{i}.status") for i in range(count)]
        await client.ping()
        after = rss_kib(daemon.pid)
        print(
            f"{binary}: {count} subjects: RSS {before} -> {after} KiB, "
            f"{(after - before) * 1024 / count:.0f} B per subscribed subject"
        )
        del subscriptions
        await client.close()
    finally:
        daemon.terminate()
        daemon.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
