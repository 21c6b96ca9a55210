"""Dead air: how long each mount's live audio has been reaching this node, or missing.
Pure: the loop feeds it what Icecast serves after each stats read.

A node hears a mount live while its Icecast's public mount is fed by its relay of the
leader's /_live/ mount, which only connects while the studio's source reaches the leader;
otherwise its listeners get the holding audio. Silence counts from the agent's first look
at a mount, so a mount that never had a source is dead air too. A transcoded mount is
live only while its parent is: fed by its Liquidsoap with the parent's holding silence,
it is dead air like the parent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from radioagent.icecast.stats import IcecastStats
from radioagent.model import MountSpec

DEFAULT_DEAD_AIR_SECONDS = 30


@dataclass(frozen=True)
class MountAir:
    live: bool
    since: float  # clock time this state (live, or dead air) began


@dataclass(frozen=True)
class AirReport:
    """One mount as metrics and the status page show it."""

    live: bool
    live_seconds: float
    dead_air_seconds: float
    dead_air: bool  # dead air has lasted the cluster's dead_air_seconds


def update_air(
    previous: Mapping[str, MountAir],
    mounts: Iterable[str],
    live_for: Mapping[str, float],
    now: float,
) -> dict[str, MountAir]:
    """Each mount's state after one look. `live_for` holds the mounts heard live, each with
    how long Icecast says its feed has run (so an agent restart keeps the true start).
    A mount keeps its start time while its state holds; mounts no longer in the cluster
    are forgotten."""
    updated = {}
    for name in mounts:
        before = previous.get(name)
        is_live = name in live_for
        if before is not None and before.live == is_live:
            updated[name] = before
        elif is_live:
            updated[name] = MountAir(True, now - max(0.0, live_for[name]))
        else:
            updated[name] = MountAir(False, now)
    return updated


def air_changes(
    changed: Mapping[str, float],
    before: Mapping[str, MountAir],
    after: Mapping[str, MountAir],
    clock_now: float,
    wall_now: float,
) -> dict[str, float]:
    """When each mount's audio last came or went, on the wall clock (others compare it
    with theirs): a mount whose state changed gets its new state's start; a mount seen
    for the first time changes nothing; mounts gone are forgotten."""
    updated = {}
    for name, state in after.items():
        previous = before.get(name)
        if previous is not None and previous.live != state.live:
            updated[name] = round(wall_now - (clock_now - state.since), 3)
        elif name in changed:
            updated[name] = changed[name]
    return updated


def air_reports(air: Mapping[str, MountAir], now: float, threshold: float) -> dict[str, AirReport]:
    reports = {}
    for name, state in air.items():
        seconds = max(0.0, now - state.since)
        reports[name] = AirReport(
            live=state.live,
            live_seconds=seconds if state.live else 0.0,
            dead_air_seconds=0.0 if state.live else seconds,
            dead_air=not state.live and seconds >= threshold,
        )
    return reports


def live_ages(
    mounts: Iterable[MountSpec], stats: IcecastStats | None, wall_now: float
) -> dict[str, float]:
    """The mounts this node's Icecast plays live, each with how long its feed has run (a
    transcoded mount: as long as the shortest feed up its chain of parents)."""
    if stats is None:
        return {}
    by_name = {mount.name: mount for mount in mounts}
    fed = {
        name: wall_now - stats.started_at[mount.path]
        for name, mount in by_name.items()
        if mount.path in stats.started_at
    }
    ages = {name: _chain_age(name, by_name, fed) for name in fed}
    return {name: age for name, age in ages.items() if age is not None}


def _chain_age(
    name: str, by_name: Mapping[str, MountSpec], fed: Mapping[str, float]
) -> float | None:
    """How long `name` and every parent up its chain have been fed; None if one is not."""
    age = fed[name]
    mount = by_name.get(name)
    for _ in range(len(by_name)):  # parents form no cycle; stop anyway
        if mount is None or mount.transcode is None:
            return age
        parent = mount.transcode.parent
        if parent not in fed:
            return None
        age = min(age, fed[parent])
        mount = by_name.get(parent)
    return age
