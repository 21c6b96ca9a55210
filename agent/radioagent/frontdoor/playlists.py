"""Playlists (.m3u, .pls, .xspf) pointing back at the cluster's public name. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

PLAYLIST_TYPES = {
    ".m3u": "audio/x-mpegurl",
    ".pls": "audio/x-scpls",
    ".xspf": "application/xspf+xml",
}


def split_playlist_path(name: str) -> tuple[str, str] | None:
    """("live.mp3", ".m3u") for "live.mp3.m3u"; None for anything else."""
    for suffix in PLAYLIST_TYPES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return None


def render_playlist(suffix: str, entries: Sequence[tuple[str, str]]) -> str:
    """`entries`: (URL, title), in the order a player tries them (it moves to the next
    when one ends or fails)."""
    if suffix == ".m3u":
        return "#EXTM3U\n" + "".join(f"#EXTINF:-1,{title}\n{url}\n" for url, title in entries)
    if suffix == ".pls":
        return (
            f"[playlist]\nNumberOfEntries={len(entries)}\n"
            + "".join(
                f"File{index}={url}\nTitle{index}={title}\nLength{index}=-1\n"
                for index, (url, title) in enumerate(entries, start=1)
            )
            + "Version=2\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<playlist version="1" xmlns="http://xspf.org/ns/0/">\n'
        "  <trackList>\n"
        + "".join(
            f"    <track><location>{escape(url)}</location><title>{escape(title)}</title></track>\n"
            for url, title in entries
        )
        + "  </trackList>\n"
        "</playlist>\n"
    )
