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
from dataclasses import dataclass
from typing import Protocol

from radioagent.holding.ogg import OGG_CAPTURE, OGG_HEADER_BYTES

NO_GRANULE = 0xFFFFFFFFFFFFFFFF  # no packet ends on the page (a header spanning pages)


@dataclass(frozen=True, slots=True)
class Piece:
    data: bytes
    sync: bool  # a new listener may start with this piece
    header: bool = False  # a stream header: new listeners get it from Framer.headers
    metadata: bool = False  # one whole ICY metadata block (length byte included)


class Framer(Protocol):
    headers: bytes

    def feed(self, data: bytes) -> list[Piece]: ...


class RawFramer:
    """MP3, AAC: every byte is a place to start."""

    headers = b""

    def feed(self, data: bytes) -> list[Piece]:
        return [Piece(data, sync=True)]


class IcyFramer:
    """`metaint` audio bytes, one length byte L, 16 x L metadata bytes, again and again.
    Audio comes out as it arrives; each metadata block as one piece once whole. A new
    listener starts where an audio run starts."""

    headers = b""

    def __init__(self, metaint: int) -> None:
        if metaint <= 0:
            raise ValueError(f"icy-metaint {metaint} is not positive")
        self.metaint = metaint
        self._audio_left = metaint
        self._block = bytearray()  # the metadata block read so far
        self._meta_left: int | None = None  # None: in audio, or the length byte comes next

    def feed(self, data: bytes) -> list[Piece]:
        pieces = []
        position = 0
        while position < len(data):
            if self._audio_left:
                taken = min(self._audio_left, len(data) - position)
                at_unit_start = self._audio_left == self.metaint
                pieces.append(Piece(data[position : position + taken], at_unit_start))
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
                pieces.append(Piece(bytes(self._block), sync=False, metadata=True))
                self._block.clear()
                self._audio_left, self._meta_left = self.metaint, None
        return pieces


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


def framer_for(content_type: str, metaint: int | None) -> Framer:
    if metaint:
        return IcyFramer(metaint)
    if "ogg" in content_type.lower():
        return OggFramer()
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
