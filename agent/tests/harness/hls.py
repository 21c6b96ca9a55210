"""HLS as a player reads it: playlists fetched over HTTP and checked against RFC 8216,
segments fetched and their ID3 timestamps read, ffmpeg reading a stream."""

from __future__ import annotations

import math
import re
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass

from radioagent.hls.id3 import read_timestamp

_TAG = re.compile(r"#(EXT[A-Z0-9-]*)(?::(.*))?")


class PlaylistProblem(AssertionError):
    """A media playlist that breaks a rule of RFC 8216."""


@dataclass(frozen=True)
class MediaPlaylist:
    version: int
    target_seconds: int
    media_sequence: int
    discontinuity_sequence: int
    segments: tuple[tuple[int, float, str, bool], ...]  # sequence, EXTINF, URI, discontinuity

    @property
    def sequences(self) -> list[int]:
        return [sequence for sequence, _, _, _ in self.segments]


def parse_media_playlist(text: str) -> MediaPlaylist:
    """The playlist, or PlaylistProblem naming the rule it breaks: #EXTM3U first, version
    3 or more for decimal durations, TARGETDURATION at least every rounded EXTINF, each
    EXTINF followed by its URI."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistProblem("does not start with #EXTM3U")
    tags: dict[str, str] = {}
    segments: list[tuple[int, float, str, bool]] = []
    duration: float | None = None
    discontinuity = False
    for line in lines[1:]:
        tag = _TAG.fullmatch(line)
        if tag is None:
            if line.startswith("#"):
                continue  # a comment
            if duration is None:
                raise PlaylistProblem(f"URI {line!r} without #EXTINF")
            sequence = int(tags.get("EXT-X-MEDIA-SEQUENCE", "0")) + len(segments)
            segments.append((sequence, duration, line, discontinuity))
            duration, discontinuity = None, False
        elif tag.group(1) == "EXTINF":
            duration = float((tag.group(2) or "").split(",")[0])
        elif tag.group(1) == "EXT-X-DISCONTINUITY":
            discontinuity = True
        else:
            tags[tag.group(1)] = tag.group(2) or ""
    target = int(tags["EXT-X-TARGETDURATION"])
    version = int(tags.get("EXT-X-VERSION", "1"))
    if any(round(extinf) > target for _, extinf, _, _ in segments):
        raise PlaylistProblem(f"an EXTINF rounds above EXT-X-TARGETDURATION {target}")
    if version < 3 and any(extinf != math.floor(extinf) for _, extinf, _, _ in segments):
        raise PlaylistProblem("decimal EXTINF durations need EXT-X-VERSION 3")
    return MediaPlaylist(
        version,
        target,
        int(tags.get("EXT-X-MEDIA-SEQUENCE", "0")),
        int(tags.get("EXT-X-DISCONTINUITY-SEQUENCE", "0")),
        tuple(segments),
    )


def fetch(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-case headers and body, an error status included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def segment_start(url: str) -> float:
    """The ID3 timestamp a player reads at the start of the segment at `url`."""
    _, _, data = fetch(url)
    start = read_timestamp(data)
    if start is None:
        raise PlaylistProblem(f"{url}: no ID3 timestamp at its start")
    return start


def ffmpeg_read(url: str, seconds: float, timeout: float) -> tuple[float, list[str]]:
    """Seconds of audio ffmpeg decodes from an HLS URL (up to `seconds`), and the lines it
    logged at error level. ffmpeg's MP3 demuxer re-times a frame or two around segment
    starts (it reads ahead past the next segment's tag) and then complains of its own
    timestamps: those lines are left out, every other one is kept."""
    result = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", url),
            *("-t", str(seconds), "-f", "s16le", "-ac", "2", "-ar", "44100", "pipe:1"),
        ],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    lines = [
        line
        for line in result.stderr.decode(errors="replace").splitlines()
        if "non monotonically increasing dts" not in line
    ]
    if result.returncode != 0:
        lines.append(f"ffmpeg exited {result.returncode}")
    return len(result.stdout) / (44100 * 2 * 2), lines
