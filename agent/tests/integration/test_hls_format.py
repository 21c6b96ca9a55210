"""The HLS segments and playlists the segmenter makes, read by ffmpeg: real MP3 and AAC
from ffmpeg's encoders, cut as a node receiving them live would cut them, then decoded
from the playlist with ffmpeg's HLS demuxer, which reads each segment's ID3 timestamp."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from radioagent.frontdoor.framing import WholeFrames
from radioagent.frontdoor.syncpoints import adts_frame_length, mp3_frame_length
from radioagent.hls.id3 import TIMESTAMP_MODULUS, read_timestamp
from radioagent.hls.playlists import media_playlist
from radioagent.hls.segmenter import Segmenter
from tests.harness.media import AudioSample, make_aac, make_mp3

pytestmark = pytest.mark.integration
TARGET = 4
SECONDS = 30.0
CHUNK = 4096  # bytes per read, as the fan-out gets them from Icecast


def cut_live(sample: AudioSample, codec: str, start: float) -> Segmenter:
    """The file's bytes fed as they would arrive live: each chunk at the time its audio
    ends (the file's duration spread evenly over its bytes)."""
    frames = WholeFrames(mp3_frame_length if codec == "mp3" else adts_frame_length)
    segmenter = Segmenter(codec, TARGET, keep=100)
    data = sample.data
    for offset in range(0, len(data), CHUNK):
        chunk = data[offset : offset + CHUNK]
        now = start + (offset + len(chunk)) / len(data) * sample.seconds
        whole = frames.feed(chunk)
        if whole:
            segmenter.feed(whole, now)
    return segmenter


def write_playlist(segmenter: Segmenter, directory: Path, suffix: str) -> Path:
    for segment in segmenter.segments:
        (directory / f"{segment.sequence}.{suffix}").write_bytes(segment.data)
    shown, before = segmenter.window(len(segmenter.segments))
    playlist = directory / "index.m3u8"
    # Ended, so ffmpeg reads it through once rather than waiting for more as live.
    playlist.write_text(
        media_playlist(shown, TARGET, before, "{sequence}." + suffix) + "#EXT-X-ENDLIST\n"
    )
    return playlist


def decode(playlist: Path) -> tuple[float, str]:
    """Seconds of audio ffmpeg decodes from the playlist, and its error output. Raw PCM
    out: a muxer with timestamps would add its own complaints about ffmpeg's re-timing."""
    result = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-hide_banner", "-v", "error"),
            *("-allowed_extensions", "ALL", "-i", str(playlist)),
            *("-f", "s16le", "-ac", "2", "-ar", "44100", "pipe:1"),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    errors = result.stderr.decode(errors="replace").strip()
    if result.returncode != 0:
        errors += f" (exit {result.returncode})"
    return len(result.stdout) / (44100 * 2 * 2), errors


def packet_times(playlist: Path) -> list[float]:
    result = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-allowed_extensions", "ALL", "-select_streams", "a"),
            *("-show_entries", "packet=pts_time", "-of", "json", str(playlist)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [float(packet["pts_time"]) for packet in json.loads(result.stdout)["packets"]]


@pytest.mark.parametrize(
    ("codec", "make", "suffix"),
    [("mp3", make_mp3, "mp3"), ("aac", make_aac, "aac")],
)
def test_ffmpeg_decodes_every_segment_of_the_playlist_in_full(
    tmp_path: Path, codec: str, make: Callable[..., AudioSample], suffix: str
) -> None:
    sample = make(tmp_path / f"source.{suffix}", seconds=SECONDS)
    segmenter = cut_live(sample, codec, start=1_700_000_000.0)
    segments = list(segmenter.segments)
    assert len(segments) >= 5
    playlist = write_playlist(segmenter, tmp_path, suffix)
    seconds, errors = decode(playlist)
    if codec == "mp3":
        # ffmpeg's HLS demuxer reads the next segment's tag while its MP3 demuxer still
        # hands out frames of the one before (it reads ahead to check frame chains), so
        # it re-times a frame or two at some segment starts and then complains of its
        # own timestamps. The frames are all there (the length below); the tags are
        # checked after it.
        errors = "\n".join(
            line for line in errors.splitlines() if "non monotonically increasing dts" not in line
        )
    assert errors == ""
    listed = sum(segment.duration for segment in segments)
    # AAC decoders add no delay; an MP3 decoder's (529 samples, about 12 ms) is trimmed.
    assert seconds == pytest.approx(listed, abs=0.05)
    # Each segment's tag says where it starts: right where the one before it ends.
    for before, after in pairwise(segments):
        assert read_timestamp(after.data) == pytest.approx(
            (before.start + before.duration) % (TIMESTAMP_MODULUS / 90_000), abs=2 / 90_000
        )


def test_ffmpeg_lays_the_aac_segments_on_one_timeline_from_their_tags(tmp_path: Path) -> None:
    """ffmpeg's HLS demuxer times packed AAC by each segment's ID3 timestamp (its MP3
    demuxer re-times packets around segment starts by its own decoder-delay handling, so
    MP3 is checked by its tags above)."""
    sample = make_aac(tmp_path / "source.aac", seconds=SECONDS)
    segmenter = cut_live(sample, "aac", start=1_700_000_000.0)
    segments = list(segmenter.segments)
    times = packet_times(write_playlist(segmenter, tmp_path, "aac"))
    listed = sum(segment.duration for segment in segments)
    assert times[-1] - times[0] == pytest.approx(listed, abs=0.1)
    steps = [later - earlier for earlier, later in pairwise(times)]
    assert min(steps) > 0
    assert max(steps) < 0.05
