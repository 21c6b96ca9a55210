"""Now playing: each mount's current title and the ones before it, as the cluster keeps
them in etcd (so a new leader or a restarted node still knows), and the ICY metadata
block that carries a title to listeners. Pure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from radioagent.model import MAX_TITLE_CHARACTERS, MountSpec
from radioagent.validation import ValidationError, text_problem

HISTORY_LENGTH = 20  # titles kept per mount, the current one included
# Icecast's title of each holding mount (set by the holding feed): the fan-out sees it in
# Icecast's metadata when listeners are on holding audio, and shows the mount's
# holding_title instead.
HOLDING_TITLE_MARKER = "radio-agent: holding audio"
ICY_BLOCK_UNIT = 16
ICY_MAX_BLOCK_BYTES = 255 * ICY_BLOCK_UNIT


@dataclass(frozen=True)
class Title:
    text: str
    since: float  # Unix time it went on air


@dataclass(frozen=True)
class NowPlaying:
    history: tuple[Title, ...]  # newest first, the current title first; never empty
    changes: int  # title changes since the mount's first title: the metrics' counter

    @property
    def current(self) -> Title:
        return self.history[0]

    def to_json(self) -> str:
        return json.dumps(
            {
                "changes": self.changes,
                "history": [{"title": t.text, "since": t.since} for t in self.history],
            },
            separators=(",", ":"),
        )

    def public_dict(self) -> dict[str, Any]:
        return {
            "title": self.current.text,
            "since": self.current.since,
            "changes": self.changes,
            "history": [{"title": t.text, "since": t.since} for t in self.history],
        }


def artist_and_title(artist: str, title: str) -> str:
    """One title as Icecast shows an Ogg feed's: `artist - title`, or whichever is there."""
    return f"{artist} - {title}" if artist and title else artist or title


def title_problem(text: Any) -> str | None:
    """Why `text` cannot be a title (from a request or a record), or None."""
    return text_problem("the title", text, MAX_TITLE_CHARACTERS)


def with_title(now_playing: NowPlaying | None, text: str, at: float) -> NowPlaying | None:
    """The record once `text` goes on air at `at`; None when it already is the current
    title (encoders repeat a title when they reconnect)."""
    if now_playing is None:
        return NowPlaying((Title(text, at),), 1)
    if now_playing.current.text == text:
        return None
    history = (Title(text, at), *now_playing.history)[:HISTORY_LENGTH]
    return NowPlaying(history, now_playing.changes + 1)


def now_playing_from_json(value: bytes | str) -> NowPlaying:
    try:
        decoded = json.loads(value)
        changes, entries = decoded["changes"], decoded["history"]
        history = tuple(Title(entry["title"], entry["since"]) for entry in entries)
    except (ValueError, TypeError, KeyError) as error:
        raise ValidationError([f"not a now-playing record ({error})"]) from error
    if (
        not isinstance(changes, int)
        or isinstance(changes, bool)
        or changes < len(history)
        or not 1 <= len(history) <= HISTORY_LENGTH
    ):
        raise ValidationError(["not a now-playing record (changes, history)"])
    for title in history:
        problem = title_problem(title.text)
        if problem is None and (
            isinstance(title.since, bool)
            or not isinstance(title.since, int | float)
            or not math.isfinite(title.since)
        ):
            problem = "a title's start is not a time"
        if problem is not None:
            raise ValidationError([f"not a now-playing record: {problem}"])
    return NowPlaying(history, changes)


def mount_now_playing(
    name: str, mounts: Mapping[str, MountSpec], titles: Mapping[str, NowPlaying]
) -> NowPlaying | None:
    """A mount's titles; a transcoded mount plays its parent's (followed up the chain)."""
    for _ in range(len(mounts) + 1):  # a cycle of parents is a bad spec: stop anyway
        if name in titles:
            return titles[name]
        mount = mounts.get(name)
        if mount is None or mount.transcode is None:
            return None
        name = mount.transcode.parent
    return None


@dataclass(frozen=True)
class IcyTitles:
    """What the fan-out writes in a mount's ICY metadata blocks."""

    live: bytes | None  # the cluster's title; None: Icecast's own (a relayed stream's)
    holding: bytes  # while listeners hear the holding audio


def mount_icy_titles(
    mount: MountSpec, mounts: Mapping[str, MountSpec], titles: Mapping[str, NowPlaying]
) -> IcyTitles:
    """A relayed external stream keeps its own titles as Icecast passes them: the copy
    kept in etcd (for now playing) comes a leader's cycle later."""
    playing = None if mount.relay_url else mount_now_playing(mount.name, mounts, titles)
    return IcyTitles(
        None if playing is None else icy_block(playing.current.text),
        icy_block(mount.holding_title),
    )


def icy_block(text: str) -> bytes:
    """The ICY metadata block of a title: a length byte L, then 16 x L bytes of
    `StreamTitle='...';` padded with NULs. UTF-8, as players read it today."""
    content = f"StreamTitle='{text}';".encode()
    units = -(-len(content) // ICY_BLOCK_UNIT)
    if units > ICY_MAX_BLOCK_BYTES // ICY_BLOCK_UNIT:
        raise ValueError(f"a title of {len(content)} bytes does not fit an ICY block")
    return bytes([units]) + content.ljust(units * ICY_BLOCK_UNIT, b"\0")


def relayed_titles(
    mounts: Iterable[MountSpec],
    feed_titles: Mapping[str, str],
    titles: Mapping[str, NowPlaying],
) -> dict[str, str]:
    """The titles to keep for mounts that relay an external stream (mount name -> title):
    its title as the leader's Icecast reads it from the stream, where it differs from
    the one kept. A feed's title a record cannot hold is left out."""
    changed = {}
    for mount in mounts:
        title = feed_titles.get(mount.live_path, "")
        kept = titles.get(mount.name)
        if (
            mount.relay_url
            and title
            and title_problem(title) is None
            and (kept is None or kept.current.text != title)
        ):
            changed[mount.name] = title
    return changed
