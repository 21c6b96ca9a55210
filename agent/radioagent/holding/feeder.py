"""Feed each holding mount of the local Icecast with silence in its mount's format,
through a legacy SOURCE connection, paced in real time, reconnecting on failure."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Iterable

from radioagent.holding.silence import SilentStream, silent_mp3
from radioagent.model import MountSpec

log = logging.getLogger(__name__)
WRITE_INTERVAL_SECONDS = 0.25
BURST_SECONDS = 2.0  # what a fresh listener gets at once, as from any encoder's buffer
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)
CONNECT_TIMEOUT_SECONDS = 5.0


class HoldingFeeds:
    """One feed task per mount; `update` starts, restarts and stops them to match."""

    def __init__(self, icecast_port: int, password: str, username: str = "source") -> None:
        self.icecast_port = icecast_port
        self.credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._tasks: dict[str, tuple[MountSpec, asyncio.Task]] = {}
        self._unsupported_logged: set[str] = set()

    def update(self, mounts: Iterable[MountSpec]) -> None:
        wanted = {mount.name: mount for mount in mounts}
        for name, (mount, task) in list(self._tasks.items()):
            if wanted.get(name) != mount or task.done():
                task.cancel()
                del self._tasks[name]
        for name, mount in wanted.items():
            if name in self._tasks:
                continue
            if mount.format.codec != "mp3":
                if name not in self._unsupported_logged:
                    log.warning(
                        "no holding audio for %s: %s is not supported yet",
                        mount.path,
                        mount.format.codec,
                    )
                    self._unsupported_logged.add(name)
                continue
            task = asyncio.create_task(
                self._feed(mount, silent_mp3(mount.format)), name=f"holding {mount.path}"
            )
            self._tasks[name] = (mount, task)

    @property
    def feeding(self) -> set[str]:
        return set(self._tasks)

    async def close(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _feed(self, mount: MountSpec, silence: SilentStream) -> None:
        failures = 0
        while True:
            try:
                await self._stream_once(mount, silence)
                failures = 0
            except (OSError, TimeoutError, ConnectionError, ValueError) as error:
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                log.log(
                    logging.INFO if failures == 1 else logging.DEBUG,
                    "holding feed %s: %s; retrying in %.1f s",
                    mount.holding_path,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _stream_once(self, mount: MountSpec, silence: SilentStream) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.icecast_port), CONNECT_TIMEOUT_SECONDS
        )
        try:
            writer.write(
                (
                    f"SOURCE {mount.holding_path} HTTP/1.0\r\n"
                    f"Authorization: Basic {self.credentials}\r\n"
                    f"Content-Type: {mount.format.content_type}\r\n"
                    "Ice-Name: holding\r\nIce-Public: 0\r\n"
                    f"Ice-Audio-Info: samplerate={mount.format.samplerate};"
                    f"channels={mount.format.channels};bitrate={silence.bitrate_kbps}\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), CONNECT_TIMEOUT_SECONDS)
            if b" 200 " not in status_line:
                raise ConnectionError(f"Icecast answered {status_line.strip()!r}")
            await self._write_paced(writer, silence)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _write_paced(self, writer: asyncio.StreamWriter, silence: SilentStream) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        frames_sent = 0
        while True:
            due = int((loop.time() - started + BURST_SECONDS) / silence.seconds_per_frame)
            if due > frames_sent:
                writer.write(silence.frame * (due - frames_sent))
                frames_sent = due
                await asyncio.wait_for(writer.drain(), CONNECT_TIMEOUT_SECONDS)
            await asyncio.sleep(WRITE_INTERVAL_SECONDS)
