"""The ID3 tag that starts every packed-audio segment. Pure.

RFC 8216 section 3.4: each segment of packed audio (ADTS AAC, MPEG audio) starts with an
ID3 PRIV frame owned by "com.apple.streaming.transportStreamTimestamp" holding the
33-bit MPEG-2 timestamp (90 kHz) of the segment's first sample, as 8 octets, big-endian.
Hand-written: the tag is a fixed layout of 10 bytes of header and one frame; Debian's
ID3 library (python3-mutagen) would build it through a file object, for one more
dependency and about a megabyte on every node.
"""

from __future__ import annotations

TIMESTAMP_OWNER = b"com.apple.streaming.transportStreamTimestamp\x00"
TIMESTAMP_HZ = 90_000
TIMESTAMP_MODULUS = 1 << 33  # MPEG-2 timestamps wrap every 26.5 hours


def _syncsafe(size: int) -> bytes:
    """ID3v2.4 sizes: 7 bits per byte, the top bit always 0."""
    return bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))


def timestamp_tag(seconds: float) -> bytes:
    """The tag for a segment whose first sample plays at `seconds` of the stream clock."""
    ticks = round(seconds * TIMESTAMP_HZ) % TIMESTAMP_MODULUS
    payload = TIMESTAMP_OWNER + ticks.to_bytes(8, "big")
    frame = b"PRIV" + _syncsafe(len(payload)) + b"\x00\x00" + payload
    return b"ID3\x04\x00\x00" + _syncsafe(len(frame)) + frame


def read_timestamp(segment: bytes) -> float | None:
    """The timestamp of a segment's tag, in seconds (within one 2**33 wrap), or None if it
    does not start with one. For tests and checks: what a player reads."""
    if segment[:3] != b"ID3" or len(segment) < 10:
        return None
    owner_at = segment.find(TIMESTAMP_OWNER, 10)
    if owner_at < 0:
        return None
    start = owner_at + len(TIMESTAMP_OWNER)
    return int.from_bytes(segment[start : start + 8], "big") / TIMESTAMP_HZ


def tag_length(segment: bytes) -> int:
    """How many bytes the ID3 tag at the start of `segment` takes (0 if none)."""
    if segment[:3] != b"ID3" or len(segment) < 10:
        return 0
    size = 0
    for byte in segment[6:10]:
        size = (size << 7) | (byte & 0x7F)
    return 10 + size
