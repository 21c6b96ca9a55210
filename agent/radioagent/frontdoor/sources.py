"""Source connections piped byte for byte to the leader's Icecast.

Only the request line changes (`/<mount>` becomes `/_live/<mount>`); the leader's
Icecast checks the credentials (through its agent) and its answers (`100 Continue`,
`200 OK`, `401`) reach the client unchanged. Each direction pauses reading while the
other side's send buffer is full, so a stalled peer never grows memory.

`SourcePipes` opens them (in the background: the client's bytes wait, unread, until the
leader answers) and cuts them when the leadership they were opened under ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, cast

from radioagent.frontdoor.http import SOURCE_RETRY_AFTER_SECONDS, HttpError, RequestHead
from radioagent.model import LIVE_MOUNT_PREFIX, NodeStatus

log = logging.getLogger(__name__)


CONNECT_TIMEOUT = 5.0  # to reach the leader's Icecast


class SourceClient(Protocol):
    """The client side of a pipe: the front door connection of a source."""

    transport: asyncio.Transport

    def become_source(self, pipe: SourcePipe) -> None:
        """Stop reading until the pipe is up; what the client sends then goes to it."""

    def source_connected(self, pipe: SourcePipe, head: bytes) -> bool:
        """The leader answered: send it `head` and what the client sent meanwhile. False
        if the client is gone or no longer this pipe's."""

    def pipe_failed(self, error: HttpError, retry_after: int) -> None:
        """The leader cannot be reached: answer the client with `error`."""


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

    def __init__(
        self,
        client: SourceClient,
        mount: str,
        epoch: int,
        on_closed: Callable[[SourcePipe], None],
    ) -> None:
        self.client = client
        self.mount = mount
        self.epoch = epoch  # the leadership this pipe belongs to
        self.on_closed = on_closed
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
        self.on_closed(self)


class SourcePipes:
    """The sources this node pipes to the leader, and what became of them."""

    def __init__(self, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.connect_timeout = connect_timeout
        self.opened = 0  # pipes that reached the leader
        self.failed = 0  # pipes that could not
        self._pipes: set[SourcePipe] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._pipes)

    def open(
        self, client: SourceClient, head: RequestHead, mount: str, leader: NodeStatus, epoch: int
    ) -> None:
        pipe = SourcePipe(client, mount, epoch, self._pipes.discard)
        client.become_source(pipe)
        self._pipes.add(pipe)
        task = asyncio.get_running_loop().create_task(
            self._connect(pipe, upstream_head(head, mount), leader)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cut_stale(self, epoch: int | None, leader_known: bool) -> None:
        """Cut sources piped under another leadership: their clients reconnect and reach
        the new leader."""
        for pipe in list(self._pipes):
            if pipe.epoch != epoch or not leader_known:
                log.info("leadership moved: cutting the source piped to %s", pipe.mount)
                pipe.close()

    def close(self) -> None:
        for pipe in list(self._pipes):
            pipe.close()
        for task in self._tasks:
            task.cancel()

    async def _connect(self, pipe: SourcePipe, head: bytes, leader: NodeStatus) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: pipe, leader.address, leader.icecast_port),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as error:
            self.failed += 1
            # Not closed: closing hangs up on the client before it gets the answer.
            self._pipes.discard(pipe)
            log.warning("source for %s: cannot reach the leader: %s", pipe.mount, error)
            pipe.client.pipe_failed(
                HttpError(503, "cannot reach the leader"), SOURCE_RETRY_AFTER_SECONDS
            )
            return
        if pipe.closed or not pipe.client.source_connected(pipe, head):
            pipe.close()
            return
        self.opened += 1
