"""A mount's stream cut into HLS segments on a clock every node shares. Pure: the time
of each feed is given.

Every node must name the same stretch of audio the same way, so that a player moving to
another node (its node died, DNS sent it elsewhere) goes on without a jump. The names
come from wall-clock time, which every node keeps by NTP: the audio a node receives is
laid on a timeline anchored so that what just arrived ends now, each frame after the one
before it; segment N holds the frames whose start falls in [N * T, (N + 1) * T) of that
timeline (T the target duration), and its tag carries the time of its first frame. Two
nodes then differ only by how much later one receives the stream than the other (the
relay from the leader: milliseconds on a LAN).

The timeline follows the wall clock: a small difference between the two (a source whose
sample clock runs fast or slow, arrival jitter) is slewed away a little at each feed; a
large one (a stall, a burst after a reconnect, a source change) anchors the timeline
again. Audio that lands on time already cut (a burst repeating what came before) is
dropped; a jump forward leaves a hole in the timestamps, which players step over, and a
whole segment missing starts the playlist again (its sequence numbers must follow each
other).

Discontinuities are marked only for what every node sees (another source, another
leader), never for what happens to one node's own stream (a stall, a reconnection), and
on a segment every node chooses alike (service.py): a player moving between nodes checks
that each segment has the same discontinuity number on both, and a mark only one node
made, or made one segment later, would stop it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from radioagent.frontdoor.syncpoints import (
    HEADER_BYTES,
    adts_frame_length,
    adts_frame_seconds,
    mp3_frame_length,
    mp3_frame_seconds,
)
from radioagent.hls.id3 import timestamp_tag

# A timeline this far from the wall clock is anchored again instead of slewed.
RESYNC_SECONDS = 1.0
# The share of the timeline's difference from the wall clock taken back at each feed.
SLEW = 0.05
# A frame overlapping what was already cut by more than this share of it is a repeat.
REPEAT_OVERLAP = 0.5
CODECS = ("mp3", "aac")


@dataclass(frozen=True, slots=True)
class Segment:
    sequence: int  # its slot on the shared clock: N for [N * T, (N + 1) * T)
    start: float  # the shared-clock time of its first frame (its tag's timestamp)
    duration: float  # what its frames play for
    data: bytes  # the timestamp tag, then whole frames
    discontinuity: bool  # the audio before it does not run on into it


@dataclass
class _Open:
    sequence: int
    start: float
    discontinuity: bool
    frames: bytearray
    duration: float = 0.0


FrameFacts = tuple[
    Callable[[bytes | bytearray], int | None], Callable[[bytes | bytearray], float | None]
]
_FRAME_FACTS: dict[str, FrameFacts] = {
    "mp3": (mp3_frame_length, mp3_frame_seconds),
    "aac": (adts_frame_length, adts_frame_seconds),
}


def frames_of(data: bytes, codec: str) -> list[tuple[bytes, float]]:
    """Each whole frame of `data` (a run of whole frames, as the fan-out's framer hands
    them out) with how long it plays; bytes after the last frame that parses are left."""
    length_of, seconds_of = _FRAME_FACTS[codec]
    frames = []
    position = 0
    while len(data) - position >= 4:
        header = data[position : position + HEADER_BYTES]
        length, seconds = length_of(header), seconds_of(header)
        if length is None or seconds is None or position + length > len(data):
            break
        frames.append((data[position : position + length], seconds))
        position += length
    return frames


class Segmenter:
    """`target_seconds`: T; `keep`: how many finished segments stay (the playlist's window
    and, after it, those a player may still fetch: RFC 8216 section 6.2.2)."""

    def __init__(self, codec: str, target_seconds: int, keep: int) -> None:
        if codec not in CODECS:
            raise ValueError(f"HLS packs {' and '.join(CODECS)} audio, not {codec}")
        self.codec = codec
        self.target_seconds = target_seconds
        self.keep = keep
        self.segments: deque[Segment] = deque()
        self.discontinuities_dropped = 0  # of segments no longer kept: the playlists' count
        self.repeats_dropped = 0  # frames that landed on time already cut
        self._open: _Open | None = None
        self._next_at: float | None = None  # the timeline's time for the next frame
        self._cut_until: float | None = None  # the end of the audio taken so far
        self._marks: list[int] = []  # sequences whose segment starts a discontinuity
        # The wall clock minus the timeline at the end of the last feed, before slewing:
        # how far the stream's own clock has wandered (jitter, a source's sample clock).
        self.behind = 0.0

    def window(self, size: int) -> tuple[list[Segment], int]:
        """The last `size` finished segments, and the discontinuities before them (the
        playlist's EXT-X-DISCONTINUITY-SEQUENCE)."""
        kept = list(self.segments)
        shown = kept[-size:] if size > 0 else []
        before = kept[: len(kept) - len(shown)]
        return shown, self.discontinuities_dropped + sum(item.discontinuity for item in before)

    @property
    def discontinuity_number(self) -> int:
        """The discontinuity sequence number of the newest segment kept."""
        return self.discontinuities_dropped + sum(item.discontinuity for item in self.segments)

    def reanchor(self) -> None:
        """The same stream again after a break (the connection to Icecast was made
        again): anchor the timeline at the next feed; its timestamps say where it goes."""
        self._next_at = None

    def mark_discontinuity_at(self, sequence: int) -> None:
        """The stream changed (another source, another leader): the segment `sequence`
        starts a discontinuity, or the first one after it if that is cut already or never
        comes. Marks that fall on one segment make one discontinuity."""
        self._marks.append(sequence)

    def feed(self, data: bytes, now: float) -> None:
        """Whole frames that arrived at `now` (wall-clock seconds)."""
        frames = frames_of(data, self.codec)
        if not frames:
            return
        total = sum(seconds for _, seconds in frames)
        if self._next_at is None:
            self._next_at = now - total
        else:
            behind = self.behind = now - (self._next_at + total)
            if abs(behind) > RESYNC_SECONDS:
                self._next_at = now - total
            else:
                self._next_at += behind * SLEW
        for frame, seconds in frames:
            self._take(frame, seconds, self._next_at)
            self._next_at += seconds

    def _take(self, frame: bytes, seconds: float, at: float) -> None:
        """`at`: where the timeline puts the frame. It never goes back on what was cut:
        a frame mostly over it is dropped (a repeat, or a fast source's surplus once the
        slew has taken back half a frame), one slightly over it starts where it ends."""
        cut_until = self._cut_until
        if cut_until is not None and cut_until - at > seconds * REPEAT_OVERLAP:
            self.repeats_dropped += 1
            return
        # Within half a frame of where the cut audio ends: right after it, so the
        # timestamps run on without a hole or an overlap.
        joins = cut_until is not None and at - cut_until < seconds * REPEAT_OVERLAP
        start = cast(float, cut_until) if joins else at
        sequence = math.floor(start / self.target_seconds)
        current = self._open
        if current is None or sequence > current.sequence:
            self._finish()
            if current is not None and sequence > current.sequence + 1:
                self._restart()
            marked = any(mark <= sequence for mark in self._marks)
            if marked:
                self._marks = [mark for mark in self._marks if mark > sequence]
            current = self._open = _Open(sequence, start, marked, bytearray(timestamp_tag(start)))
        current.frames += frame
        current.duration += seconds
        self._cut_until = start + seconds

    def _finish(self) -> None:
        if self._open is None:
            return
        done = self._open
        self._open = None
        finished = Segment(
            done.sequence, done.start, done.duration, bytes(done.frames), done.discontinuity
        )
        self.segments.append(finished)
        while len(self.segments) > self.keep:
            self.discontinuities_dropped += self.segments.popleft().discontinuity

    def _restart(self) -> None:
        """A whole segment is missing: the kept ones cannot be in one playlist with what
        follows (sequence numbers follow each other), so they go."""
        self.discontinuities_dropped += sum(segment.discontinuity for segment in self.segments)
        self.segments.clear()
