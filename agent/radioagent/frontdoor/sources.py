"""Studios' source connections, piped to the leader's Icecast, riding through leader changes.

The studio's request head goes to the leader's Icecast with its path pointed at
`/_live/<mount>`; the leader checks the credentials (through its agent) and its answers
(`100 Continue`, `200 OK`, `401`) reach the studio unchanged. Once the leader has taken
the source, the studio is this node's to keep:

- When leadership moves (crash or handover) or the leader's connection drops, the pipe
  keeps reading the studio into a bounded backlog. As soon as a leader is known it opens
  that leader's `/_live/<mount>` with the same head, swallows the answers (the studio has
  its own), and sends the audio from where the old connection stopped being acknowledged
  (the kernel says how much it still held) less a fraction of a second (what the old
  Icecast had not yet passed on), starting at a whole frame (MP3, AAC) or page (Ogg,
  after the chain's header pages).
- Listeners hear the studio late by the gap rather than lose it: the pipe holds that much
  audio back and from then on sends as much as the studio sends, so the leader gets it
  at the studio's own pace (a burst of the whole backlog would overrun players). When the
  studio leaves, what is held back follows at the mount's bitrate.
- The studio is cut only when the backlog passes its bound, or when a new leader refuses
  it for as long as the backlog lasts.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import struct
import termios
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, cast

from radioagent.config import Timing
from radioagent.frontdoor.http import (
    SOURCE_RETRY_AFTER_SECONDS,
    HttpError,
    RequestHead,
    head_end,
    parse_response_head,
)
from radioagent.frontdoor.syncpoints import SyncPoints
from radioagent.model import LIVE_MOUNT_PREFIX, MountSpec, NodeStatus
from radioagent.oggtags import chain_title

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # to reach the leader's Icecast
RETRY_SECONDS = 1.0  # between tries at a leader that refused or could not be reached
DRAIN_INTERVAL = 0.25  # the held-back audio's pace once the studio has left
MAX_ANSWER_BYTES = 8192
# A studio that sends nothing this long is a stalled encoder (hung, or its input gone),
# not a leader change to ride through: it is cut, and the mount plays its holding audio.
# Checked each loop, and when the leader drops the source; under Icecast's own
# source_timeout (10 s, icecast/render.py), after which re-piping the silent studio would
# keep the mount off its holding audio, listeners getting it only in bursts.
STALLED_STUDIO_SECONDS = 8.0


@dataclass(frozen=True)
class StudioLimits:
    backlog_seconds: float = 26.0  # audio held while no leader takes it; then cut
    # Sent at once to a new leader; the rest is held back. Small: the other nodes' relays
    # join the new leader a second or two later and get only Icecast's burst (64 KiB).
    burst_seconds: float = 1.0
    # Sent again beyond what the old leader did not acknowledge: its Icecast holds up to
    # ~0.2 s it has read but not yet written to the relays, lost when the source leaves.
    # A listener may hear this much twice, never a gap.
    replay_seconds: float = 0.3


def studio_limits(timing: Timing, configured: float | None = None) -> StudioLimits:
    """By default a backlog that outlasts a failover at the cluster's own timing: the
    leader's lease running out (ttl) after it was last heard (retry_timeout), then a few
    seconds to elect and connect; never under 10 s. 0: no riding through."""
    if configured is not None:
        return StudioLimits(backlog_seconds=configured)
    return StudioLimits(backlog_seconds=max(10.0, timing.ttl + timing.retry_timeout + 5.0))


class SourceClient(Protocol):
    """The studio's side: the front door connection it came on."""

    transport: asyncio.Transport

    def pipe_failed(self, error: HttpError, retry_after: int) -> None:
        """The leader cannot be reached: answer the studio with `error` and close."""

    def leader_answered(self, status: int) -> None:
        """The first leader's answer, passed on to the studio as it came."""


class Phase(Enum):
    CONNECTING = "connecting"  # the first leader has not answered yet
    STREAMING = "streaming"  # a leader takes the audio
    DETACHED = "detached"  # no leader takes it: the backlog grows
    RELINKING = "relinking"  # a new leader is being asked to take it
    DRAINING = "draining"  # the studio left: the held-back audio follows
    CLOSED = "closed"


def upstream_head(head: RequestHead, mount: str) -> bytes:
    """The studio's head with the request line pointed at the leader's live mount."""
    first_line_end = head.raw.index(b"\n") + 1
    line_ending = b"\r\n" if head.raw[first_line_end - 2 : first_line_end] == b"\r\n" else b"\n"
    query = f"?{head.query}" if head.query else ""
    request_line = f"{head.method} {LIVE_MOUNT_PREFIX}{mount}{query} {head.version}"
    return request_line.encode("ascii") + line_ending + head.raw[first_line_end:]


def unsent_bytes(transport: asyncio.Transport) -> int:
    """Bytes written but not yet acknowledged by the peer: asyncio's buffer plus the
    kernel's send queue (TIOCOUTQ on Linux counts unsent and unacknowledged bytes)."""
    queued = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is None:
        return queued
    try:
        answer = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return queued
    return queued + struct.unpack("i", answer)[0]


class LeaderLink(asyncio.Protocol):
    """One connection to a leader's Icecast, for one studio."""

    def __init__(self, pipe: StudioPipe, epoch: int, head: bytes, *, first: bool) -> None:
        self.pipe = pipe
        self.epoch = epoch
        self.head = head
        self.first = first  # the studio's own connection: Icecast's answers go to it
        self.transport: asyncio.Transport | None = None
        self.paused = False
        self.accepted = False
        self.closed = False
        self.stream_written = 0  # audio bytes written (the head not counted)
        self.stream_acknowledged = 0  # of which the peer has acknowledged
        self._answer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.closed:
            transport.close()
            return
        self.transport.write(self.head)

    def data_received(self, data: bytes) -> None:
        if self.first:
            self.pipe.client_write(data)
        self._answer += data
        while (end := head_end(self._answer)) >= 0:
            raw = bytes(self._answer[:end])
            del self._answer[:end]
            try:
                status, _ = parse_response_head(raw)
            except HttpError:
                status = 502
            self.pipe.answered(self, status)
        if len(self._answer) > MAX_ANSWER_BYTES:
            self.pipe.answered(self, 502)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closed:
            self.closed = True
            self.pipe.link_lost(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pipe.pump()

    def write(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        self.stream_written += len(data)
        self.note_acknowledged()

    def note_acknowledged(self) -> None:
        """The head went out first: audio is acknowledged once the peer has the head and
        then some."""
        if self.transport is None:
            return
        acknowledged = len(self.head) + self.stream_written - unsent_bytes(self.transport)
        self.stream_acknowledged = max(self.stream_acknowledged, acknowledged - len(self.head))

    @property
    def unacknowledged(self) -> int:
        return self.stream_written - self.stream_acknowledged

    def close(self, *, flush: bool = False) -> None:
        """Without `flush`, what is still buffered is dropped (it is sent again to the
        next leader): a dead peer would otherwise hold the socket until TCP gives up."""
        self.closed = True
        if self.transport is not None:
            if flush:
                self.transport.close()
            else:
                self.transport.abort()


class StudioPipe:
    """One studio's connection and its way to whichever node leads."""

    def __init__(
        self,
        pipes: SourcePipes,
        client: SourceClient,
        head: RequestHead,
        mount: MountSpec,
        limits: StudioLimits,
    ) -> None:
        self.pipes = pipes
        self.client = client
        self.head = head
        self.mount = mount
        self.phase = Phase.CONNECTING
        self.link: LeaderLink | None = None
        self.rides = limits.backlog_seconds > 0  # else cut on a leader change, as encoders expect
        byte_rate = mount.format.bitrate_kbps * 1000 / 8
        self.byte_rate = byte_rate
        self.capacity = int(limits.backlog_seconds * byte_rate)
        self.burst = int(limits.burst_seconds * byte_rate)
        self.replay = int(limits.replay_seconds * byte_rate)
        # The stream's recent past and what is not sent yet, by offset from its first byte.
        self._stream = bytearray()
        self._stream_start = 0  # offset of _stream[0]
        self._sent = 0  # offset of the first byte no leader has had
        self._held_back = 0  # bytes kept back on purpose (the gap listeners are late by)
        self._resuming = False  # a new leader took it: wait for a place to start
        self._sync = SyncPoints(mount.format.codec)
        self._chain_headers = b""  # Ogg: the header pages whose title was read
        self._title: str | None = None  # Ogg: the title of the studio's current chain
        self._title_told: str | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._drain: asyncio.TimerHandle | None = None
        self._heard_at = time.monotonic()  # when the studio last sent audio

    @property
    def epoch(self) -> int | None:
        return self.link.epoch if self.link is not None else None

    @property
    def backlog(self) -> int:
        return self._stream_start + len(self._stream) - self._sent

    # --- the studio's side ---------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        if self.phase in (Phase.DRAINING, Phase.CLOSED):
            return
        self._heard_at = time.monotonic()
        self._stream += data
        self._sync.feed(data)
        if self._sync.headers is not self._chain_headers:
            self._chain_headers = self._sync.headers
            self._title = chain_title(self._chain_headers) or self._title
            self._tell_title()
        if self.backlog > max(self.capacity, self.burst + len(data)):
            log.warning(
                "source for %s: %d s of audio held and no leader takes it: cut",
                self.mount.path,
                round(self.backlog / self.byte_rate),
            )
            self.pipes.overflowed += 1
            self.close()
            return
        self.pump()
        self._trim()

    def client_write(self, data: bytes) -> None:
        if not self.client.transport.is_closing():
            self.client.transport.write(data)

    def client_gone(self) -> None:
        """The studio left: what a leader has not had yet follows at the mount's pace."""
        if self.phase is Phase.STREAMING and self.backlog:
            self.phase = Phase.DRAINING
            self._drain_step()
        elif self.phase is not Phase.DRAINING:
            self.close(flush=True)

    # --- the leader's side ---------------------------------------------------------------

    def connect(self, leader: NodeStatus, epoch: int) -> None:
        """Ask `leader` to take the audio."""
        first = self.phase is Phase.CONNECTING
        if not first:
            self.phase = Phase.RELINKING
            log.debug("source for %s: asking %s (epoch %d)", self.mount.path, leader.name, epoch)
        self.link = LeaderLink(self, epoch, upstream_head(self.head, self.mount.name), first=first)
        self.pipes.spawn(self._connect(self.link, leader))

    async def _connect(self, link: LeaderLink, leader: NodeStatus) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: link, leader.address, leader.icecast_port),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as error:
            link.closed = True
            log.warning("source for %s: cannot reach the leader: %s", self.mount.path, error)
            self._link_failed(link)

    def answered(self, link: LeaderLink, status: int) -> None:
        if link is not self.link or link.closed:
            return
        log.debug("source for %s: the leader answered %d", self.mount.path, status)
        if link.first:
            self.client.leader_answered(status)
        if status in (100, 200):
            if not link.accepted:
                link.accepted = True
                self._accepted(link)
            return
        link.close()
        if link.first:
            self.close()  # the studio has Icecast's refusal: it is the studio's to fix
        else:
            log.warning("source for %s: the new leader answered %d", self.mount.path, status)
            self._detach()

    def _accepted(self, link: LeaderLink) -> None:
        if link.first:
            self.pipes.opened += 1
        else:
            self.pipes.repiped += 1
            self._resuming = True
        self.phase = Phase.STREAMING
        self._tell_title()
        self.pump()

    def _tell_title(self) -> None:
        """An Ogg studio's titles are the comments of its chains (encoders send no
        /admin/metadata for Ogg): told once a leader took the studio, so a studio refused
        for a mount another one feeds names nothing. A chain without a title leaves the
        title as it is."""
        if self.phase is Phase.CONNECTING or self._title in (None, self._title_told):
            return
        self._title_told = self._title
        if self.pipes.on_title is not None:
            self.pipes.on_title(self.mount.name, self._title)

    def _resume_at_sync_point(self, link: LeaderLink) -> bool:
        """Go on from the first place a decoder can start at or after the first byte no
        leader acknowledged (False: none has arrived yet); what lies beyond a burst is
        held back (the listeners' delay)."""
        point = self._sync.first_from(self._sent)
        if point is None:
            return False
        log.debug(
            "source for %s: resuming at byte %d (from %d; %s)",
            self.mount.path,
            point.offset,
            self._sent,
            "a chain start" if point.chain_start else "mid-stream",
        )
        self._sent = point.offset
        if self._sync.ogg and not point.chain_start and self._sync.headers:
            link.write(self._sync.headers)
        self._held_back = max(0, self.backlog - self.burst)
        self._resuming = False
        log.info(
            "source for %s rides through: resumed on the new leader, %.1f s late",
            self.mount.path,
            self._held_back / self.byte_rate,
        )
        return True

    def link_lost(self, link: LeaderLink) -> None:
        if link is not self.link:
            return
        if link.first and not link.accepted:
            self.close()
        elif not self.cut_if_stalled():
            self._detach()

    def cut_if_stalled(self) -> bool:
        """Cut the studio if it has sent nothing for STALLED_STUDIO_SECONDS; whether it
        was."""
        silent = time.monotonic() - self._heard_at
        if silent < STALLED_STUDIO_SECONDS or self.phase in (Phase.DRAINING, Phase.CLOSED):
            return False
        log.warning(
            "source for %s: the studio sent nothing for %.0f s: cut, the mount goes to its "
            "holding audio",
            self.mount.path,
            silent,
        )
        self.pipes.stalled += 1
        self.close()
        return True

    def _link_failed(self, link: LeaderLink) -> None:
        if link is not self.link:
            return
        if link.first:
            self.pipes.failed += 1
            self.link = None
            self.phase = Phase.CLOSED
            self.pipes.forget(self)
            self.client.pipe_failed(
                HttpError(503, "cannot reach the leader"), SOURCE_RETRY_AFTER_SECONDS
            )
            return
        self._detach()

    def leadership_moved(self) -> None:
        """The pipe's leader no longer leads."""
        if self.phase is Phase.CONNECTING or not self.rides:
            log.info("leadership moved: cutting the source piped to %s", self.mount.path)
            self.close()
        elif self.phase in (Phase.STREAMING, Phase.RELINKING):
            self._detach()

    def _detach(self) -> None:
        """No leader takes the audio: keep it, and try the current leader, if any, soon."""
        link = self.link
        if link is not None:
            if link.accepted:
                # What the old leader may not have had, or passed on, is sent again.
                link.note_acknowledged()
                resend = link.unacknowledged + self.replay
                self._sent = max(self._stream_start, self._sent - resend)
                log.debug("source for %s: detached; %d bytes to resend", self.mount.path, resend)
            link.close()
            self.link = None
        if self.phase is Phase.DRAINING or not self.rides:
            self.close()
            return
        self.phase = Phase.DETACHED
        self._held_back = 0
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._retry is None and self.phase is Phase.DETACHED:
            self._retry = asyncio.get_running_loop().call_later(RETRY_SECONDS, self._try_again)

    def _try_again(self) -> None:
        self._retry = None
        if self.phase is Phase.DETACHED:
            self.pipes.relink(self)
            self._schedule_retry()

    # --- sending ---------------------------------------------------------------------------

    def pump(self) -> None:
        """Send the leader what is due: everything but what is held back."""
        link = self.link
        if self.phase not in (Phase.STREAMING, Phase.DRAINING) or link is None or link.paused:
            return
        if self._resuming and not self._resume_at_sync_point(link):
            return
        due = self.backlog - self._held_back
        if due <= 0:
            return
        start = self._sent - self._stream_start
        link.write(bytes(self._stream[start : start + due]))
        self._sent += due

    def _trim(self) -> None:
        """Keep what is unsent, and as much sent audio as a resend could need."""
        keep_from = max(self._stream_start, self._sent - self.capacity)
        if keep_from - self._stream_start > 65536:
            del self._stream[: keep_from - self._stream_start]
            self._stream_start = keep_from
            self._sync.forget_before(keep_from)

    def _drain_step(self) -> None:
        self._drain = None
        if self.phase is not Phase.DRAINING:
            return
        self._held_back = max(0, self._held_back - int(self.byte_rate * DRAIN_INTERVAL))
        self.pump()
        # Done; or no new leader took it yet, or no whole frame came after the resend
        # point before the studio left: nothing more will.
        if self.backlog == 0 or self.link is None or self._resuming:
            self.close(flush=True)
            return
        self._drain = asyncio.get_running_loop().call_later(DRAIN_INTERVAL, self._drain_step)

    def close(self, *, flush: bool = False) -> None:
        """`flush`: the leader gets what is still buffered for it (the studio left);
        otherwise the connection is dropped at once."""
        if self.phase is Phase.CLOSED:
            return
        self.phase = Phase.CLOSED
        for timer in (self._retry, self._drain):
            if timer is not None:
                timer.cancel()
        if self.link is not None:
            self.link.close(flush=flush)
            self.link = None
        self.client.transport.close()
        self.pipes.forget(self)


class SourcePipes:
    """The studios this node pipes to the leader, and what became of them."""

    def __init__(
        self,
        limits: StudioLimits | None = None,
        on_title: Callable[[str, str], None] | None = None,  # (mount name, title)
    ) -> None:
        self.limits = limits or StudioLimits()
        self.on_title = on_title
        self.opened = 0  # studios a leader took
        self.failed = 0  # studios whose first leader could not be reached
        self.repiped = 0  # times a studio went on with a new leader
        self.overflowed = 0  # studios cut because no leader took their audio in time
        self.stalled = 0  # studios cut because they sent nothing (STALLED_STUDIO_SECONDS)
        self._pipes: set[StudioPipe] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._leader: tuple[NodeStatus, int] | None = None

    def __len__(self) -> int:
        return len(self._pipes)

    def open(
        self,
        client: SourceClient,
        head: RequestHead,
        mount: MountSpec,
        leader: NodeStatus,
        epoch: int,
    ) -> StudioPipe:
        pipe = StudioPipe(self, client, head, mount, self.limits)
        self._pipes.add(pipe)
        pipe.connect(leader, epoch)
        return pipe

    def follow(self, leader: NodeStatus | None, epoch: int | None) -> None:
        """After each loop: pipes under another leadership leave it, and every pipe
        without a leader goes to the current one."""
        self._leader = None if leader is None or epoch is None else (leader, epoch)
        for pipe in list(self._pipes):
            if pipe.cut_if_stalled():
                continue
            if pipe.link is not None and (pipe.epoch != epoch or self._leader is None):
                pipe.leadership_moved()
            if pipe.phase is Phase.DETACHED:
                self.relink(pipe)

    def relink(self, pipe: StudioPipe) -> None:
        if self._leader is not None and pipe.phase is Phase.DETACHED:
            pipe.connect(*self._leader)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, pipe: StudioPipe) -> None:
        self._pipes.discard(pipe)

    def close(self) -> None:
        for pipe in list(self._pipes):
            pipe.close()
        for task in self._tasks:
            task.cancel()
