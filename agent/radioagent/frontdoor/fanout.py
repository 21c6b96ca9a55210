"""Passthrough: one read of the local Icecast per mount, written to every listener.

A proxy with one upstream connection per listener costs ~6.6x Icecast's CPU per
listener; one upstream per (mount, ICY or not) fanned out keeps it near Icecast's own.
Each listener's unsent bytes are bounded: a listener whose socket buffer passes
`write_limit` is cut off (as Icecast does past its queue size) instead of growing memory.

What listeners get is framing.py's: whole MP3/AAC frames (a splice at an Icecast
fallback switch is no glitch), Ogg from its header pages. ICY listeners get the
cluster's title (etcd's, the same on every node) in every metadata slot, so a late joiner
sees it in its first block and a change reaches everyone within one metadata interval;
while they hear the holding audio, the mount's holding title. A mount without a title in
etcd gets Icecast's own (a relayed external stream's titles).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

from radioagent.frontdoor.framing import Burst, Framer, IcyFramer, OggFramer, Piece, framer_for
from radioagent.frontdoor.handover import TAIL_BYTES, Resume, ResumePoint
from radioagent.frontdoor.http import (
    MAX_HEAD_BYTES,
    HttpError,
    head_end,
    parse_response_head,
    stream_response_head,
)
from radioagent.nowplaying import IcyTitles, icy_block

log = logging.getLogger(__name__)
EMPTY_TITLE_BLOCK = icy_block("")


class Listener(Protocol):
    transport: asyncio.Transport
    hub: MountHub | None  # the one it leaves when it hangs up
    sent: int  # bytes written to it (the access log's)

    def start_stream(self, data: bytes) -> None: ...

    def fail(self, error: HttpError, retry_after: int | None = None) -> None: ...


@dataclass(frozen=True)
class FanoutLimits:
    write_limit: int = 256 * 1024  # bytes queued for one listener before it is cut off
    # Past this many bytes queued for every listener of the node, the limit is the tight
    # one: many listeners that stop reading (a flood of them) cost this, not each its own
    # write_limit (asyncio copies what it queues, on Python 3.11). A listener that keeps
    # up has nothing queued here (the kernel's send buffer, ~8 s, holds its backlog).
    queue_budget: int = 32 * 1024 * 1024
    tight_write_limit: int = 64 * 1024
    burst_bytes: int = 64 * 1024  # recent audio a new listener gets at once (Icecast: 64 KiB)
    connect_timeout: float = 5.0
    linger: float = 5.0  # keep an upstream this long after its last listener left
    # Icecast sends a new connection its burst (64 KiB: seconds of live audio, or dozens of
    # short Ogg chains) at once, with its first audio. Listeners of a new upstream wait
    # this long after that, then start as late joiners do: with the recent audio the
    # burst keeps (for Ogg, the current chain).
    prime_seconds: float = 0.3
    # Listeners handed over by a restarting agent whose upstream fails (the agent that
    # stopped had led: its Icecast relays the mount only once the new one says so) start
    # again where they are, this often, for this long after the hand-over.
    resume_retry: float = 0.5
    resume_patience: float = 15.0


@dataclass
class FanoutCounters:
    bytes_by_path: dict[str, int] = field(default_factory=dict)  # audio written, per mount
    slow_listeners_dropped: int = 0
    queued_bytes: int = 0  # queued for listeners, every hub, as each last counted it
    # Listeners handed over by the last process: where they left off, or live after a gap.
    resumed_in_place: int = 0
    resumed_with_gap: int = 0

    @property
    def bytes_out(self) -> int:
        return sum(self.bytes_by_path.values())


class MountHub(asyncio.Protocol):
    """The upstream connection for one mount (and one ICY choice) and its listeners."""

    def __init__(
        self,
        path: str,
        icy: bool,
        limits: FanoutLimits,
        counters: FanoutCounters,
        on_closed: Callable[[MountHub], None],
        *,
        titles: Callable[[str], IcyTitles | None] = lambda path: None,
        on_stranded: Callable[[list[tuple[ResumePoint, list[Listener]]]], None] = lambda _: None,
    ) -> None:
        self.path = path
        self.on_stranded = on_stranded  # listeners handed over, when the upstream fails
        self.icy = icy
        self.titles = titles  # what to write in a path's metadata blocks
        self.limits = limits
        self.counters = counters
        self.on_closed = on_closed
        self.listeners: set[Listener] = set()
        self._pending: list[Listener] = []  # before the upstream answered
        self._waiting: list[Listener] = []  # answered, waiting for a place to start
        self._head = bytearray()
        self._stream_head: bytes | None = None
        self._framer: Framer | None = None
        self._burst = Burst(limits.burst_bytes)
        self._transport: asyncio.Transport | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._priming: asyncio.TimerHandle | None = None
        self._primed_yet = False  # Icecast's burst has come and gone to the first listeners
        self._tail = b""  # the last audio bytes out (every streaming listener's last)
        self._queued = 0  # this hub's share of counters.queued_bytes
        self._resumes: dict[ResumePoint, tuple[Resume, set[Listener]]] = {}
        self.closed = False

    @property
    def listener_count(self) -> int:
        resumed = sum(len(listeners) for _, listeners in self._resumes.values())
        return len(self.listeners) + len(self._pending) + len(self._waiting) + resumed

    async def connect(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(
            self.limits.connect_timeout, self._fail, HttpError(504, "Icecast did not answer")
        )
        try:
            await loop.create_connection(lambda: self, host, port)
        except OSError as error:
            log.warning("passthrough of %s: cannot reach Icecast: %s", self.path, error)
            self._fail(HttpError(503, "this node's Icecast does not answer"))

    # --- upstream protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if self.closed:
            transport.close()
            return
        icy = "Icy-MetaData: 1\r\n" if self.icy else ""
        self._transport.write(
            f"GET {self.path} HTTP/1.0\r\nUser-Agent: radio-agent\r\n{icy}\r\n".encode("ascii")
        )

    def data_received(self, data: bytes) -> None:
        if self._framer is None:
            self._read_head(data)
            return
        try:
            pieces = self._framer.feed(data)
        except ValueError as error:
            log.warning("passthrough of %s: %s", self.path, error)
            self.close()
            return
        for framed in pieces:
            piece = self._titled(framed) if framed.metadata else framed
            if not (piece.metadata or piece.header):
                self._tail = (self._tail + piece.data[-TAIL_BYTES:])[-TAIL_BYTES:]
                if self._resumes:
                    self._resume_with(piece.data)
            self._burst.add(piece)
            if not self._primed_yet:
                self._start_priming()
                continue  # Icecast's burst: into ours, for the listeners once primed
            if piece.sync and self._waiting:
                self._start_waiting()
            self._broadcast(piece.data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.closed:
            self._fail(HttpError(503, "the stream ended on this node"))

    # --- listeners -----------------------------------------------------------------------

    def join(self, listener: Listener) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._stream_head is None:
            self._pending.append(listener)
        elif self._burst.empty or not self._primed_yet:
            listener.start_stream(self._stream_head)
            self._waiting.append(listener)
        else:
            listener.start_stream(
                self._stream_head + self._framer_headers() + self._burst.contents()
            )
            self.listeners.add(listener)

    def resume(self, listener: Listener, point: ResumePoint) -> None:
        """A listener the last process handed over: it goes on where it was (handover.py)."""
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if point not in self._resumes:
            resume = Resume(point)
            if self._primed_yet:  # Icecast's burst went by: nothing left to find it in
                resume.give_up()
            self._resumes[point] = (resume, set())
        self._resumes[point][1].add(listener)

    def hand_over(self) -> list[tuple[ResumePoint, list[Listener]]]:
        """Stop reading upstream; the listeners that can go on in the next process, by
        where they are. Not Ogg's: a stream taken up again would need its headers anew."""
        framer = self._framer
        if self.closed or framer is None or isinstance(framer, OggFramer):
            return []
        if self._transport is not None:
            self._transport.pause_reading()
        phase = framer.audio_since_slot if isinstance(framer, IcyFramer) else 0
        handed = []
        if self.listeners and self._tail:
            point = ResumePoint(self.path, self.icy, phase, self._tail)
            handed.append((point, list(self.listeners)))
        if self._waiting:  # answered, no audio yet: the next process starts them live
            handed.append((ResumePoint(self.path, self.icy, 0, b""), list(self._waiting)))
        return handed + self._resumed_points()

    def _resumed_points(self) -> list[tuple[ResumePoint, list[Listener]]]:
        """Where the listeners handed over to this hub are now: where the last process
        left them, or as far as this hub took them."""
        framer = self._framer
        metaint = framer.metaint if isinstance(framer, IcyFramer) else None
        points = []
        for resume, listeners in self._resumes.values():
            if listeners and resume.started:
                point = ResumePoint(self.path, self.icy, resume.phase(metaint), resume.tail)
                points.append((point, list(listeners)))
            elif listeners:
                points.append((resume.point, list(listeners)))
        return points

    def leave(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        for queue in (self._pending, self._waiting):
            with contextlib.suppress(ValueError):
                queue.remove(listener)
        for point, (_, listeners) in list(self._resumes.items()):
            listeners.discard(listener)
            if not listeners:
                del self._resumes[point]
        if not self.closed and self.listener_count == 0 and self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(self.limits.linger, self.close)

    def close(self) -> None:
        """Hang up upstream and on every listener (they reconnect through the front door)."""
        if self.closed:
            return
        self.closed = True
        for timer in (self._linger, self._deadline, self._priming):
            if timer is not None:
                timer.cancel()
        if self._transport is not None:
            self._transport.close()
        resumed = [listener for _, listeners in self._resumes.values() for listener in listeners]
        for listener in [*self.listeners, *self._pending, *self._waiting, *resumed]:
            listener.transport.close()
        self.listeners.clear()
        self._pending.clear()
        self._waiting.clear()
        self._resumes.clear()
        self.counters.queued_bytes -= self._queued
        self._queued = 0
        self.on_closed(self)

    # --- internals -----------------------------------------------------------------------

    def _titled(self, slot: Piece) -> Piece:
        """A metadata slot filled: the mount's holding title while listeners hear the
        holding audio, else the cluster's title, else what Icecast had there."""
        titles = self.titles(self.path)
        if slot.holding:
            data = titles.holding if titles is not None else EMPTY_TITLE_BLOCK
        elif titles is not None and titles.live is not None:
            data = titles.live
        else:
            return slot
        return Piece(data, sync=False, metadata=True)

    def _framer_headers(self) -> bytes:
        return self._framer.headers if self._framer is not None else b""

    def _read_head(self, data: bytes) -> None:
        self._head += data
        end = head_end(self._head)
        if end < 0:
            if len(self._head) > MAX_HEAD_BYTES:
                self._fail(HttpError(502, "Icecast sent a malformed answer"))
            return
        try:
            status, headers = parse_response_head(bytes(self._head[:end]))
        except HttpError:
            self._fail(HttpError(502, "Icecast sent a malformed answer"))
            return
        if status != 200:
            self._fail(HttpError(404 if status == 404 else 502, f"Icecast answered {status}"))
            return
        if self._deadline is not None:
            self._deadline.cancel()
        metaint = headers.get("icy-metaint", "") if self.icy else ""
        self._framer = framer_for(
            headers.get("content-type", ""), int(metaint) if metaint.isdigit() else None
        )
        self._stream_head = stream_response_head(headers, icy=bool(metaint))
        rest = bytes(self._head[end:])
        self._head.clear()
        pending, self._pending = self._pending, []
        for listener in pending:
            listener.start_stream(self._stream_head)
        self._waiting.extend(pending)
        if rest:
            self.data_received(rest)

    def _start_priming(self) -> None:
        """Icecast sends its burst with its first audio (which for a quiet source may
        come a while after the answer): the window opens with the first piece."""
        if self._priming is None:
            self._priming = asyncio.get_running_loop().call_later(
                self.limits.prime_seconds, self._primed
            )

    def _primed(self) -> None:
        """Icecast's burst is in: waiting listeners start with the recent part of it (for
        Ogg, the current chain only), as late joiners do; with nothing yet, at the next
        place to start."""
        self._priming = None
        self._primed_yet = True
        self._give_up_resuming()
        if self._burst.empty:
            return
        contents = self._framer_headers() + self._burst.contents()
        for listener in self._waiting:
            listener.transport.write(contents)
            listener.sent += len(contents)
            self.listeners.add(listener)
        self._waiting.clear()

    def _start_waiting(self) -> None:
        headers = self._framer_headers()
        for listener in self._waiting:
            if headers:
                listener.transport.write(headers)
                listener.sent += len(headers)
            self.listeners.add(listener)
        self._waiting.clear()

    def _resume_with(self, audio: bytes) -> None:
        framer = self._framer
        metaint = framer.metaint if isinstance(framer, IcyFramer) else None
        for resume, listeners in list(self._resumes.values()):
            data = resume.feed(audio, metaint, self._slot_block)
            if data:
                self._send(listeners, data)

    def _slot_block(self) -> bytes:
        framer = self._framer
        return self._titled(framer.slot()).data if isinstance(framer, IcyFramer) else b""

    def _give_up_resuming(self) -> None:
        """Icecast's burst is in: listeners whose place was not in it start live."""
        for resume, listeners in self._resumes.values():
            if resume.found:
                self.counters.resumed_in_place += len(listeners)
            else:
                resume.give_up()
                self.counters.resumed_with_gap += len(listeners)
        if self._resumes:
            log.info(
                "listeners handed over, %s: %d where they left off, %d live after a gap",
                self.path,
                sum(len(ls) for resume, ls in self._resumes.values() if resume.found),
                sum(len(ls) for resume, ls in self._resumes.values() if resume.gave_up),
            )

    def _broadcast(self, data: bytes) -> None:
        self._send(self.listeners, data)

    def _send(self, listeners: set[Listener], data: bytes) -> None:
        slow = []
        written = 0
        queued = 0
        size = len(data)
        limits, counters = self.limits, self.counters
        over_budget = counters.queued_bytes > limits.queue_budget
        limit = limits.tight_write_limit if over_budget else limits.write_limit
        for listener in listeners:
            transport = listener.transport
            backlog = transport.get_write_buffer_size()
            if backlog > limit:
                slow.append(listener)
                continue
            transport.write(data)
            listener.sent += size
            queued += backlog
            written += 1
        if listeners is self.listeners:  # the hub's own (not a handed-over group's)
            counters.queued_bytes += queued - self._queued
            self._queued = queued
        by_path = self.counters.bytes_by_path
        by_path[self.path] = by_path.get(self.path, 0) + written * size
        for listener in slow:
            self.counters.slow_listeners_dropped += 1
            listeners.discard(listener)
            listener.transport.abort()

    def _fail(self, error: HttpError) -> None:
        """Upstream failed: listeners still waiting get the error, streaming ones a hang-up,
        and those handed over by the last process go to `on_stranded`, which may start
        them again where they are (the node's Icecast serves their mount again a moment
        later when the agent that stopped had led: it relays only once its agent says so)."""
        if self.closed:
            return
        stranded = self._resumed_points()
        self._resumes.clear()
        if stranded:
            self.on_stranded(stranded)
        pending, self._pending = self._pending, []
        for listener in pending:
            listener.fail(error, retry_after=2)
        self.close()


class Passthrough:
    """The hubs of this node, by (Icecast path, ICY)."""

    def __init__(self, host: str, port: int, limits: FanoutLimits | None = None) -> None:
        self.host = host
        self.port = port
        self.limits = limits or FanoutLimits()
        self.counters = FanoutCounters()
        self.titles: dict[str, IcyTitles] = {}  # by Icecast path
        self._hubs: dict[tuple[str, bool], MountHub] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Until when a listener handed over is tried again when its upstream fails.
        self._resume_deadlines: weakref.WeakKeyDictionary[Listener, float] = (
            weakref.WeakKeyDictionary()
        )

    def join(self, path: str, icy: bool, listener: Listener) -> MountHub:
        hub = self._hub_for(path, icy)
        hub.join(listener)
        return hub

    def resume(self, point: ResumePoint, listener: Listener) -> MountHub:
        """A listener handed over: its stream may be tried again (its mount's upstream
        failing) for `resume_patience` from the first time."""
        deadline = asyncio.get_running_loop().time() + self.limits.resume_patience
        self._resume_deadlines.setdefault(listener, deadline)
        hub = self._hub_for(point.path, point.icy)
        hub.resume(listener, point)
        return hub

    def hand_over(self) -> list[tuple[ResumePoint, list[Listener]]]:
        return [handed for hub in self._hubs.values() for handed in hub.hand_over()]

    def _try_again_later(self, stranded: list[tuple[ResumePoint, list[Listener]]]) -> None:
        loop = asyncio.get_running_loop()
        for point, listeners in stranded:
            waiting = [ls for ls in listeners if loop.time() < self._resume_deadlines.get(ls, 0)]
            for listener in set(listeners) - set(waiting):
                listener.transport.close()  # too long since the hand-over: as any listener
            if waiting:
                loop.call_later(self.limits.resume_retry, self._resume_again, point, waiting)

    def _resume_again(self, point: ResumePoint, listeners: list[Listener]) -> None:
        for listener in listeners:
            if not listener.transport.is_closing():
                listener.hub = self.resume(point, listener)

    def _hub_for(self, path: str, icy: bool) -> MountHub:
        hub = self._hubs.get((path, icy))
        if hub is None or hub.closed:
            hub = MountHub(
                path,
                icy,
                self.limits,
                self.counters,
                self._forget,
                titles=self.titles_of,
                on_stranded=self._try_again_later,
            )
            self._hubs[(path, icy)] = hub
            task = asyncio.get_running_loop().create_task(hub.connect(self.host, self.port))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return hub

    def titles_of(self, path: str) -> IcyTitles | None:
        return self.titles.get(path)

    def _forget(self, hub: MountHub) -> None:
        if self._hubs.get((hub.path, hub.icy)) is hub:
            del self._hubs[(hub.path, hub.icy)]

    def listeners(self, path: str) -> int:
        return sum(
            self._hubs[(path, icy)].listener_count
            for icy in (False, True)
            if (path, icy) in self._hubs
        )

    def listeners_by_path(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for (path, _), hub in self._hubs.items():
            counts[path] = counts.get(path, 0) + hub.listener_count
        return counts

    def close(self) -> None:
        for hub in list(self._hubs.values()):
            hub.close()
        for task in self._tasks:
            task.cancel()
