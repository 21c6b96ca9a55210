"""Liquidsoap 2.1 script pieces shared by the holding silence, the transcoders and the
programmes. Pure."""

from __future__ import annotations

import functools
import json

import jinja2

from radioagent.model import AudioFormat


def liquidsoap_string(value: object) -> str:
    """A Liquidsoap string literal: its escapes are a superset of JSON's."""
    return json.dumps(str(value))


def liquidsoap_encoder(audio: AudioFormat) -> str:
    """The encoder for a format (Debian's build: no fdkaac, AAC via ffmpeg). The holding
    silence and the transcoder of a mount use the same one, so they match exactly."""
    rate, channels, kbps = audio.samplerate, audio.channels, audio.bitrate_kbps
    if audio.codec == "mp3":
        stereo = "true" if channels == 2 else "false"
        return f"%mp3(bitrate={kbps}, samplerate={rate}, stereo={stereo})"
    if audio.codec == "vorbis":
        return f"%ogg(%vorbis.abr(samplerate={rate}, channels={channels}, bitrate={kbps}))"
    if audio.codec == "opus":
        return f"%ogg(%opus(samplerate={rate}, channels={channels}, bitrate={kbps}))"
    if audio.codec == "flac":
        return f"%ogg(%flac(samplerate={rate}, channels={channels}))"
    if audio.codec == "aac":
        return (
            f'%ffmpeg(format="adts", %audio(codec="aac", b="{kbps}k", '
            f"samplerate={rate}, channels={channels}))"
        )
    raise ValueError(f"no Liquidsoap encoder for codec {audio.codec!r}")


@functools.lru_cache(maxsize=4)  # one per templates directory; Jinja re-reads changed files
def liquidsoap_templates(templates_dir: str) -> jinja2.Environment:
    """The Jinja environment of the Liquidsoap scripts in `templates_dir`."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - a Liquidsoap script; strings go through liq_string
        keep_trailing_newline=True,
    )
    environment.filters["liq_string"] = liquidsoap_string
    return environment
