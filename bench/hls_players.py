"""Load client for the HLS benchmark: N players of one mount's HLS in one asyncio process.
Each fetches the master playlist once (its session), then its media playlist every target
duration, and each new segment once, on one keep-alive connection, as hls.js does. Prints
{"ready": N} once all have their first playlist, then after --seconds the JSON result:
players, still_connected (players whose last poll succeeded), segments_per_player,
bytes_per_player_per_s, failures. Run by hls.py."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from urllib.parse import urlparse


class Player:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """One request on the kept connection; a connection the server closed while idle
        (its keep-alive timeout) is opened again once, as players do."""
        reused = self.writer is not None and not self.writer.is_closing()
        try:
            return await self._exchange(path)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not reused:
                raise
            self.close()
            return await self._exchange(path)

    async def _exchange(self, path: str) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: bench-hls\r\n\r\n"
        self.writer.write(request.encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await asyncio.wait_for(self.reader.readexactly(length), 10)
        if b"connection: close" in head.lower():
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def play(  # noqa: PLR0917 - one player's whole setting
    host: str, port: int, mount: str, target: float, counts: dict, stop: asyncio.Event
) -> None:
    player = Player(host, port)
    last = -1
    first = True
    try:
        status, master = await player.get(f"/{mount}.m3u8")
        media = "/" + master.decode().splitlines()[-1]
        base = media.rsplit("/", 1)[0]
        while not stop.is_set():
            status, text = await player.get(media)
            if status != 200:
                counts["failures"] += 1
                counts["alive"].discard(id(player))
            else:
                counts["alive"].add(id(player))
                lines = [line for line in text.decode().splitlines() if line]
                sequence = int(lines[3].split(":")[1])
                uris = [line for line in lines if not line.startswith("#")]
                for offset, uri in enumerate(uris):
                    if sequence + offset > last:
                        status, data = await player.get(f"{base}/{uri}")
                        if status == 200 and counts["measuring"]:
                            counts["bytes"] += len(data)
                            counts["segments"] += 1
                        last = sequence + offset
            if first:
                counts["ready"] += 1
                first = False
            await asyncio.sleep(target * random.uniform(0.9, 1.1))  # noqa: S311 - spreading
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError) as error:
        print(f"hls player: {error!r}", file=sys.stderr)
        counts["failures"] += 1
        counts["alive"].discard(id(player))
        if first:
            counts["ready"] += 1
    finally:
        player.close()


async def run(url: str, count: int, seconds: float, target: float) -> dict:
    parsed = urlparse(url)
    if parsed.hostname is None or parsed.port is None:
        raise ValueError(f"{url}: want http://HOST:PORT/MOUNT")
    mount = parsed.path.strip("/")
    counts: dict = {"ready": 0, "failures": 0, "bytes": 0, "segments": 0, "alive": set()}
    counts["measuring"] = False
    stop = asyncio.Event()
    tasks = []
    for _ in range(count):
        tasks.append(
            asyncio.create_task(play(parsed.hostname, parsed.port, mount, target, counts, stop))
        )
        await asyncio.sleep(target / count)  # arrivals spread over one target duration
    deadline = time.monotonic() + 60
    while counts["ready"] < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    print(json.dumps({"ready": len(counts["alive"])}), flush=True)
    counts["measuring"] = True
    await asyncio.sleep(seconds)
    counts["measuring"] = False
    alive = len(counts["alive"])
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "players": count,
        "still_connected": alive,
        "segments_per_player": round(counts["segments"] / max(1, alive), 2),
        "bytes_per_player_per_s": round(counts["bytes"] / max(1, alive) / seconds),
        "failures": counts["failures"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="http://HOST:PORT/MOUNT")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--target", type=float, default=4.0, help="the target duration")
    arguments = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(run(arguments.url, arguments.count, arguments.seconds, arguments.target))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
