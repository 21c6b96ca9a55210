"""HLS on this node: the mounts being cut into segments, while players ask for them.

A mount is cut from the first request for its media playlist until no player has asked
for anything of it for a while; meanwhile its stream comes from this node's Icecast (one
local connection, hls/upstream.py), which starts with Icecast's burst, so a first player
gets a segment at once. Memory is bounded: each mount keeps 2 x window + 1 segments (the
window, and those a player may still fetch after they left it: RFC 8216 section 6.2.2),
and at most MAX_MOUNTS mounts are cut at once on a node.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from radioagent.hls.playlists import SEGMENT_SUFFIXES, HlsSession, media_playlist, packs
from radioagent.hls.segmenter import Segmenter
from radioagent.hls.upstream import HlsUpstream
from radioagent.model import MountSpec, NodeStatus

MAX_MOUNTS = 16
CONNECT_TIMEOUT_SECONDS = 5.0


@dataclass
class _Cut:
    mount: MountSpec
    segmenter: Segmenter
    last_asked: float
    upstream: HlsUpstream | None = None
    sessions: dict[str, float] = field(default_factory=dict)  # key -> when last heard of
    # The other nodes' newest segment when this cut began (None: none cut the mount):
    # changes marked before it are in the number the cut took on.
    numbered_from: int | None = None
    change: float | None = None  # the last change of the stream followed (wall clock)


class TooManyMounts(Exception):
    """This node cuts MAX_MOUNTS mounts already."""


class HlsService:
    def __init__(
        self,
        icecast_address: tuple[str, int],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.icecast_address = icecast_address
        self.clock = clock
        self.wall_clock = wall_clock
        self.target_seconds = 4
        self.window = 6
        self._cuts: dict[str, _Cut] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.bytes_by_mount: dict[str, int] = {}  # segment bytes served
        # Other nodes' newest segment and its discontinuity number, by mount.
        self._numbering: dict[str, tuple[int, int]] = {}

    @property
    def session_seconds(self) -> float:
        """A session counts this long after its last request: a playing player fetches its
        playlist every target duration, and a window's worth covers a stalled one."""
        return float(self.window * self.target_seconds)

    @property
    def idle_seconds(self) -> float:
        """A mount nobody asked about this long stops being cut: a playing player asks
        for its playlist every target duration."""
        return max(30.0, 2.0 * self.window * self.target_seconds)

    def configure(self, target_seconds: int, window: int) -> None:
        """The cluster's settings; a new segment length starts every cut again (segments
        of two lengths cannot share one playlist)."""
        if (target_seconds, window) == (self.target_seconds, self.window):
            return
        self.target_seconds, self.window = target_seconds, window
        for name in list(self._cuts):
            self._stop(name)

    def is_new(self, mount: MountSpec, session: HlsSession) -> bool:
        """Whether the session is not counted on this node yet (limits apply to it)."""
        cut = self._cuts.get(mount.name)
        return cut is None or session.key not in cut.sessions

    def media_playlist(self, mount: MountSpec, session: HlsSession) -> str:
        """The mount's playlist, its cut started if it was not; TooManyMounts."""
        cut = self._cut_for(mount)
        cut.sessions[session.key] = self.clock()
        shown, before = cut.segmenter.window(self.window)
        uri = "{sequence}." + SEGMENT_SUFFIXES[mount.format.codec] + session.query
        return media_playlist(shown, self.target_seconds, before, uri)

    def segment(self, mount: MountSpec, sequence: int, session: HlsSession) -> bytes | None:
        """A segment this node still keeps, or None."""
        cut = self._cuts.get(mount.name)
        if cut is None:
            return None
        cut.last_asked = cut.sessions[session.key] = self.clock()
        for segment in cut.segmenter.segments:
            if segment.sequence == sequence:
                self.bytes_by_mount[mount.name] = self.bytes_by_mount.get(mount.name, 0) + len(
                    segment.data
                )
                return segment.data
        return None

    def numbers(self) -> dict[str, tuple[int, int]]:
        """Each cut's newest segment and its discontinuity sequence number."""
        return {
            name: (cut.segmenter.segments[-1].sequence, cut.segmenter.discontinuity_number)
            for name, cut in self._cuts.items()
            if cut.segmenter.segments
        }

    def sessions_by_mount(self) -> dict[str, int]:
        return {name: len(cut.sessions) for name, cut in self._cuts.items() if cut.sessions}

    @property
    def bytes_out(self) -> int:
        return sum(self.bytes_by_mount.values())

    def tick(
        self,
        mounts: dict[str, MountSpec],
        played: Collection[str] = (),
        numbering: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        """Each loop: cuts of mounts gone, of another format now, or idle stop (a change
        of limits or title goes on with the cut); a cut whose stream ended (Icecast
        restarted, the mount not live yet) connects again. `played`: the mounts HLS
        players play anywhere in the cluster, cut here too while they do, so that a
        player that comes here from another node finds the window it left (a node that
        starts cutting only has what Icecast's burst gives it). `numbering`: the other
        nodes' newest segments and their discontinuity numbers, which a cut started here
        takes on."""
        now = self.clock()
        self._numbering = dict(numbering or {})
        for name in played:
            mount = mounts.get(name)
            if mount is None or not packs(mount):
                continue
            if name in self._cuts:
                self._cuts[name].last_asked = now
            elif len(self._cuts) < MAX_MOUNTS:
                self._cut_for(mount)
        for name, cut in list(self._cuts.items()):
            mount = mounts.get(name)
            if (
                mount is None
                or mount.format != cut.mount.format
                or now - cut.last_asked > self.idle_seconds
            ):
                self._stop(name)
                continue
            cut.mount = mount
            for key, heard in list(cut.sessions.items()):
                if now - heard > self.session_seconds:
                    del cut.sessions[key]
            if cut.upstream is None or cut.upstream.closed:
                cut.segmenter.reanchor()
                self._connect(cut)

    def follow(self, leader: NodeStatus | None, delay: float) -> None:
        """Each loop: the leader's changes of each mount's stream (it began to lead: the
        relays now come from it; a studio came or went) mark a discontinuity on the first
        segment that starts `delay` after the change, so that every node, whenever its
        loop hears of it within `delay`, marks the same segment. A cut that began after
        that segment took the mark with its number."""
        if leader is None or leader.leading_since is None:
            return  # no leader now: nothing changes the streams until one leads
        for name, cut in self._cuts.items():
            change = max(leader.leading_since, leader.air_changed.get(name, 0.0))
            if change == cut.change:
                continue
            first = cut.change is None
            cut.change = change
            sequence = math.floor((change + delay) / self.target_seconds) + 1
            counted = (
                cut.numbered_from
                if cut.numbered_from is not None
                else math.floor(self.wall_clock() / self.target_seconds)
            )
            if not first or sequence > counted:
                cut.segmenter.mark_discontinuity_at(sequence)

    def held_bytes(self) -> int:
        return sum(
            len(segment.data) for cut in self._cuts.values() for segment in cut.segmenter.segments
        )

    def cut_mounts(self) -> list[str]:
        return sorted(self._cuts)

    def segmenter(self, name: str) -> Segmenter | None:
        """The mount's segmenter while it is cut."""
        cut = self._cuts.get(name)
        return None if cut is None else cut.segmenter

    def close(self) -> None:
        for name in list(self._cuts):
            self._stop(name)
        for task in self._tasks:
            task.cancel()

    def _cut_for(self, mount: MountSpec) -> _Cut:
        cut = self._cuts.get(mount.name)
        if cut is not None and cut.mount.format == mount.format:
            cut.last_asked = self.clock()
            return cut
        if cut is None and len(self._cuts) >= MAX_MOUNTS:
            raise TooManyMounts(f"this node cuts {MAX_MOUNTS} mounts for HLS already")
        if cut is not None:
            self._stop(mount.name)
        keep = 2 * self.window + 1
        segmenter = Segmenter(mount.format.codec, self.target_seconds, keep)
        # Numbered on from the other nodes: a player that comes from one of them checks
        # that a segment has the same discontinuity number here as there (hls.js does).
        newest, number = self._numbering.get(mount.name, (None, 0))
        segmenter.discontinuities_dropped = number
        cut = _Cut(mount, segmenter, self.clock(), numbered_from=newest)
        self._cuts[mount.name] = cut
        self._connect(cut)
        return cut

    def _connect(self, cut: _Cut) -> None:
        cut.upstream = HlsUpstream(cut.mount.path, cut.segmenter)
        host, port = self.icecast_address
        task = asyncio.get_running_loop().create_task(
            cut.upstream.connect(host, port, CONNECT_TIMEOUT_SECONDS)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stop(self, name: str) -> None:
        cut = self._cuts.pop(name)
        if cut.upstream is not None:
            cut.upstream.close()


def hls_elsewhere(
    nodes: Collection[NodeStatus],
) -> tuple[set[str], dict[str, tuple[int, int]]]:
    """From the nodes' statuses: the mounts HLS players play anywhere, and for each mount
    the newest segment any node cut, with its discontinuity sequence number."""
    played = {name for node in nodes for name in node.hls_mounts}
    numbering: dict[str, tuple[int, int]] = {}
    for node in nodes:
        for name, (sequence, number) in node.hls_numbers.items():
            numbering[name] = max((sequence, number), numbering.get(name, (sequence, number)))
    return played, numbering
