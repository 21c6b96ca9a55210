"""The stream validators: they must accept real frame chains and catch broken ones."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from radioagent.holding.ogg import ogg_crc
from tests.harness.audio import analyse_mp3, analyse_ogg, parse_mp3_header

# MPEG-1 Layer III, 128 kbps, 44.1 kHz, no padding, joint stereo: a 417-byte frame.
MP3_HEADER_128K = bytes([0xFF, 0xFB, 0x90, 0x44])
MP3_HEADER_128K_MONO = bytes([0xFF, 0xFB, 0x90, 0xC4])


def mp3_frame(header: bytes = MP3_HEADER_128K, fill: int = 0x55) -> bytes:
    frame = parse_mp3_header(header)
    assert frame is not None
    return header + bytes([fill]) * (frame.length - len(header))


def ogg_page(body: bytes, *, serial: int = 1, sequence: int = 0, flags: int = 0) -> bytes:
    segments = [255] * (len(body) // 255) + [len(body) % 255]
    header = bytearray(
        b"OggS"
        + bytes([0, flags])
        + (0).to_bytes(8, "little")
        + serial.to_bytes(4, "little")
        + sequence.to_bytes(4, "little")
        + b"\0\0\0\0"
        + bytes([len(segments)])
        + bytes(segments)
    )
    page = bytes(header) + body
    crc = ogg_crc(page)
    return page[:22] + crc.to_bytes(4, "little") + page[26:]


def test_mp3_header_gives_frame_length_and_format() -> None:
    frame = parse_mp3_header(MP3_HEADER_128K)
    assert frame is not None
    assert (frame.version, frame.layer, frame.bitrate_kbps) == ("MPEG-1", 3, 128)
    assert (frame.samplerate, frame.channels, frame.length) == (44100, 2, 417)


def test_mp3_header_with_padding_is_one_byte_longer() -> None:
    padded = parse_mp3_header(bytes([0xFF, 0xFB, 0x92, 0x44]))
    assert padded is not None
    assert padded.length == 418


def test_mp3_header_rejects_reserved_and_free_format_values() -> None:
    assert parse_mp3_header(bytes([0xFF, 0xFB, 0xF0, 0x44])) is None  # bitrate index 15
    assert parse_mp3_header(bytes([0xFF, 0xFB, 0x00, 0x44])) is None  # free format
    assert parse_mp3_header(bytes([0xFF, 0xFB, 0x9C, 0x44])) is None  # reserved samplerate
    assert parse_mp3_header(bytes([0xFF, 0xE9, 0x90, 0x44])) is None  # reserved version
    assert parse_mp3_header(bytes([0x00, 0xFB, 0x90, 0x44])) is None  # no sync


def test_mp3_chain_joined_mid_frame_is_clean() -> None:
    stream = mp3_frame() * 10
    report = analyse_mp3(stream[100:-50])
    assert report.leading_bytes == 317
    assert report.frames == 8
    assert report.resyncs == 0
    assert report.problems(min_frames=8) == []
    assert report.samplerates == {44100}
    assert report.channels == {2}


def test_mp3_junk_inside_the_chain_counts_as_a_resync() -> None:
    stream = mp3_frame() * 5 + b"\x00" * 100 + mp3_frame() * 5
    report = analyse_mp3(stream)
    assert report.resyncs == 1
    assert report.frames == 10
    assert "broke 1 times" in report.problems(min_frames=1)[0]


def test_mp3_a_lone_sync_pattern_in_noise_is_not_a_frame() -> None:
    report = analyse_mp3(b"\x00" * 50 + MP3_HEADER_128K + b"\x00" * 2000)
    assert report.frames == 0
    assert report.problems(min_frames=1)


def test_mp3_channel_count_is_reported() -> None:
    report = analyse_mp3(mp3_frame(MP3_HEADER_128K_MONO) * 4)
    assert report.channels == {1}


def test_mp3_duration_sums_frame_samples() -> None:
    report = analyse_mp3(mp3_frame() * 38)
    assert abs(report.seconds - 38 * 1152 / 44100) < 1e-9


@given(st.binary(max_size=4096))
def test_mp3_analysis_never_fails_on_arbitrary_bytes(data: bytes) -> None:
    report = analyse_mp3(data)
    assert report.leading_bytes + report.trailing_bytes <= len(data)


def test_ogg_crc_matches_the_reference_value() -> None:
    # Ogg's CRC is CRC-32/POSIX without its final xor: the catalogue's check value for
    # "123456789" is 0x765E7680, so ours must be its complement.
    assert ogg_crc(b"123456789") == 0x765E7680 ^ 0xFFFFFFFF


def test_ogg_pages_are_counted_and_the_codec_named() -> None:
    stream = (
        ogg_page(b"\x01vorbis" + b"\0" * 22, flags=0x02)
        + ogg_page(b"x" * 600, sequence=1)
        + ogg_page(b"y" * 300, sequence=2)
    )
    report = analyse_ogg(stream)
    assert report.pages == 3
    assert report.codecs == {"vorbis"}
    assert report.serials == {1}
    assert report.problems(min_pages=3) == []


def test_ogg_page_with_a_flipped_byte_fails_its_crc() -> None:
    good = ogg_page(b"x" * 600)
    damaged = bytearray(good)
    damaged[100] ^= 0x01
    report = analyse_ogg(good + bytes(damaged) + good)
    assert report.pages == 2
    assert report.resyncs == 1


def test_ogg_fragment_may_start_and_end_mid_page() -> None:
    stream = ogg_page(b"a" * 500) * 4
    report = analyse_ogg(stream[40:-40])
    assert report.pages == 2
    assert report.resyncs == 0
    assert report.trailing_bytes > 0


def test_ogg_page_cut_short_before_another_page_counts_as_a_resync() -> None:
    page = ogg_page(b"z" * 3000)
    stream = page * 3 + page[:1500] + page * 2
    report = analyse_ogg(stream)
    assert report.pages == 5
    assert report.resyncs == 1
    assert report.trailing_bytes == 0


@given(st.binary(max_size=4096))
def test_ogg_analysis_never_fails_and_finds_no_page_in_random_bytes(data: bytes) -> None:
    report = analyse_ogg(b"OggS" + data)
    # A random page passing Ogg's CRC-32 has odds of about 1 in 4 billion.
    assert report.pages == 0
