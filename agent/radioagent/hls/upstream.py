"""One mount's stream read from this node's Icecast and cut into HLS segments.

The same stream the node's listeners get (its public mount, which relays the leader's),
read as one more local listener for as long as players ask for the mount's HLS; whole
frames go to the segmenter with the time they arrived.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import cast

from radioagent.frontdoor.framing import WholeFrames
from radioagent.frontdoor.http import MAX_HEAD_BYTES, HttpError, head_end, parse_response_head
from radioagent.frontdoor.syncpoints import adts_frame_length, mp3_frame_length
from radioagent.hls.segmenter import Segmenter

log = logging.getLogger(__name__)


class HlsUpstream(asyncio.Protocol):
    def __init__(
        self,
        path: str,
        segmenter: Segmenter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.segmenter = segmenter
        self.clock = clock
        self.closed = False
        frame_length = mp3_frame_length if segmenter.codec == "mp3" else adts_frame_length
        self._frames = WholeFrames(frame_length)
        self._head: bytearray | None = bytearray()  # None once the answer's head is read
        self._transport: asyncio.Transport | None = None

    async def connect(self, host: str, port: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.create_connection(lambda: self, host, port), timeout)
        except (OSError, TimeoutError) as error:
            log.warning("hls of %s: cannot reach Icecast: %s", self.path, error)
            self.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if self.closed:
            transport.close()
            return
        request = f"GET {self.path} HTTP/1.0\r\nUser-Agent: radio-agent (hls)\r\n\r\n"
        self._transport.write(request.encode("ascii"))

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            self._read_head(data)
            return
        whole = self._frames.feed(data)
        if whole:
            self.segmenter.feed(whole, self.clock())

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _read_head(self, data: bytes) -> None:
        head = cast(bytearray, self._head)
        head += data
        end = head_end(head)
        if end < 0:
            if len(head) > MAX_HEAD_BYTES:
                log.warning("hls of %s: Icecast sent a malformed answer", self.path)
                self.close()
            return
        try:
            status, _ = parse_response_head(bytes(head[:end]))
        except HttpError:
            status = 0
        if status != 200:
            log.info("hls of %s: Icecast answered %s", self.path, status or "garbage")
            self.close()
            return
        rest = bytes(head[end:])
        self._head = None
        if rest:
            self.data_received(rest)
