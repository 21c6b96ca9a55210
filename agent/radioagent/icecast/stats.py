"""Icecast's /admin/stats XML, decoded. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from xml.etree import ElementTree

from radioagent.model import HOLDING_MOUNT_PREFIX
from radioagent.nowplaying import artist_and_title


@dataclass(frozen=True)
class IcecastStats:
    listeners_by_mount: dict[str, int]  # public mount name -> listeners, holding included
    outgoing_kbps: float
    sources: frozenset[str]  # mount paths Icecast lists (fed, or a relay still retrying)
    started_at: dict[str, float] = field(default_factory=dict)  # fed paths -> Unix time since
    bytes_read: dict[str, int] = field(default_factory=dict)  # path -> bytes its feed sent
    titles: dict[str, str] = field(default_factory=dict)  # path -> its feed's title, if any


def _number(element: ElementTree.Element, tag: str) -> float:
    text = element.findtext(tag)
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0


def parse_admin_stats(xml_text: str | bytes) -> IcecastStats:
    """Listeners on a holding mount are counted for the mount they are waiting for: they
    come back to it when its source or relay returns."""
    try:
        root = ElementTree.fromstring(xml_text)  # noqa: S314 - our own Icecast, internal port
    except ElementTree.ParseError as error:
        raise ValueError(f"admin stats are not XML: {error}") from error
    listeners: dict[str, int] = {}
    outgoing = 0.0
    sources = set()
    started_at: dict[str, float] = {}
    bytes_read: dict[str, int] = {}
    titles: dict[str, str] = {}
    for source in root.iter("source"):
        path = source.get("mount", "")
        name = path.removeprefix(HOLDING_MOUNT_PREFIX).lstrip("/")
        listeners[name] = listeners.get(name, 0) + int(_number(source, "listeners"))
        outgoing += _number(source, "outgoing_kbitrate")
        sources.add(path)
        bytes_read[path] = int(_number(source, "total_bytes_read"))
        # An Ogg feed's comments come as artist and title; an ICY feed's whole, in title.
        title = artist_and_title(source.findtext("artist") or "", source.findtext("title") or "")
        if title:
            titles[path] = title
        # A relay's mount stays listed while it retries; only a fed mount has a start.
        started = _unix_time(source.findtext("stream_start_iso8601"))
        if started is not None:
            started_at[path] = started
    return IcecastStats(listeners, outgoing, frozenset(sources), started_at, bytes_read, titles)


def _unix_time(iso_text: str | None) -> float | None:
    """Icecast writes `2026-11-21T12:17:20+0000`."""
    try:
        return datetime.strptime(iso_text or "", "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None
