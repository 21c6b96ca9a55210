"""Liquidsoap script pieces shared by the holding silence, the transcoders and the
programmes: for Liquidsoap 2.1 (Debian 12) and 2.3 (Debian 13). Pure."""

from __future__ import annotations

import functools
import json
import re

import jinja2

from radioagent.model import AudioFormat

# (major, minor): the scripts differ where Liquidsoap changed between Debian's versions.
LiquidsoapVersion = tuple[int, int]
OLDEST_LIQUIDSOAP: LiquidsoapVersion = (2, 1)  # Debian 12's
# 2.3 reads the environment with environment.get (getenv's first argument became the
# default) and dropped clock_safe (its clocks were rewritten).
ENVIRONMENT_GET_SINCE: LiquidsoapVersion = (2, 3)


def liquidsoap_version(version_output: str) -> LiquidsoapVersion | None:
    """From `liquidsoap --version` ("Liquidsoap 2.3.2+dev"); None if it names none."""
    found = re.search(r"\bLiquidsoap (\d+)\.(\d+)", version_output)
    return (int(found[1]), int(found[2])) if found else None


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


def liquidsoap_getenv(name: str, version: LiquidsoapVersion) -> str:
    """The expression reading the environment variable `name` in that Liquidsoap."""
    function = "environment.get" if version >= ENVIRONMENT_GET_SINCE else "getenv"
    return f"{function}({liquidsoap_string(name)})"


@functools.lru_cache(maxsize=8)  # one per templates directory and version
def liquidsoap_templates(
    templates_dir: str, version: LiquidsoapVersion = OLDEST_LIQUIDSOAP
) -> jinja2.Environment:
    """The Jinja environment of the Liquidsoap scripts in `templates_dir`, for that
    Liquidsoap (the templates read `liquidsoap_version` and call `liq_getenv`). Jinja
    re-reads a changed template file."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - a Liquidsoap script; strings go through liq_string
        keep_trailing_newline=True,
    )
    environment.filters["liq_string"] = liquidsoap_string
    environment.globals["liquidsoap_version"] = version
    environment.globals["liq_getenv"] = functools.partial(liquidsoap_getenv, version=version)
    return environment
