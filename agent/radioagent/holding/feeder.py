"""Feed each holding mount of the local Icecast with silence in its mount's format,
through a legacy SOURCE connection, each unit sent when its audio is due (with a short
burst ahead, as any encoder's buffer gives), reconnecting on failure."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import zlib
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlencode

from radioagent.config import HoldingSettings
from radioagent.holding.encoded import encoded_silence
from radioagent.holding.stream import HoldingLoop, encoded_loop, mp3_loop
from radioagent.model import CODEC_CONTENT_TYPES, MountSpec
from radioagent.nowplaying import HOLDING_TITLE_MARKER

log = logging.getLogger(__name__)
WRITE_INTERVAL_SECONDS = 0.25
BURST_SECONDS = 2.0
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
CONNECT_TIMEOUT_SECONDS = 5.0
OGG_CONTENT_TYPE = CODEC_CONTENT_TYPES["vorbis"]


class HoldingFeeds:
    """One feed task per mount; `update` starts, restarts and stops them to match."""

    def __init__(
        self,
        icecast_port: int,
        password: str,
        settings: HoldingSettings,
        username: str = "source",
    ) -> None:
        self.icecast_port = icecast_port
        self.credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.settings = settings
        self._tasks: dict[str, tuple[MountSpec, asyncio.Task]] = {}
        self.connected: set[str] = set()

    def update(self, mounts: Iterable[MountSpec]) -> None:
        wanted = {mount.name: mount for mount in mounts}
        for name, (mount, task) in list(self._tasks.items()):
            if wanted.get(name) != mount or task.done():
                task.cancel()
                del self._tasks[name]
                self.connected.discard(name)
        for name, mount in wanted.items():
            if name not in self._tasks:
                task = asyncio.create_task(self._feed(mount), name=f"holding {mount.path}")
                self._tasks[name] = (mount, task)

    async def close(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self.connected.clear()

    async def _loop_for(self, mount: MountSpec) -> HoldingLoop:
        if mount.format.codec == "mp3":
            return mp3_loop(mount.format)
        data = await encoded_silence(
            mount.format, Path(self.settings.cache_dir), self.settings.liquidsoap_command
        )
        return encoded_loop(mount.format, data, mount.holding_title)

    async def _feed(self, mount: MountSpec) -> None:
        failures = 0
        while True:
            try:
                loop = await self._loop_for(mount)
                await self._stream_once(mount, loop)
                failures = 0
            except (OSError, TimeoutError, ConnectionError, ValueError, RuntimeError) as error:
                self.connected.discard(mount.name)
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                log.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "holding feed %s: %s; retrying in %.1f s",
                    mount.holding_path,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _stream_once(self, mount: MountSpec, loop: HoldingLoop) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.icecast_port), CONNECT_TIMEOUT_SECONDS
        )
        try:
            audio = mount.format
            writer.write(
                (
                    f"SOURCE {mount.holding_path} HTTP/1.0\r\n"
                    f"Authorization: Basic {self.credentials}\r\n"
                    f"Content-Type: {audio.content_type}\r\n"
                    "Ice-Name: holding\r\nIce-Public: 0\r\n"
                    f"Ice-Audio-Info: samplerate={audio.samplerate};channels={audio.channels}\r\n"
                    "\r\n"
                ).encode()
            )
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), CONNECT_TIMEOUT_SECONDS)
            if b" 200 " not in status_line:
                raise ConnectionError(f"Icecast answered {status_line.strip()!r}")
            if audio.content_type != OGG_CONTENT_TYPE:
                await self._mark(mount)
            self.connected.add(mount.name)
            await self._write_paced(writer, loop, serial_seed=zlib.crc32(mount.name.encode()))
        finally:
            self.connected.discard(mount.name)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _mark(self, mount: MountSpec) -> None:
        """Give the holding mount the marker title (nowplaying.HOLDING_TITLE_MARKER): the
        front door's fan-out tells holding audio from live by it. Not for Ogg, whose
        titles are comments in the stream."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.icecast_port), CONNECT_TIMEOUT_SECONDS
        )
        try:
            query = urlencode(
                {"mount": mount.holding_path, "mode": "updinfo", "song": HOLDING_TITLE_MARKER}
            )
            writer.write(
                f"GET /admin/metadata?{query} HTTP/1.0\r\n"
                f"Authorization: Basic {self.credentials}\r\n\r\n".encode()
            )
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), CONNECT_TIMEOUT_SECONDS)
            if b" 200 " not in status_line:
                raise ConnectionError(f"Icecast refused the title: {status_line.strip()!r}")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _write_paced(
        self, writer: asyncio.StreamWriter, loop: HoldingLoop, serial_seed: int
    ) -> None:
        clock = asyncio.get_running_loop()
        started = clock.time()
        round_number = 0
        pending = loop.units_for_round(0, serial_seed)
        while True:
            horizon = clock.time() - started + BURST_SECONDS
            due = bytearray()
            while pending and pending[0][0] <= horizon:
                due += pending.pop(0)[1]
                if not pending:
                    round_number += 1
                    pending = loop.units_for_round(round_number, serial_seed)
            if due:
                writer.write(bytes(due))
                await asyncio.wait_for(writer.drain(), CONNECT_TIMEOUT_SECONDS)
            await asyncio.sleep(WRITE_INTERVAL_SECONDS)
