"""Titles in Ogg comment headers, read and written (synthetic packets laid out as the Vorbis
I spec and RFC 7845 say, and the header pages of a real Liquidsoap stream in the
integration tests)."""

from __future__ import annotations

import struct

import pytest

from radioagent.holding.ogg import build_page
from radioagent.oggtags import (
    chain_title,
    comment_fields,
    display_title,
    with_title_comment,
)

IDENTIFICATION = b"OpusHead" + bytes([1, 2]) + (312).to_bytes(2, "little") + bytes(7)


def comments(magic: bytes, vendor: bytes, fields: list[bytes], framing: bytes = b"") -> bytes:
    packet = magic + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(fields))
    for field in fields:
        packet += struct.pack("<I", len(field)) + field
    return packet + framing


def headers(comment: bytes) -> bytes:
    return build_page(0x02, 0, 7, 0, [IDENTIFICATION]) + build_page(0, 0, 7, 1, [comment])


@pytest.mark.parametrize(
    ("fields", "title"),
    [
        ([b"TITLE=Song"], "Song"),
        ([b"artist=Band", b"title=Song"], "Band - Song"),
        ([b"ARTIST=Band"], "Band"),
        ([b"TITLE=First", b"TITLE=Second"], "First"),
        ([b"ENCODER=Lavf", b"NOEQUALS"], ""),
        ([b"TITLE=caf\xc3\xa9 \xe2\x99\xab"], "café ♫"),
    ],
)
def test_the_title_is_what_icecast_shows(fields: list[bytes], title: str) -> None:
    assert chain_title(headers(comments(b"OpusTags", b"enc", fields))) == title
    vorbis = comments(b"\x03vorbis", b"enc", fields, b"\x01")
    assert display_title(comment_fields(vorbis)[1]) == title  # type: ignore[index]


@pytest.mark.parametrize(
    "packet",
    [
        b"OpusTags",  # no vendor length
        b"OpusTags" + struct.pack("<I", 50) + b"short",  # vendor cut short
        comments(b"OpusTags", b"v", [b"TITLE=x"])[:-2],  # a field cut short
        b"OpusTags" + struct.pack("<I", 0) + struct.pack("<I", 2**32 - 1),  # absurd count
        b"\x01vorbis" + bytes(30),  # an identification header, not comments
    ],
)
def test_a_damaged_or_other_packet_has_no_comments(packet: bytes) -> None:
    assert comment_fields(packet) is None
    assert chain_title(headers(packet)) is None


def test_pages_cut_short_or_not_ogg_have_no_title() -> None:
    whole = headers(comments(b"OpusTags", b"v", [b"TITLE=x"]))
    assert chain_title(whole[:-3]) is None
    assert chain_title(b"not ogg at all") is None
    assert chain_title(build_page(0x02, 0, 7, 0, [IDENTIFICATION])) is None


@pytest.mark.parametrize(("magic", "framing"), [(b"OpusTags", b""), (b"\x03vorbis", b"\x01")])
def test_a_written_title_replaces_the_fields_and_keeps_the_vendor(
    magic: bytes, framing: bytes
) -> None:
    original = comments(magic, b"Liquidsoap", [b"ENCODER=x", b"TITLE=old"], framing)
    written = with_title_comment(original, "Back soon ♫")
    assert written == comments(magic, b"Liquidsoap", ["TITLE=Back soon ♫".encode()], framing)
    assert with_title_comment(original, "") == comments(magic, b"Liquidsoap", [], framing)
    assert with_title_comment(b"OpusHead", "x") is None
