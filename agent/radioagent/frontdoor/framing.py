"""Where in a stream a new listener may start, and what it needs first. Pure.

One upstream read per mount is fanned out to every listener, so a listener joins a
stream already running. MP3 and AAC players resync on the next frame, so any byte will
do. With ICY metadata the listener must start right after a metadata block, or its
`icy-metaint` count is off for good; the blocks come as pieces of their own, so the
fan-out can put the cluster's title in them. An Ogg listener needs the stream's header pages
(Vorbis or Opus set-up) before the first audio page, and must start on a page.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from radioagent.frontdoor.syncpoints import HEADER_BYTES, adts_frame_length, mp3_frame_length
from radioagent.holding.ogg import OGG_CAPTURE, OGG_HEADER_BYTES
from radioagent.nowplaying import HOLDING_TITLE_MARKER

NO_GRANULE = 0xFFFFFFFFFFFFFFFF  # no packet ends on the page (a header spanning pages)


@dataclass(frozen=True, slots=True)
class Piece:
    data: bytes
    sync: bool  # a new listener may start with this piece
    header: bool = False  # a stream header: new listeners get it from Framer.headers
    metadata: bool = False  # a slot for one ICY metadata block (length byte included)
    holding: bool = False  # a slot while listeners hear the holding audio


class Framer(Protocol):
    headers: bytes

    def feed(self, data: bytes) -> list[Piece]: ...


class RawFramer:
    """A type not known here: every byte is a place to start."""

    headers = b""

    def feed(self, data: bytes) -> list[Piece]:
        return [Piece(data, sync=True)]


FrameLength = Callable[[bytes | bytearray], int | None]
NO_TITLE_CHANGE = b"\x00"  # an empty ICY block: the title stays as it is
HOLDING_MARKER = HOLDING_TITLE_MARKER.encode()


class WholeFrames:
    """The whole frames of an MP3 or ADTS stream. A frame goes on once the next one's
    header is seen right after it; bytes that are not part of such a chain (a frame cut
    short by a splice, junk) are dropped and counted."""

    def __init__(self, frame_length: FrameLength) -> None:
        self.frame_length = frame_length
        self.dropped = 0
        self._pending = bytearray()

    def feed(self, data: bytes) -> bytes:
        pending = self._pending
        pending += data
        position = 0
        start = None  # where the run of whole frames found now begins
        while len(pending) - position >= HEADER_BYTES:
            length = self.frame_length(pending[position : position + HEADER_BYTES])
            if length is not None and len(pending) - position < length + HEADER_BYTES:
                break  # the next header is not here yet
            after = position + (length or 0)
            if length is None or self.frame_length(pending[after : after + HEADER_BYTES]) is None:
                if start is not None:
                    break  # the run ends here: hand it out, look further next time
                sync = pending.find(b"\xff", position + 1)
                skip = (sync if sync >= 0 else len(pending)) - position
                self.dropped += skip
                position += skip
                continue
            if start is None:
                start = position
            position = after
        frames = b"" if start is None else bytes(pending[start:position])
        del pending[:position]
        return frames


class FrameFramer:
    """MP3 or AAC without ICY metadata: whole frames, each run of them a place to start."""

    headers = b""

    def __init__(self, frame_length: FrameLength) -> None:
        self.frames = WholeFrames(frame_length)

    def feed(self, data: bytes) -> list[Piece]:
        frames = self.frames.feed(data)
        return [Piece(frames, sync=True)] if frames else []


class IcyFramer:
    """Icecast's ICY stream: `metaint` audio bytes, one length byte L, 16 x L metadata
    bytes, again and again. Its blocks are read and taken out; the audio (whole frames
    of it, when the frame format is known) goes on with a slot after every `metaint`
    bytes. A new listener starts after a slot."""

    headers = b""

    def __init__(self, metaint: int, frame_length: FrameLength | None = None) -> None:
        if metaint <= 0:
            raise ValueError(f"icy-metaint {metaint} is not positive")
        self.metaint = metaint
        self.frames = WholeFrames(frame_length) if frame_length is not None else None
        self.upstream_block: bytes | None = None  # Icecast's last whole block
        self.on_holding = False  # that block was the holding mount's marker
        self._audio_left = metaint  # of Icecast's unit
        self._block = bytearray()  # Icecast's block read so far
        self._meta_left: int | None = None  # None: in audio, or the length byte comes next
        self._out_left = metaint  # audio bytes before our next slot
        self._slot_due = False  # a slot goes in before more audio (once Icecast's block is read)

    def feed(self, data: bytes) -> list[Piece]:
        pieces: list[Piece] = []
        position = 0
        while position < len(data):
            if self._audio_left:
                taken = min(self._audio_left, len(data) - position)
                self._audio(data[position : position + taken], pieces)
                self._audio_left -= taken
                position += taken
                continue
            if self._meta_left is None:
                self._meta_left = data[position] * 16
                self._block.append(data[position])
                position += 1
            else:
                taken = min(self._meta_left, len(data) - position)
                self._block += data[position : position + taken]
                self._meta_left -= taken
                position += taken
            if self._meta_left == 0:
                self._note_block(bytes(self._block))
                self._block.clear()
                self._audio_left, self._meta_left = self.metaint, None
        return pieces

    def _note_block(self, block: bytes) -> None:
        """Icecast sends a whole block only when its title changed, or when listeners
        moved to another source (the holding mount, and back)."""
        if len(block) > 1:
            self.upstream_block = block
            self.on_holding = HOLDING_MARKER in block

    def _audio(self, data: bytes, pieces: list[Piece]) -> None:
        if self.frames is not None:
            data = self.frames.feed(data)
        position = 0
        while position < len(data):
            if self._slot_due:
                pieces.append(self.slot())
                self._slot_due = False
                self._out_left = self.metaint
            taken = min(self._out_left, len(data) - position)
            pieces.append(Piece(data[position : position + taken], self._out_left == self.metaint))
            self._out_left -= taken
            position += taken
            self._slot_due = self._out_left == 0

    @property
    def audio_since_slot(self) -> int:
        """Audio bytes out since our last slot (metaint: a slot is due next)."""
        return self.metaint - self._out_left

    def slot(self) -> Piece:
        """What Icecast would have sent there: its title (whole, so a listener joining
        later has it too), or no change."""
        block = self.upstream_block if self.upstream_block is not None else NO_TITLE_CHANGE
        return Piece(block, sync=False, metadata=True, holding=self.on_holding)


class OggFramer:
    """Whole pages. The pages at the start of each chained stream up to the first one with
    a granule position are its headers; a new chain (a page with the BOS flag) replaces them."""

    def __init__(self) -> None:
        self.headers = b""
        self._buffer = bytearray()
        self._in_headers = False

    def feed(self, data: bytes) -> list[Piece]:
        self._buffer += data
        pieces = []
        while len(self._buffer) >= OGG_HEADER_BYTES:
            if self._buffer[:4] != OGG_CAPTURE:
                raise ValueError("the upstream is not an Ogg stream")
            segments = self._buffer[26]
            if len(self._buffer) < OGG_HEADER_BYTES + segments:
                break
            length = (
                OGG_HEADER_BYTES
                + segments
                + sum(self._buffer[OGG_HEADER_BYTES : OGG_HEADER_BYTES + segments])
            )
            if len(self._buffer) < length:
                break
            page = bytes(self._buffer[:length])
            del self._buffer[:length]
            pieces.append(self._classify(page))
        return pieces

    def _classify(self, page: bytes) -> Piece:
        beginning_of_stream = bool(page[5] & 0x02)
        granule = int.from_bytes(page[6:14], "little")
        if beginning_of_stream and not self._in_headers:
            self.headers = b""
            self._in_headers = True
        if self._in_headers and (beginning_of_stream or granule in (0, NO_GRANULE)):
            self.headers += page
            return Piece(page, sync=False, header=True)
        self._in_headers = False
        return Piece(page, sync=True)


def frame_length_for(content_type: str) -> FrameLength | None:
    content_type = content_type.lower()
    if "mpeg" in content_type:
        return mp3_frame_length
    if "aac" in content_type:
        return adts_frame_length
    return None


def framer_for(content_type: str, metaint: int | None) -> Framer:
    frame_length = frame_length_for(content_type)
    if metaint:
        return IcyFramer(metaint, frame_length)
    if "ogg" in content_type.lower():
        return OggFramer()
    if frame_length is not None:
        return FrameFramer(frame_length)
    return RawFramer()


class Burst:
    """The recent stream kept for new listeners, as runs that each start at a sync piece,
    so it always starts where a listener may start. Bounded: about `limit` bytes plus at
    most one run."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._runs: deque[list[bytes]] = deque()
        self._run_sizes: deque[int] = deque()
        self._size = 0

    def add(self, piece: Piece) -> None:
        if piece.header:
            # A new chain starts: older audio cannot be decoded with its headers.
            self.clear()
            return
        if piece.sync:
            self._runs.append([])
            self._run_sizes.append(0)
        elif not self._runs:
            return  # nothing to attach a continuation to
        self._runs[-1].append(piece.data)
        self._run_sizes[-1] += len(piece.data)
        self._size += len(piece.data)
        while self._size > self.limit and len(self._runs) > 1:
            self._runs.popleft()
            self._size -= self._run_sizes.popleft()

    def clear(self) -> None:
        self._runs.clear()
        self._run_sizes.clear()
        self._size = 0

    @property
    def empty(self) -> bool:
        return not self._runs

    def contents(self) -> bytes:
        return b"".join(b"".join(run) for run in self._runs)

    def __len__(self) -> int:
        return self._size
