"""Ogg pages: split a stream into pages, give a page a new serial number, read the packets
of pages and build a page of packets. Pure.

A holding file looped as is would repeat its logical stream with the same serial, which
Ogg forbids within one physical stream; each loop gets a fresh serial (and so valid CRCs),
making the loop a proper chain, as Icecast itself produces on metadata changes.
"""

from __future__ import annotations

from dataclasses import dataclass

OGG_CAPTURE = b"OggS"
OGG_HEADER_BYTES = 27
SERIAL_OFFSET = 14
CRC_OFFSET = 22
MAX_SEGMENTS = 255  # lacing values per page, and the value that continues a packet


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def ogg_crc(page: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, no final xor): not zlib's."""
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def split_pages(data: bytes) -> list[bytes]:
    """The pages of a complete Ogg stream; ValueError if it is not one."""
    pages = []
    position = 0
    while position < len(data):
        if data[position : position + 4] != OGG_CAPTURE or position + OGG_HEADER_BYTES > len(data):
            raise ValueError(f"no Ogg page at byte {position}")
        segments = data[position + 26]
        body = sum(data[position + OGG_HEADER_BYTES : position + OGG_HEADER_BYTES + segments])
        length = OGG_HEADER_BYTES + segments + body
        if position + length > len(data):
            raise ValueError(f"Ogg page at byte {position} is cut short")
        pages.append(data[position : position + length])
        position += length
    return pages


def with_serial(page: bytes, serial: int) -> bytes:
    """The page with another stream serial number and its CRC recomputed."""
    rewritten = bytearray(page)
    rewritten[SERIAL_OFFSET : SERIAL_OFFSET + 4] = serial.to_bytes(4, "little")
    rewritten[CRC_OFFSET : CRC_OFFSET + 4] = b"\0\0\0\0"
    rewritten[CRC_OFFSET : CRC_OFFSET + 4] = ogg_crc(bytes(rewritten)).to_bytes(4, "little")
    return bytes(rewritten)


@dataclass(frozen=True)
class PageMark:
    granule: int
    flags: int
    packets_ended: int  # packets completed by the end of this page, counted from the first


def read_packets(pages: list[bytes]) -> tuple[list[bytes], list[PageMark]] | None:
    """Every packet, and for each page how many packets had ended by its end; None if a
    packet runs off the last page."""
    packets: list[bytes] = []
    marks: list[PageMark] = []
    current = bytearray()
    for page in pages:
        segments = page[26]
        lacing = page[OGG_HEADER_BYTES : OGG_HEADER_BYTES + segments]
        position = OGG_HEADER_BYTES + segments
        for value in lacing:
            current += page[position : position + value]
            position += value
            if value < MAX_SEGMENTS:
                packets.append(bytes(current))
                current = bytearray()
        granule = int.from_bytes(page[6:14], "little", signed=True)
        marks.append(PageMark(granule, page[5], len(packets)))
    return None if current else (packets, marks)


def build_page(flags: int, granule: int, serial: int, sequence: int, packets: list[bytes]) -> bytes:
    lacing = bytearray()
    for packet in packets:
        lacing += bytes([MAX_SEGMENTS]) * (len(packet) // MAX_SEGMENTS)
        lacing.append(len(packet) % MAX_SEGMENTS)
    header = (
        OGG_CAPTURE
        + bytes([0, flags])
        + granule.to_bytes(8, "little", signed=True)
        + serial.to_bytes(4, "little")
        + sequence.to_bytes(4, "little")
        + b"\0\0\0\0"
        + bytes([len(lacing)])
    )
    page = bytearray(header + lacing + b"".join(packets))
    page[CRC_OFFSET : CRC_OFFSET + 4] = ogg_crc(bytes(page)).to_bytes(4, "little")
    return bytes(page)
