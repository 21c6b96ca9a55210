"""Test audio made by a real encoder (ffmpeg), so sources send what real encoders send."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AudioSample:
    path: Path
    content_type: str
    seconds: float

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()

    @property
    def bytes_per_second(self) -> float:
        return self.path.stat().st_size / self.seconds


# Pink noise rather than a sine: every frame differs, so "the listener got the source's
# bytes" cannot pass by matching a repeated frame somewhere else in the stream.
_NOISE = "anoisesrc=duration={seconds}:color=pink:amplitude=0.2:sample_rate=44100:seed=7"


def _encode(path: Path, seconds: float, codec_args: list[str]) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            _NOISE.format(seconds=seconds),
            "-ac",
            "2",
            *codec_args,
            str(path),
        ],
        check=True,
        timeout=60,
    )


def make_mp3(path: Path, seconds: float = 20.0, bitrate_kbps: int = 128) -> AudioSample:
    # No ID3 tag and no Xing frame: a live encoder sends neither.
    _encode(
        path,
        seconds,
        [
            "-c:a",
            "libmp3lame",
            "-b:a",
            f"{bitrate_kbps}k",
            "-write_xing",
            "0",
            "-id3v2_version",
            "0",
            "-f",
            "mp3",
        ],
    )
    return AudioSample(path, "audio/mpeg", seconds)


def make_aac(path: Path, seconds: float = 20.0, bitrate_kbps: int = 96) -> AudioSample:
    """AAC-LC in ADTS frames, as a live AAC encoder sends it (ffmpeg's own encoder)."""
    _encode(path, seconds, ["-c:a", "aac", "-b:a", f"{bitrate_kbps}k", "-f", "adts"])
    return AudioSample(path, "audio/aac", seconds)


def make_ogg_vorbis(path: Path, seconds: float = 20.0) -> AudioSample:
    _encode(path, seconds, ["-c:a", "libvorbis", "-q:a", "2", "-f", "ogg"])
    return AudioSample(path, "application/ogg", seconds)


def loudness_db(audio: bytes, container: str) -> float:
    """Mean volume as ffmpeg's volumedetect measures it (digital silence: about -91 dB).
    `container`: ffmpeg's demuxer name (mp3, ogg, aac)."""
    result = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-hide_banner", "-f", container, "-i", "pipe:0"),
            *("-af", "volumedetect", "-f", "null", "-"),
        ],
        input=audio,
        capture_output=True,
        timeout=30,
        check=False,
    )
    for line in result.stderr.decode(errors="replace").splitlines():
        if "mean_volume:" in line:
            return float(line.split("mean_volume:")[1].split()[0])
    raise AssertionError(f"no volume measured: {result.stderr[-500:]!r}")
