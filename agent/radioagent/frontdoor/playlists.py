"""Playlists (.m3u, .pls, .xspf) pointing back at the cluster's public name. Pure."""

from __future__ import annotations

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


def render_playlist(suffix: str, stream_url: str, title: str) -> str:
    if suffix == ".m3u":
        return f"#EXTM3U\n#EXTINF:-1,{title}\n{stream_url}\n"
    if suffix == ".pls":
        return (
            f"[playlist]\nNumberOfEntries=1\nFile1={stream_url}\nTitle1={title}\n"
            "Length1=-1\nVersion=2\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<playlist version="1" xmlns="http://xspf.org/ns/0/">\n'
        "  <trackList>\n"
        f"    <track><location>{escape(stream_url)}</location>"
        f"<title>{escape(title)}</title></track>\n"
        "  </trackList>\n"
        "</playlist>\n"
    )
