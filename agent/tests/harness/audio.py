"""Check that bytes received by a listener are a well-formed MP3 or Ogg stream.

Hand-written because the libraries at hand (mutagen among them) read files' tags and
summary info; none walks a captured stream fragment frame by frame and reports where the
chain of frames breaks, which is exactly what a listener test must know. A fragment may
start and end mid-frame (a listener joins a live stream), so leading and trailing partial
frames are allowed; a break inside the chain is counted as a resync.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The CRC is the one piece shared with the agent (its holding feeds rewrite Ogg pages);
# a unit test pins it to the published check value.
from radioagent.holding.ogg import ogg_crc

# --- MP3 -----------------------------------------------------------------------------------

_MPEG1, _MPEG2, _MPEG25 = "MPEG-1", "MPEG-2", "MPEG-2.5"
_VERSION_BY_BITS = {0: _MPEG25, 2: _MPEG2, 3: _MPEG1}
_LAYER_BY_BITS = {1: 3, 2: 2, 3: 1}
_SAMPLERATES = {
    _MPEG1: (44100, 48000, 32000),
    _MPEG2: (22050, 24000, 16000),
    _MPEG25: (11025, 12000, 8000),
}
_BITRATES_KBPS = {
    (_MPEG1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (_MPEG1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (_MPEG1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    ("LSF", 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    ("LSF", 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    ("LSF", 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
MP3_HEADER_BYTES = 4
# Frames that must follow one another before a position counts as a real frame boundary;
# a lone 0xFFE sync pattern inside audio data is common.
MP3_SYNC_CHAIN = 3


@dataclass(frozen=True)
class Mp3Frame:
    version: str
    layer: int
    bitrate_kbps: int
    samplerate: int
    padding: int
    channels: int
    length: int

    @property
    def samples(self) -> int:
        if self.layer == 1:
            return 384
        if self.layer == 3 and self.version != _MPEG1:
            return 576
        return 1152

    def same_stream_as(self, other: Mp3Frame) -> bool:
        return (self.version, self.layer, self.samplerate) == (
            other.version,
            other.layer,
            other.samplerate,
        )


def parse_mp3_header(header: bytes) -> Mp3Frame | None:
    """The frame a 4-byte header announces, or None if it is not a usable header
    (no sync, reserved values, free-format bitrate)."""
    if len(header) < MP3_HEADER_BYTES or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version = _VERSION_BY_BITS.get((header[1] >> 3) & 0b11)
    layer = _LAYER_BY_BITS.get((header[1] >> 1) & 0b11)
    bitrate_index = header[2] >> 4
    samplerate_index = (header[2] >> 2) & 0b11
    if version is None or layer is None or bitrate_index in (0, 15) or samplerate_index == 3:
        return None
    table_version = _MPEG1 if version == _MPEG1 else "LSF"
    bitrate_kbps = _BITRATES_KBPS[(table_version, layer)][bitrate_index]
    samplerate = _SAMPLERATES[version][samplerate_index]
    padding = (header[2] >> 1) & 1
    channels = 1 if header[3] >> 6 == 0b11 else 2
    if layer == 1:
        length = (12 * bitrate_kbps * 1000 // samplerate + padding) * 4
    elif layer == 3 and version != _MPEG1:
        length = 72 * bitrate_kbps * 1000 // samplerate + padding
    else:
        length = 144 * bitrate_kbps * 1000 // samplerate + padding
    return Mp3Frame(version, layer, bitrate_kbps, samplerate, padding, channels, length)


@dataclass
class Mp3Report:
    frames: int = 0
    resyncs: int = 0
    leading_bytes: int = 0
    trailing_bytes: int = 0
    samplerates: set[int] = field(default_factory=set)
    channels: set[int] = field(default_factory=set)
    bitrates_kbps: set[int] = field(default_factory=set)
    seconds: float = 0.0

    def problems(self, min_frames: int) -> list[str]:
        """What makes this not a clean MP3 stream of at least `min_frames` frames."""
        found = []
        if self.frames < min_frames:
            found.append(f"only {self.frames} MP3 frames, wanted at least {min_frames}")
        if self.resyncs:
            found.append(f"the frame chain broke {self.resyncs} times")
        if self.leading_bytes > 2881:  # longer than any MP3 frame: not a joined-mid-frame start
            found.append(f"{self.leading_bytes} bytes before the first frame")
        if self.trailing_bytes > 2881:
            found.append(f"{self.trailing_bytes} bytes after the last frame")
        return found


def _chain_starts_at(data: bytes, offset: int) -> Mp3Frame | None:
    """The first frame if MP3_SYNC_CHAIN consistent frames start at `offset` (or run
    consistently to the end of the data)."""
    first = parse_mp3_header(data[offset : offset + MP3_HEADER_BYTES])
    if first is None:
        return None
    position = offset
    for _ in range(MP3_SYNC_CHAIN):
        frame = parse_mp3_header(data[position : position + MP3_HEADER_BYTES])
        if frame is None:
            return first if position >= len(data) - MP3_HEADER_BYTES + 1 else None
        if not frame.same_stream_as(first):
            return None
        position += frame.length
    return first


def _find_chain(data: bytes, start: int) -> tuple[int, Mp3Frame] | None:
    position = data.find(b"\xff", start)
    while position != -1:
        first = _chain_starts_at(data, position)
        if first is not None:
            return position, first
        position = data.find(b"\xff", position + 1)
    return None


def analyse_mp3(data: bytes) -> Mp3Report:
    report = Mp3Report()
    found = _find_chain(data, 0)
    if found is None:
        report.leading_bytes = len(data)
        return report
    position, locked = found
    report.leading_bytes = position
    while position + MP3_HEADER_BYTES <= len(data):
        frame = parse_mp3_header(data[position : position + MP3_HEADER_BYTES])
        if frame is None or not frame.same_stream_as(locked):
            report.resyncs += 1
            found = _find_chain(data, position + 1)
            if found is None:
                break
            position, locked = found
            continue
        if position + frame.length > len(data):
            break
        report.frames += 1
        report.samplerates.add(frame.samplerate)
        report.channels.add(frame.channels)
        report.bitrates_kbps.add(frame.bitrate_kbps)
        report.seconds += frame.samples / frame.samplerate
        position += frame.length
    report.trailing_bytes = len(data) - position
    return report


# --- Ogg -----------------------------------------------------------------------------------

OGG_CAPTURE = b"OggS"
OGG_HEADER_BYTES = 27
_OGG_BEGINNING_OF_STREAM = 0x02
_CODEC_SIGNATURES = {
    b"\x01vorbis": "vorbis",
    b"OpusHead": "opus",
    b"\x7fFLAC": "flac",
    b"Speex   ": "speex",
}


@dataclass
class OggReport:
    pages: int = 0
    resyncs: int = 0
    leading_bytes: int = 0
    trailing_bytes: int = 0
    codecs: set[str] = field(default_factory=set)
    serials: set[int] = field(default_factory=set)

    def problems(self, min_pages: int) -> list[str]:
        found = []
        if self.pages < min_pages:
            found.append(f"only {self.pages} Ogg pages, wanted at least {min_pages}")
        if self.resyncs:
            found.append(f"{self.resyncs} damaged pages or breaks between pages")
        if self.leading_bytes > 65307:  # longer than any Ogg page
            found.append(f"{self.leading_bytes} bytes before the first page")
        if self.trailing_bytes > 65307:
            found.append(f"{self.trailing_bytes} bytes after the last page")
        return found


def _ogg_page_length(data: bytes, offset: int) -> int | None:
    """Length of the page at `offset` if its header and CRC check out; None if damaged;
    0 if the page runs past the end of the data."""
    header_end = offset + OGG_HEADER_BYTES
    if header_end > len(data):
        return 0
    if data[offset : offset + 4] != OGG_CAPTURE or data[offset + 4] != 0:
        return None
    segment_count = data[offset + 26]
    if header_end + segment_count > len(data):
        return 0
    body_length = sum(data[header_end : header_end + segment_count])
    length = OGG_HEADER_BYTES + segment_count + body_length
    if offset + length > len(data):
        return 0
    page = bytearray(data[offset : offset + length])
    stored_crc = int.from_bytes(page[22:26], "little")
    page[22:26] = b"\0\0\0\0"
    return length if ogg_crc(bytes(page)) == stored_crc else None


def _later_valid_page(data: bytes, position: int) -> int | None:
    """The next offset after `position` where a complete, valid page starts."""
    candidate = data.find(OGG_CAPTURE, position + 1)
    while candidate != -1:
        if _ogg_page_length(data, candidate):
            return candidate
        candidate = data.find(OGG_CAPTURE, candidate + 1)
    return None


def analyse_ogg(data: bytes) -> OggReport:
    report = OggReport()
    position = data.find(OGG_CAPTURE)
    if position == -1:
        report.leading_bytes = len(data)
        return report
    report.leading_bytes = position
    while position < len(data):
        length = _ogg_page_length(data, position)
        if length == 0 and _later_valid_page(data, position) is None:
            break  # a page cut off by the end of the capture
        if not length:  # damaged, or cut short with more pages after it
            report.resyncs += 1
            next_page = data.find(OGG_CAPTURE, position + 1)
            if next_page == -1:
                break
            position = next_page
            continue
        report.pages += 1
        report.serials.add(int.from_bytes(data[position + 14 : position + 18], "little"))
        if data[position + 5] & _OGG_BEGINNING_OF_STREAM:
            body = data[position + OGG_HEADER_BYTES + data[position + 26] :]
            for signature, codec in _CODEC_SIGNATURES.items():
                if body.startswith(signature):
                    report.codecs.add(codec)
        position += length
    report.trailing_bytes = len(data) - position
    return report


def strip_icy(data: bytes, metaint: int) -> tuple[bytes, list[str]]:
    """The audio of an ICY stream, read strictly: a block that is not a title is a
    listener out of step."""
    if metaint <= 0:
        return data, ["no icy-metaint"]
    audio = bytearray()
    position = 0
    while position + metaint < len(data):
        audio += data[position : position + metaint]
        length = data[position + metaint] * 16
        block = data[position + metaint + 1 : position + metaint + 1 + length]
        if length and not block.startswith(b"StreamTitle="):
            return bytes(audio), [f"an ICY block out of step at byte {position + metaint}"]
        position += metaint + 1 + length
    audio += data[position:]
    return bytes(audio), []
