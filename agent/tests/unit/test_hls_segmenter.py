"""HLS segments on the shared clock, their timestamp tags and the playlists."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from radioagent.frontdoor.syncpoints import adts_frame_seconds, mp3_frame_seconds
from radioagent.hls.id3 import TIMESTAMP_MODULUS, read_timestamp, tag_length, timestamp_tag
from radioagent.hls.playlists import Variant, master_playlist, media_playlist
from radioagent.hls.segmenter import Segment, Segmenter, frames_of

MP3_HEADER = bytes((0xFF, 0xFB, 0x90, 0x00))  # MPEG-1 Layer III, 128 kbps, 44.1 kHz
MP3_FRAME = MP3_HEADER + bytes(417 - 4)
MP3_SECONDS = 1152 / 44100
TARGET = 4


def adts_frame(length: int = 371, rate_index: int = 4) -> bytes:
    """An AAC-LC stereo ADTS frame (no CRC) of `length` bytes at 44.1 kHz by default."""
    header = bytes(
        (
            0xFF,
            0xF1,
            (1 << 6) | (rate_index << 2),
            (2 << 6) | (length >> 11),
            (length >> 3) & 0xFF,
            ((length & 0x07) << 5) | 0x1F,
            0xFC,
        )
    )
    return header + bytes(length - 7)


def play(
    segmenter: Segmenter,
    start: float,
    seconds: float,
    *,
    delay: float = 0.0,
    speed: float = 1.0,
    frames_per_feed: int = 4,
) -> float:
    """Feed MP3 frames as a node receives a live stream: `frames_per_feed` frames at a
    time, arriving `delay` after they were made, the source's clock running at `speed`.
    Returns when the last feed arrived."""
    made = start
    now = start
    while made < start + seconds:
        chunk = MP3_FRAME * frames_per_feed
        made += frames_per_feed * MP3_SECONDS / speed
        now = made + delay
        segmenter.feed(chunk, now)
    return now


def consecutive(segments: list[Segment]) -> bool:
    return all(b.sequence == a.sequence + 1 for a, b in pairwise(segments))


def test_frame_durations_come_from_each_header() -> None:
    assert mp3_frame_seconds(MP3_HEADER) == pytest.approx(1152 / 44100)
    mpeg2 = bytes((0xFF, 0xF3, 0x80, 0x00))  # MPEG-2 Layer III, 64 kbps, 22.05 kHz
    assert mp3_frame_seconds(mpeg2) == pytest.approx(576 / 22050)
    assert adts_frame_seconds(adts_frame()) == pytest.approx(1024 / 44100)
    assert adts_frame_seconds(adts_frame(rate_index=3)) == pytest.approx(1024 / 48000)
    assert mp3_frame_seconds(b"\x00\x00\x00\x00") is None
    frames = frames_of(MP3_FRAME * 3 + MP3_FRAME[:100], "mp3")
    assert [len(frame) for frame, _ in frames] == [417, 417, 417]  # the cut one is left


def test_a_live_stream_is_cut_on_the_clock_into_whole_segments() -> None:
    segmenter = Segmenter("mp3", TARGET, keep=100)
    play(segmenter, 1_000_000.0, 60)
    segments = list(segmenter.segments)
    assert len(segments) >= 13
    assert consecutive(segments)
    for segment in segments[1:]:  # the first starts wherever the stream did
        assert segment.sequence == math.floor(segment.start / TARGET)
        assert segment.start - segment.sequence * TARGET < MP3_SECONDS
        assert TARGET - MP3_SECONDS < segment.duration < TARGET + MP3_SECONDS
        assert round(segment.duration) <= TARGET
        assert not segment.discontinuity
        wrap = TIMESTAMP_MODULUS / 90_000
        assert read_timestamp(segment.data) == pytest.approx(segment.start % wrap, abs=1e-4)
        audio = segment.data[tag_length(segment.data) :]
        assert len(audio) % len(MP3_FRAME) == 0
        assert audio[:4] == MP3_HEADER


def test_two_nodes_name_the_same_audio_the_same_way() -> None:
    """One node joined 9 s later and receives the stream 60 ms after the other: each
    segment number holds the same stretch of audio within those 60 ms."""
    first, late = Segmenter("mp3", TARGET, keep=100), Segmenter("mp3", TARGET, keep=100)
    start = 2_000_000.0
    play(first, start, 40)
    play(late, start + 9.0, 31, delay=0.06)
    by_number = {segment.sequence: segment for segment in first.segments}
    shared = [segment for segment in list(late.segments)[1:] if segment.sequence in by_number]
    assert len(shared) >= 5
    for segment in shared:
        other = by_number[segment.sequence]
        assert abs(segment.start - other.start) <= 0.06 + MP3_SECONDS
        assert abs(segment.duration - other.duration) <= 2 * MP3_SECONDS + 1e-9


def test_icecasts_burst_at_connection_is_laid_before_now() -> None:
    segmenter = Segmenter("mp3", TARGET, keep=100)
    now = 3_000_000.0
    burst_frames = 153  # 4 s of audio at once, as Icecast sends a new listener
    segmenter.feed(MP3_FRAME * burst_frames, now)
    play(segmenter, now, 20)
    segments = list(segmenter.segments)
    assert consecutive(segments)
    assert segments[0].start == pytest.approx(now - burst_frames * MP3_SECONDS)
    assert not any(segment.discontinuity for segment in segments)


def test_a_burst_repeating_what_was_cut_is_dropped_not_cut_twice() -> None:
    segmenter = Segmenter("mp3", TARGET, keep=100)
    now = play(segmenter, 4_000_000.0, 20)
    segmenter.reanchor()  # the upstream reconnected
    segmenter.feed(MP3_FRAME * 115, now + 0.1)  # 3 s again, at once
    play(segmenter, now + 0.1, 12)
    segments = list(segmenter.segments)
    assert consecutive(segments)
    assert segmenter.repeats_dropped > 100
    for before, after in pairwise(segments):
        assert after.start >= before.start + before.duration - MP3_SECONDS / 2
    # The same stream: no discontinuity (one node's own reconnection marks none, so that
    # every node numbers discontinuities alike).
    assert not any(segment.discontinuity for segment in segments)


def test_a_stall_longer_than_a_segment_starts_the_playlist_again() -> None:
    segmenter = Segmenter("mp3", TARGET, keep=100)
    now = play(segmenter, 5_000_000.0, 20)
    assert len(segmenter.segments) >= 4
    play(segmenter, now + 10.0, 12)  # ten seconds with nothing
    segments = list(segmenter.segments)
    assert consecutive(segments)
    assert segments[0].sequence > math.floor(now / TARGET) + 1
    # This node's own stall: its timestamps say where the audio goes on, unmarked.
    assert not segments[0].discontinuity
    assert segmenter.discontinuities_dropped == 0


def test_a_source_clock_off_by_a_thousandth_is_slewed_not_jumped() -> None:
    """Half an hour of a source 0.1 % fast (1.8 s ahead by the end unslewed): the timeline
    keeps within a fraction of a frame of the wall clock, with no discontinuity, by
    dropping the 1.8 s of surplus a frame at a time."""
    segmenter = Segmenter("mp3", TARGET, keep=1000)
    start = 6_000_000.0
    end = play(segmenter, start, 1800, speed=1.001)
    segments = list(segmenter.segments)
    assert consecutive(segments)
    assert not any(segment.discontinuity for segment in segments)
    surplus_frames = 1800 * 0.001 / MP3_SECONDS
    assert abs(segmenter.repeats_dropped - surplus_frames) <= 2
    assert abs(segmenter.behind) < MP3_SECONDS / 4
    # The last finished segment is the slot before the clock's, or the one before that
    # while the clock's first frame has not come yet.
    assert math.floor(end / TARGET) - segments[-1].sequence in (1, 2)
    for segment in segments[1:]:  # the first starts wherever the stream did
        assert segment.start - segment.sequence * TARGET < MP3_SECONDS + abs(segmenter.behind)


def test_the_window_counts_the_discontinuities_before_it() -> None:
    segmenter = Segmenter("mp3", TARGET, keep=6)
    now = play(segmenter, 7_000_000.0, 10)
    segmenter.mark_discontinuity_at(math.floor(now / TARGET) + 1)
    now = play(segmenter, now, 10)
    shown, before = segmenter.window(3)
    assert [segment.discontinuity for segment in shown].count(True) + before == 1
    play(segmenter, now, 40)  # the marked segment leaves the window, then the memory
    shown, before = segmenter.window(3)
    assert before == 1
    assert not any(segment.discontinuity for segment in shown)
    assert len(segmenter.segments) == 6


def test_only_packed_audio_codecs_are_cut() -> None:
    with pytest.raises(ValueError, match="mp3 and aac"):
        Segmenter("vorbis", TARGET, keep=6)


def test_the_timestamp_tag_is_id3v24_priv_with_33_bit_ticks() -> None:
    tag = timestamp_tag(12.5)
    assert tag[:5] == b"ID3\x04\x00"
    assert tag_length(tag + MP3_FRAME) == len(tag)
    assert b"PRIV" in tag
    assert read_timestamp(tag) == 12.5
    wrapped = timestamp_tag(TIMESTAMP_MODULUS / 90_000 + 1.0)
    assert read_timestamp(wrapped) == pytest.approx(1.0)
    assert read_timestamp(MP3_FRAME) is None


def test_a_media_playlist_lists_the_window_with_its_discontinuities() -> None:
    segments = [
        Segment(100, 400.0, 3.997, b"", discontinuity=False),
        Segment(101, 404.0, 4.0, b"", discontinuity=True),
    ]
    text = media_playlist(segments, 4, 2, "/hls/live.mp3/{sequence}.mp3")
    assert text == (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:100\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:2\n#EXTINF:3.997,\n/hls/live.mp3/100.mp3\n"
        "#EXT-X-DISCONTINUITY\n#EXTINF:4.000,\n/hls/live.mp3/101.mp3\n"
    )


def test_a_master_playlist_lists_each_variant_with_bandwidth_and_codecs() -> None:
    text = master_playlist(
        [
            Variant("/hls/low.aac/index.m3u8", "aac", 48),
            Variant("/hls/live.mp3/index.m3u8", "mp3", 128),
        ]
    )
    assert text.splitlines() == [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        '#EXT-X-STREAM-INF:BANDWIDTH=140800,CODECS="mp4a.40.34"',
        "/hls/live.mp3/index.m3u8",
        '#EXT-X-STREAM-INF:BANDWIDTH=52800,CODECS="mp4a.40.2"',
        "/hls/low.aac/index.m3u8",
    ]


def test_a_discontinuity_lands_on_the_segment_named_or_the_first_after_it() -> None:
    """Every node marks the same segment, whenever it heard of the change: a mark named
    ahead waits for its segment; one named for a segment cut already (a node that heard
    late) lands on the next; two on one segment make one."""
    segmenter = Segmenter("mp3", TARGET, keep=100)
    now = play(segmenter, 8_000_000.0, 10)
    ahead = math.floor(now / TARGET) + 2
    segmenter.mark_discontinuity_at(ahead)
    segmenter.mark_discontinuity_at(ahead)
    now = play(segmenter, now, 20)
    late = segmenter.segments[-1].sequence - 1
    segmenter.mark_discontinuity_at(late)
    play(segmenter, now, 10)
    marked = [segment.sequence for segment in segmenter.segments if segment.discontinuity]
    assert marked == [ahead, math.floor(now / TARGET) + 1]
    assert segmenter.discontinuity_number == 2
