"""Load client for the passthrough benchmark: N listeners of one stream URL in one asyncio
process. Connects them all, keeps reading for --seconds after the last one is in, and
prints JSON: connected, still_connected, bytes_per_listener_per_s. Run by passthrough.py."""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from urllib.parse import urlparse


async def listener(host: str, port: int, path: str, counts: dict, stop: asyncio.Event) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
    except (OSError, TimeoutError):
        counts["failed"] += 1
        return
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            counts["failed"] += 1
            return
        counts["connected"] += 1
        while not stop.is_set():
            chunk = await reader.read(65536)
            if not chunk:
                counts["dropped"] += 1
                return
            if counts["measuring"]:
                counts["bytes"] += len(chunk)
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        counts["dropped"] += 1
    finally:
        writer.close()


async def run(url: str, count: int, seconds: float, ramp: float) -> dict:
    parsed = urlparse(url)
    if parsed.hostname is None or parsed.port is None:
        raise ValueError(f"{url}: want http://HOST:PORT/PATH")
    counts = {"connected": 0, "failed": 0, "dropped": 0, "bytes": 0, "measuring": False}
    stop = asyncio.Event()
    tasks = []
    for _ in range(count):
        tasks.append(
            asyncio.create_task(listener(parsed.hostname, parsed.port, parsed.path, counts, stop))
        )
        await asyncio.sleep(ramp / count)  # pacing the arrivals, as a real audience would
    deadline = time.monotonic() + 60
    while counts["connected"] + counts["failed"] < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    print(json.dumps({"ready": counts["connected"]}), flush=True)
    counts["measuring"] = True
    await asyncio.sleep(seconds)
    counts["measuring"] = False
    still = counts["connected"] - counts["dropped"]
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "connected": counts["connected"],
        "failed": counts["failed"],
        "still_connected": still,
        "bytes_per_listener_per_s": round(counts["bytes"] / max(1, still) / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--ramp", type=float, default=5, help="seconds to connect them all")
    arguments = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(run(arguments.url, arguments.count, arguments.seconds, arguments.ramp))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
