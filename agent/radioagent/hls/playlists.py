"""HLS playlists as text (RFC 8216). Pure.

A media playlist lists a mount's last segments; a master playlist lists the mount and its
transcoded variants, so a player picks a bitrate for its network and switches as it
changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from radioagent.hls.segmenter import CODECS, Segment
from radioagent.model import MountSpec

# Version 3: EXTINF durations with decimals. Nothing later is used.
VERSION = 3
# RFC 6381 codec strings for packed audio: MPEG-1/2 Layer III is 'mp4a.40.34', AAC-LC
# 'mp4a.40.2' (what Liquidsoap's ffmpeg AAC encoder and most studios send).
CODEC_STRINGS = {"mp3": "mp4a.40.34", "aac": "mp4a.40.2"}
# BANDWIDTH is a peak in bits/s: the bitrate with the tags and a margin.
BANDWIDTH_MARGIN = 1.1
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_SUFFIXES = {"mp3": "mp3", "aac": "aac"}
SEGMENT_TYPES = {"mp3": "audio/mpeg", "aac": "audio/aac"}
HLS_PREFIX = "/hls/"
SESSION_PARAMETER = "session"


@dataclass(frozen=True, slots=True)
class HlsSession:
    """Who a request of HLS comes from: a token, or the client's address and agent."""

    key: str
    in_uris: bool  # a token, carried on in the URIs of the playlists it gets

    @property
    def query(self) -> str:
        return f"?{SESSION_PARAMETER}={self.key}" if self.in_uris else ""


def packs(mount: MountSpec) -> bool:
    """Whether the mount's codec goes in packed-audio segments (Ogg does not: see the
    README)."""
    return mount.format.codec in CODECS


def media_uri(mount: MountSpec) -> str:
    """The mount's media playlist, from the site's root."""
    return f"{HLS_PREFIX}{mount.name}/index.m3u8"


def variants_of(mount: MountSpec, mounts: Mapping[str, MountSpec]) -> list[Variant]:
    """The mount and each transcoded mount made from it that HLS can carry."""
    family = [mount] + [
        other
        for other in mounts.values()
        if other.transcode is not None and other.transcode.parent == mount.name
    ]
    return [
        Variant(media_uri(member).lstrip("/"), member.format.codec, member.format.bitrate_kbps)
        for member in family
        if packs(member)
    ]


def media_playlist(
    segments: Sequence[Segment],
    target_seconds: int,
    discontinuity_sequence: int,
    uri: str,
) -> str:
    """`segments`: the window, oldest first, sequence numbers following each other;
    `discontinuity_sequence`: discontinuities in segments before it; `uri`: a segment's
    URI with `{sequence}` for its number."""
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{target_seconds}",
        f"#EXT-X-MEDIA-SEQUENCE:{segments[0].sequence if segments else 0}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}",
    ]
    for segment in segments:
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        lines += [f"#EXTINF:{segment.duration:.3f},", uri.format(sequence=segment.sequence)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Variant:
    uri: str  # its media playlist
    codec: str  # "mp3" or "aac"
    bitrate_kbps: int


def master_playlist(variants: Sequence[Variant], token: str = "") -> str:
    """The variants, the highest bitrate first (players start with the first listed);
    `token`: the session's, on each URI."""
    query = f"?{SESSION_PARAMETER}={token}" if token else ""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}"]
    for variant in sorted(variants, key=lambda item: -item.bitrate_kbps):
        bandwidth = round(variant.bitrate_kbps * 1000 * BANDWIDTH_MARGIN)
        codecs = CODEC_STRINGS[variant.codec]
        lines += [f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS="{codecs}"', variant.uri + query]
    return "\n".join(lines) + "\n"
