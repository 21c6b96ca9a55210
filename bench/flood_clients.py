"""The flood's clients (bench/flood.py runs this in a process of its own): idle
connections, slow request heads (a byte a second) and listeners that never read, spread
over loopback addresses; each reconnects when the server closes it, until the time is up.

Prints one JSON line when all are first opened ({"opened": n}) and one at the end:
connections opened, answers by status (429, 503...), connections closed (by the server,
or at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import select
import socket
import time
from collections import Counter

SLOW_HEAD = b"GET /live.mp3 HTTP/1.1\r\nHost: flood.test\r\nX-Slow: "
LISTENER_HEAD = b"GET /_stream/live.mp3 HTTP/1.0\r\nUser-Agent: flood/1\r\n\r\n"
SMALL_RECEIVE_BUFFER = 4096  # a listener that never reads: the kernel holds little for it


class Flood:
    def __init__(self, port: int, deadline: float) -> None:
        self.port = port
        self.deadline = deadline
        self.opened = 0
        self.failed_to_connect = 0
        self.answers: Counter[str] = Counter()  # first status line's code, by server
        self.closed = 0

    async def keep_one(self, kind: str, address: str) -> None:
        """One client slot: connect, behave as `kind`, connect again when closed."""
        while time.monotonic() < self.deadline:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=(address, 0)
                )
            except OSError:
                self.failed_to_connect += 1
                await asyncio.sleep(0.5)  # a retry, bounded by the deadline
                continue
            self.opened += 1
            if kind == "listener":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RECEIVE_BUFFER)
            try:
                await self._behave(kind, reader, writer)
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
            self.closed += 1
            await asyncio.sleep(0.2)  # a client that comes back, not a tight loop

    async def _behave(
        self, kind: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if kind == "listener":
            writer.write(LISTENER_HEAD)
            await writer.drain()
            first = await asyncio.wait_for(reader.readline(), self._left())
            self.answers[_status(first)] += 1
            # Never read again: the server's queue for it fills until it cuts it.
            await self._until_closed(reader, peek_only=True)
            return
        if kind == "slow":
            writer.write(SLOW_HEAD)
            while time.monotonic() < self.deadline:
                writer.write(b"a")
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(4096), 1.0)
                except TimeoutError:
                    continue
                if data:
                    self.answers[_status(data)] += 1
                return
            return
        await self._until_closed(reader, peek_only=False)  # idle: send nothing

    async def _until_closed(self, reader: asyncio.StreamReader, *, peek_only: bool) -> None:
        if peek_only:
            # Wait for the server to close without consuming: asyncio's reader would read
            # (and so drain the socket); a pause of the transport keeps the bytes queued.
            transport = reader._transport  # type: ignore[attr-defined]
            transport.pause_reading()
            while time.monotonic() < self.deadline and not transport.is_closing():
                sock = transport.get_extra_info("socket")
                if sock is None or _peer_closed(sock):
                    return
                await asyncio.sleep(0.5)
            return
        try:
            data = await asyncio.wait_for(reader.read(4096), self._left())
        except TimeoutError:
            return
        if data:
            self.answers[_status(data)] += 1

    def _left(self) -> float:
        return max(0.1, self.deadline - time.monotonic())


HANG_UP = select.POLLRDHUP | select.POLLERR | select.POLLHUP


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the peer has closed or reset, without reading what waits in the buffer:
    the kernel reports it as an error or hang-up on the socket."""
    poller = select.poll()
    poller.register(sock, HANG_UP)
    return any(events & HANG_UP for _, events in poller.poll(0))


def _status(data: bytes) -> str:
    parts = data.split(b" ", 2)
    return parts[1].decode("ascii", "replace") if len(parts) > 1 else "none"


def addresses(count: int, first: int) -> list[str]:
    """`count` loopback addresses from 127.0.<first>.1 on (never 127.0.0.1)."""
    return [f"127.0.{first + index // 250}.{1 + index % 250}" for index in range(count)]


async def main(arguments: argparse.Namespace) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    flood = Flood(arguments.port, time.monotonic() + arguments.seconds)
    pool = addresses(arguments.addresses, first=10)
    slots = [
        *(("idle", pool[index % len(pool)]) for index in range(arguments.idle)),
        *(("slow", pool[index % len(pool)]) for index in range(arguments.slow)),
        *(("listener", pool[index % len(pool)]) for index in range(arguments.listeners)),
    ]
    tasks = []
    for batch in range(0, len(slots), 200):  # a burst, not one SYN storm past the backlog
        tasks += [asyncio.create_task(flood.keep_one(*slot)) for slot in slots[batch : batch + 200]]
        await asyncio.sleep(0.05)
    print(json.dumps({"opened": flood.opened, "slots": len(slots)}), flush=True)
    await asyncio.gather(*tasks)
    print(
        json.dumps(
            {
                "opened": flood.opened,
                "failed_to_connect": flood.failed_to_connect,
                "answers": dict(flood.answers),
                "closed": flood.closed,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--addresses", type=int, default=1)
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--slow", type=int, default=0)
    parser.add_argument("--listeners", type=int, default=0)
    asyncio.run(main(parser.parse_args()))
