"""Holding silence re-paged into short Ogg pages, checked against the encoder's own
granule positions (synthetic streams shaped as Liquidsoap writes them)."""

from __future__ import annotations

import itertools

from radioagent.holding.ogg import build_page, read_packets, split_pages
from radioagent.holding.repage import repaged
from radioagent.oggtags import chain_title

SERIAL = 1234


def stream(header_packets: list[bytes], audio_pages: list[tuple[int, list[bytes]]]) -> bytes:
    """Headers, one page each, then audio pages (granule, packets), the last one EOS."""
    pages = [
        build_page(0x02 if index == 0 else 0, 0, SERIAL, index, [packet])
        for index, packet in enumerate(header_packets)
    ]
    for number, (granule, packets) in enumerate(audio_pages):
        flags = 0x04 if number == len(audio_pages) - 1 else 0
        pages.append(build_page(flags, granule, SERIAL, len(pages), packets))
    return b"".join(pages)


OPUS_HEAD = b"OpusHead" + bytes([1, 2]) + (312).to_bytes(2, "little") + bytes(7)
OPUS_TAGS = b"OpusTags" + bytes(8)
OPUS_20MS = bytes([19 << 3, 0xAA, 0xBB])  # CELT, 20 ms (960 samples), one frame


def test_opus_silence_is_repaged_into_quarter_seconds() -> None:
    audio = [OPUS_20MS] * 500 + [b""]  # 10 s, then the empty packet encoders end with
    original = stream([OPUS_HEAD, OPUS_TAGS], [(255 * 960, audio[:255]), (479_000, audio[255:])])
    result = repaged(original, "opus", 48000)
    pages = split_pages(result)
    granules = [int.from_bytes(page[6:14], "little", signed=True) for page in pages]
    assert granules[:2] == [0, 0]
    steps = [later - earlier for earlier, later in itertools.pairwise(granules[2:])]
    assert max([granules[2], *steps]) <= 12000  # 0.25 s at 48 kHz
    assert granules[-1] == 500 * 960  # where the audio ends: silence needs no trimming
    assert pages[-1][5] & 0x04
    assert read_packets(pages)[0][2:] == audio[:-1]  # type: ignore[index]  # not the empty one
    assert [int.from_bytes(page[18:22], "little") for page in pages] == list(range(len(pages)))


def test_a_stream_whose_granules_disagree_is_left_as_it_is() -> None:
    audio = [OPUS_20MS] * 300
    original = stream([OPUS_HEAD, OPUS_TAGS], [(100 * 960, audio[:200]), (300 * 960, audio[200:])])
    assert repaged(original, "opus", 48000) == original


def vorbis_identification(short: int, long: int) -> bytes:
    sizes = (short.bit_length() - 1) | (long.bit_length() - 1) << 4
    return (
        b"\x01vorbis"
        + bytes(4)
        + bytes([2])
        + (44100).to_bytes(4, "little")
        + bytes(12)
        + bytes([sizes, 1])
    )


def test_vorbis_packet_lengths_come_from_their_block_sizes() -> None:
    short, long = 256, 2048
    modes = [1, 1, 0, 0, 1] * 40  # mode bit: 0 short, 1 long
    audio = [bytes([mode << 1, 0x55]) for mode in modes]
    ends = [0]
    for previous, current in itertools.pairwise([None, *modes]):
        block = long if current else short
        ends.append(
            ends[-1] + (0 if previous is None else (long if previous else short) // 4 + block // 4)
        )
    headers = [vorbis_identification(short, long), b"\x03vorbis", b"\x05vorbis"]
    original = stream(headers, [(ends[120], audio[:120]), (ends[-1], audio[120:])])
    result = repaged(original, "vorbis", 44100)
    pages = split_pages(result)
    assert len(pages) > 5
    assert read_packets(pages)[0][3:] == audio  # type: ignore[index]
    # A wrong block size somewhere: the encoder's granules disagree, nothing is changed.
    wrong = stream(headers, [(ends[120] + 1, audio[:120]), (ends[-1], audio[120:])])
    assert repaged(wrong, "vorbis", 44100) == wrong


def test_the_holding_title_becomes_the_only_comment_and_pages_stay_in_sequence() -> None:
    audio = [OPUS_20MS] * 100
    original = stream([OPUS_HEAD, OPUS_TAGS], [(100 * 960, audio)])
    result = repaged(original, "opus", 48000, title="Back soon")
    pages = split_pages(result)
    assert chain_title(b"".join(pages[:2])) == "Back soon"
    assert read_packets(pages)[0][2:] == audio  # type: ignore[index]
    assert [int.from_bytes(page[18:22], "little") for page in pages] == list(range(len(pages)))
    assert chain_title(b"".join(split_pages(repaged(original, "opus", 48000, title=""))[:2])) == ""
    # Vorbis: comment and setup header on pages of their own, the setup header unchanged.
    short, long = 256, 2048
    vorbis_audio = [bytes([2, 0x55])] * 50
    ends = 1024 * 49 // 2 + 512
    setup = b"\x05vorbis" + bytes(4000)
    vorbis = stream(
        [vorbis_identification(short, long), b"\x03vorbis" + bytes(8) + b"\x01", setup],
        [(ends, vorbis_audio)],
    )
    titled = split_pages(repaged(vorbis, "vorbis", 44100, title="Back soon"))
    assert chain_title(b"".join(titled[:3])) == "Back soon"
    assert read_packets(titled)[0][2] == setup  # type: ignore[index]
