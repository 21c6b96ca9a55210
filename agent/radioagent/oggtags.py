"""The title in an Ogg chain's comment header (Vorbis I, section 5; Opus, RFC 7845 section
5.2), read from a studio's stream and written into holding audio. Pure.

Hand-written: the studio pipe and the holding loop already hold the header pages, and the
comment format is a length-prefixed list; the libraries that read it (mutagen) read whole
files and look for the stream's last page, which a live stream does not have.
"""

from __future__ import annotations

import struct

from radioagent.holding.ogg import read_packets, split_pages
from radioagent.nowplaying import artist_and_title

VORBIS_COMMENT_MAGIC = b"\x03vorbis"
OPUS_COMMENT_MAGIC = b"OpusTags"
VORBIS_FRAMING_BIT = b"\x01"
COMMENT_PACKET_INDEX = 1  # after the identification header, in both codecs
_LENGTH = struct.Struct("<I")


class _Reader:
    """Length-prefixed strings and counts from a packet; ValueError past its end."""

    def __init__(self, packet: bytes, position: int) -> None:
        self.packet = packet
        self.position = position

    def number(self) -> int:
        if self.position + _LENGTH.size > len(self.packet):
            raise ValueError("comment header cut short")
        (value,) = _LENGTH.unpack_from(self.packet, self.position)
        self.position += _LENGTH.size
        return int(value)

    def string(self) -> bytes:
        length = self.number()
        if self.position + length > len(self.packet):
            raise ValueError("comment header cut short")
        self.position += length
        return self.packet[self.position - length : self.position]


def comment_fields(packet: bytes) -> tuple[bytes, list[str]] | None:
    """The vendor string and the `KEY=value` fields of a comment header packet, or None
    if `packet` is not a whole one."""
    magic = next(
        (m for m in (VORBIS_COMMENT_MAGIC, OPUS_COMMENT_MAGIC) if packet.startswith(m)), None
    )
    if magic is None:
        return None
    reader = _Reader(packet, len(magic))
    try:
        vendor = reader.string()
        count = reader.number()
        fields = [reader.string().decode("utf-8", "replace") for _ in range(count)]
    except ValueError:
        return None
    return vendor, fields


def display_title(fields: list[str]) -> str:
    """As Icecast shows an Ogg title: `ARTIST - TITLE`, or whichever of the two is there
    (the first of each); empty when neither is."""
    values: dict[str, str] = {}
    for field in fields:
        key, separator, value = field.partition("=")
        if separator and key.upper() in ("ARTIST", "TITLE"):
            values.setdefault(key.upper(), value)
    return artist_and_title(values.get("ARTIST", ""), values.get("TITLE", ""))


def chain_title(header_pages: bytes) -> str | None:
    """The title a chain's header pages carry, "" if its comments name none; None if they
    hold no whole comment header (another codec, or pages cut short)."""
    try:
        read = read_packets(split_pages(header_pages))
    except ValueError:
        return None
    if read is None or len(read[0]) <= COMMENT_PACKET_INDEX:
        return None
    fields = comment_fields(read[0][COMMENT_PACKET_INDEX])
    return None if fields is None else display_title(fields[1])


def with_title_comment(packet: bytes, title: str) -> bytes | None:
    """The comment header `packet` with `title` as its only field (none for ""), the
    vendor string kept; None if `packet` is not a comment header."""
    fields = comment_fields(packet)
    if fields is None:
        return None
    vorbis = packet.startswith(VORBIS_COMMENT_MAGIC)
    strings = [fields[0]] + ([f"TITLE={title}".encode()] if title else [])
    body = bytearray(VORBIS_COMMENT_MAGIC if vorbis else OPUS_COMMENT_MAGIC)
    body += _LENGTH.pack(len(strings[0])) + strings[0]
    body += _LENGTH.pack(len(strings) - 1)
    for string in strings[1:]:
        body += _LENGTH.pack(len(string)) + string
    if vorbis:
        body += VORBIS_FRAMING_BIT
    return bytes(body)
