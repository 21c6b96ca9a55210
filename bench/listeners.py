"""Load client for the passthrough benchmark: N listeners of one stream URL in one asyncio
process. Connects them all, keeps reading for --seconds after the last one is in, and
prints JSON: connected, still_connected, bytes_per_listener_per_s. Run by passthrough.py."""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import ssl
import time
from urllib.parse import urlparse


async def listener(  # noqa: PLR0917 - one listener's whole setting
    host: str,
    port: int,
    path: str,
    counts: dict,
    stop: asyncio.Event,
    tls: tuple[ssl.SSLContext, str] | None,
) -> None:
    """`tls`: the context and the server name to check, for an https URL."""
    try:
        connecting = (
            asyncio.open_connection(host, port)
            if tls is None
            else asyncio.open_connection(host, port, ssl=tls[0], server_hostname=tls[1])
        )
        reader, writer = await asyncio.wait_for(connecting, 30)
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


async def run(  # noqa: PLR0917 - the command line's options
    url: str, count: int, seconds: float, ramp: float, cafile: str | None, name: str | None
) -> dict:
    """An https URL is reached at its host, checked as `name` against `cafile`."""
    parsed = urlparse(url)
    if parsed.hostname is None or parsed.port is None:
        raise ValueError(f"{url}: want http(s)://HOST:PORT/PATH")
    tls = None
    if parsed.scheme == "https":
        tls = (ssl.create_default_context(cafile=cafile), name or parsed.hostname)
    counts = {"connected": 0, "failed": 0, "dropped": 0, "bytes": 0, "measuring": False}
    stop = asyncio.Event()
    tasks = []
    for _ in range(count):
        tasks.append(
            asyncio.create_task(
                listener(parsed.hostname, parsed.port, parsed.path, counts, stop, tls)
            )
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
    parser.add_argument("--cafile", help="https: the CA to trust")
    parser.add_argument("--server-name", help="https: the name the certificate must cover")
    arguments = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(
        run(
            arguments.url,
            arguments.count,
            arguments.seconds,
            arguments.ramp,
            arguments.cafile,
            arguments.server_name,
        )
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
