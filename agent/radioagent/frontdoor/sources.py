"""Source connections piped byte for byte to the leader's Icecast.

Only the request line changes (`/<mount>` becomes `/_live/<mount>`); the leader's
Icecast checks the credentials (through its agent) and its answers (`100 Continue`,
`200 OK`, `401`) reach the client unchanged. Each direction pauses reading while the
other side's send buffer is full, so a stalled peer never grows memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, cast

from radioagent.frontdoor.http import RequestHead
from radioagent.model import LIVE_MOUNT_PREFIX

log = logging.getLogger(__name__)


class SourceClient(Protocol):
    transport: asyncio.Transport


def upstream_head(head: RequestHead, mount: str) -> bytes:
    """The client's head with the request line pointed at the leader's live mount."""
    first_line_end = head.raw.index(b"\n") + 1
    line_ending = b"\r\n" if head.raw[first_line_end - 2 : first_line_end] == b"\r\n" else b"\n"
    query = f"?{head.query}" if head.query else ""
    request_line = f"{head.method} {LIVE_MOUNT_PREFIX}{mount}{query} {head.version}"
    return request_line.encode("ascii") + line_ending + head.raw[first_line_end:]


class SourcePipe(asyncio.Protocol):
    """The leader side of one piped source; the client side is the front door connection,
    which hands over what it reads through `from_client`."""

    def __init__(self, client: SourceClient, mount: str, epoch: int) -> None:
        self.client = client
        self.mount = mount
        self.epoch = epoch  # the leadership this pipe belongs to
        self._transport: asyncio.Transport | None = None
        self.closed = False

    @property
    def connected(self) -> bool:
        return self._transport is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if self.closed:
            transport.close()

    def data_received(self, data: bytes) -> None:
        self.client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.close()

    def pause_writing(self) -> None:
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.client.transport.is_closing():
            self.client.transport.resume_reading()

    def from_client(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def client_paused(self, paused: bool) -> None:
        """The client's send buffer is full (or drained again): stop (or go on) reading
        the leader's answers."""
        if self._transport is None:
            return
        if paused:
            self._transport.pause_reading()
        else:
            self._transport.resume_reading()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._transport is not None:
            self._transport.close()
        self.client.transport.close()
