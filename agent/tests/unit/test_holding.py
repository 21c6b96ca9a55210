"""Holding audio built by the agent: silent MP3 frames, Ogg chains, ADTS frames. Pure."""

from __future__ import annotations

import pytest

from radioagent.holding.ogg import ogg_crc, split_pages, with_serial
from radioagent.holding.silence import silent_mp3
from radioagent.holding.stream import adts_loop, encoded_loop, mp3_loop, ogg_loop
from radioagent.model import AudioFormat
from tests.harness.audio import analyse_mp3, analyse_ogg


@pytest.mark.parametrize(
    "audio",
    [
        AudioFormat("mp3", 128, 44100, 2),
        AudioFormat("mp3", 320, 48000, 2),
        AudioFormat("mp3", 64, 22050, 1),
        AudioFormat("mp3", 32, 8000, 1),
    ],
)
def test_silent_mp3_frames_form_a_clean_stream_in_the_exact_format(audio: AudioFormat) -> None:
    report = analyse_mp3(silent_mp3(audio).frame * 50)
    assert report.problems(min_frames=50) == []
    assert report.samplerates == {audio.samplerate}
    assert report.channels == {audio.channels}
    assert report.bitrates_kbps == {audio.bitrate_kbps}


def test_silent_mp3_takes_the_nearest_allowed_bitrate_below() -> None:
    # 192 kbps does not exist for MPEG-2 (22.05 kHz): 160 is the best below it.
    assert silent_mp3(AudioFormat("mp3", 192, 22050, 2)).bitrate_kbps == 160


def test_mp3_loop_lasts_about_ten_seconds_with_evenly_spaced_frames() -> None:
    loop = mp3_loop(AudioFormat())
    offsets = [offset for offset, _ in loop.units]
    assert 9.9 < loop.seconds < 10.1
    assert offsets == sorted(offsets)
    assert loop.units_for_round(1, 5)[0][0] == pytest.approx(loop.seconds)


def page(body: bytes, *, serial: int, granule: int, flags: int = 0) -> bytes:
    segments = [255] * (len(body) // 255) + [len(body) % 255]
    header = (
        b"OggS"
        + bytes([0, flags])
        + granule.to_bytes(8, "little")
        + serial.to_bytes(4, "little")
        + (0).to_bytes(4, "little")
        + b"\0\0\0\0"
        + bytes([len(segments)])
        + bytes(segments)
    )
    raw = header + body
    return raw[:22] + ogg_crc(raw).to_bytes(4, "little") + raw[26:]


def vorbis_like_stream(serial: int = 1) -> bytes:
    return (
        page(b"\x01vorbis" + b"\0" * 22, serial=serial, granule=0, flags=2)
        + page(b"setup" * 50, serial=serial, granule=0)
        + page(b"a" * 300, serial=serial, granule=44100 * 4)
        + page(b"b" * 300, serial=serial, granule=44100 * 10, flags=4)
    )


def test_split_pages_refuses_what_is_not_a_whole_ogg_stream() -> None:
    stream = vorbis_like_stream()
    assert len(split_pages(stream)) == 4
    with pytest.raises(ValueError, match="no Ogg page"):
        split_pages(b"junk" + stream)
    with pytest.raises(ValueError, match="cut short"):
        split_pages(stream[:-10])


def test_a_new_serial_keeps_the_page_valid() -> None:
    original = split_pages(vorbis_like_stream(serial=1))[2]
    rewritten = with_serial(original, 0xDEADBEEF)
    report = analyse_ogg(rewritten)
    assert (report.pages, report.resyncs, report.serials) == (1, 0, {0xDEADBEEF})


def test_ogg_pages_are_due_when_the_audio_before_them_has_played() -> None:
    loop = ogg_loop(vorbis_like_stream(), granule_rate=44100)
    assert [round(offset, 3) for offset, _ in loop.units] == [0.0, 0.0, 0.0, 4.0]
    assert loop.seconds == pytest.approx(10.0)


def test_each_round_of_an_ogg_loop_is_a_new_valid_chain_link() -> None:
    loop = ogg_loop(vorbis_like_stream(), granule_rate=44100)
    rounds = [loop.units_for_round(number, serial_seed=77) for number in range(3)]
    chain = b"".join(unit for units in rounds for _, unit in units)
    report = analyse_ogg(chain)
    assert (report.pages, report.resyncs) == (12, 0)
    assert len(report.serials) == 3
    assert rounds[2][0][0] == pytest.approx(2 * loop.seconds)


def adts_frame(payload: bytes) -> bytes:
    length = 7 + len(payload)
    return (
        bytes(
            [
                0xFF,
                0xF1,
                0x50,
                0x80 | (length >> 11),
                (length >> 3) & 0xFF,
                ((length & 0x7) << 5) | 0x1F,
                0xFC,
            ]
        )
        + payload
    )


def test_adts_frames_are_paced_by_1024_samples() -> None:
    loop = adts_loop(adts_frame(b"x" * 10) * 3 + adts_frame(b"y" * 20), samplerate=32000)
    assert [len(unit) for _, unit in loop.units] == [17, 17, 17, 27]
    assert loop.units[1][0] == pytest.approx(1024 / 32000)
    assert loop.seconds == pytest.approx(4 * 1024 / 32000)
    with pytest.raises(ValueError, match="no ADTS frame"):
        adts_loop(b"\x00" * 20, samplerate=32000)


def test_opus_granules_count_at_48_khz_whatever_the_samplerate() -> None:
    loop = encoded_loop(AudioFormat("opus", 64, 24000, 2), vorbis_like_stream())
    assert loop.units[3][0] == pytest.approx(44100 * 4 / 48000)
