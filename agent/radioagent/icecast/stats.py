"""Icecast's /admin/stats XML, decoded. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree

from radioagent.model import HOLDING_MOUNT_PREFIX


@dataclass(frozen=True)
class IcecastStats:
    listeners_by_mount: dict[str, int]  # public mount name -> listeners, holding included
    outgoing_kbps: float
    sources: frozenset[str]  # mount paths with a connected source or relay


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
    for source in root.iter("source"):
        path = source.get("mount", "")
        name = path.removeprefix(HOLDING_MOUNT_PREFIX).lstrip("/")
        listeners[name] = listeners.get(name, 0) + int(_number(source, "listeners"))
        outgoing += _number(source, "outgoing_kbitrate")
        sources.add(path)  # Icecast lists a mount only while a source or relay feeds it
    return IcecastStats(listeners, outgoing, frozenset(sources))
