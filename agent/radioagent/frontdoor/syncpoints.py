"""Where a decoder can start in a studio's stream: MP3 and AAC (ADTS) frames, Ogg pages.
Pure. Fed the stream in any chunks, it notes each place by its offset from the stream's
first byte, so a stream cut at an arbitrary byte can go on from a whole frame (or page,
after its chain's header pages) rather than a fragment that decoders choke on.

A frame counts once the next one is found right after it: a sync pattern that happens to
occur inside audio data is not one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from radioagent.holding.ogg import OGG_CAPTURE, OGG_HEADER_BYTES

_MP3_KBPS = {  # (MPEG-1?, layer) -> bitrates by index; index 0 (free) and 15 are not allowed
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {0b11: (44100, 48000, 32000), 0b10: (22050, 24000, 16000), 0b00: (11025, 12000, 8000)}
HEADER_BYTES = 7  # enough for an MP3 (4) or ADTS (7) header


def mp3_frame_length(header: bytes | bytearray) -> int | None:
    """The length of the MPEG audio frame starting with `header` (4 bytes), or None."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 0b11, (header[1] >> 1) & 0b11
    bitrate_index, rate_index = header[2] >> 4, (header[2] >> 2) & 0b11
    if version == 0b01 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer = 4 - layer_bits
    mpeg1 = version == 0b11
    bitrate = _MP3_KBPS[(mpeg1, layer)][bitrate_index] * 1000
    samplerate = _MP3_RATES[version][rate_index]
    padding = (header[2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // samplerate + padding) * 4
    if layer == 3 and not mpeg1:
        return 72 * bitrate // samplerate + padding
    return 144 * bitrate // samplerate + padding


def adts_frame_length(header: bytes | bytearray) -> int | None:
    """The length of the ADTS (AAC) frame starting with `header` (7 bytes), or None."""
    if len(header) < 7 or header[0] != 0xFF or header[1] & 0xF6 != 0xF0:
        return None
    if (header[2] >> 2) & 0x0F > 12:  # sampling frequency index
        return None
    length = ((header[3] & 0x03) << 11) | (header[4] << 3) | (header[5] >> 5)
    return length if length >= 7 else None


_ADTS_RATES = (
    *(96000, 88200, 64000, 48000, 44100, 32000, 24000),
    *(22050, 16000, 12000, 11025, 8000, 7350),
)


def mp3_frame_seconds(header: bytes | bytearray) -> float | None:
    """How long the MPEG audio frame starting with `header` plays, or None."""
    if mp3_frame_length(header) is None:
        return None
    version, layer = (header[1] >> 3) & 0b11, 4 - ((header[1] >> 1) & 0b11)
    samplerate = _MP3_RATES[version][(header[2] >> 2) & 0b11]
    samples = 384 if layer == 1 else 576 if layer == 3 and version != 0b11 else 1152
    return samples / samplerate


def adts_frame_seconds(header: bytes | bytearray) -> float | None:
    """How long the ADTS (AAC) frame starting with `header` plays, or None: 1,024 samples
    per raw data block (HE-AAC's doubled output rate is signalled elsewhere; a player
    keeps time by the ADTS rate, as this does)."""
    if adts_frame_length(header) is None:
        return None
    samplerate = _ADTS_RATES[(header[2] >> 2) & 0x0F]
    blocks = (header[6] & 0x03) + 1
    return 1024 * blocks / samplerate


@dataclass(frozen=True)
class SyncPoint:
    offset: int  # from the stream's first byte
    chain_start: bool = False  # an Ogg page that begins a chained stream (BOS)


class SyncPoints:
    """The places a decoder can start, for the last part of one stream."""

    def __init__(self, codec: str) -> None:
        self.ogg = codec in ("vorbis", "opus", "flac")
        self._frame_length = adts_frame_length if codec == "aac" else mp3_frame_length
        self.points: deque[SyncPoint] = deque()
        self.headers = b""  # Ogg: the header pages of the chain being received
        self._in_headers = False
        self._chain_headers = bytearray()
        self._pending = bytearray()  # not yet scanned: at most one frame or page
        self._pending_offset = 0  # the stream offset of _pending[0]

    def feed(self, data: bytes) -> None:
        self._pending += data
        if self.ogg:
            self._scan_pages()
        else:
            self._scan_frames()

    def first_from(self, offset: int) -> SyncPoint | None:
        """The first place at or after `offset`, if one is known yet."""
        for point in self.points:
            if point.offset >= offset:
                return point
        return None

    def forget_before(self, offset: int) -> None:
        while self.points and self.points[0].offset < offset:
            self.points.popleft()

    def _consume(self, length: int) -> None:
        del self._pending[:length]
        self._pending_offset += length

    def _scan_frames(self) -> None:
        pending = self._pending
        while len(pending) >= HEADER_BYTES:
            length = self._frame_length(pending[:HEADER_BYTES])
            if length is None:
                sync = pending.find(b"\xff", 1)
                self._consume(sync if sync > 0 else len(pending))
                continue
            if len(pending) < length + HEADER_BYTES:
                return  # wait for the next frame's header to confirm this one
            if self._frame_length(pending[length : length + HEADER_BYTES]) is None:
                self._consume(1)  # a sync pattern inside audio data: look further
                continue
            self.points.append(SyncPoint(self._pending_offset))
            self._consume(length)

    def _scan_pages(self) -> None:
        pending = self._pending
        while len(pending) >= OGG_HEADER_BYTES:
            if pending[:4] != OGG_CAPTURE or pending[4] != 0:
                capture = pending.find(OGG_CAPTURE, 1)
                self._consume(capture if capture > 0 else len(pending) - 3)
                continue
            segments = pending[26]
            if len(pending) < OGG_HEADER_BYTES + segments:
                return
            length = (
                OGG_HEADER_BYTES
                + segments
                + sum(pending[OGG_HEADER_BYTES : OGG_HEADER_BYTES + segments])
            )
            if len(pending) < length:
                return
            self._note_page(bytes(pending[:length]))
            self._consume(length)

    def _note_page(self, page: bytes) -> None:
        """As the fan-out's Ogg framer: a chain's header pages run from its BOS page up to
        the first page with a granule position."""
        beginning_of_stream = bool(page[5] & 0x02)
        granule = int.from_bytes(page[6:14], "little")
        if beginning_of_stream:
            self._in_headers = True
            self._chain_headers = bytearray()
        if self._in_headers and (beginning_of_stream or granule in (0, 0xFFFFFFFFFFFFFFFF)):
            self._chain_headers += page
            if beginning_of_stream:
                self.points.append(SyncPoint(self._pending_offset, chain_start=True))
            return
        if self._in_headers:
            self.headers = bytes(self._chain_headers)
            self._in_headers = False
        self.points.append(SyncPoint(self._pending_offset))
