"""The cluster's status as one JSON-ready document, for `radioctl status --json` and the
agent's `/api/v1/status`. Pure; never includes a password."""

from __future__ import annotations

import json
from typing import Any

from radioagent.coordination.state import ClusterState
from radioagent.hls.playlists import packs
from radioagent.nowplaying import mount_now_playing
from radioagent.programmes.spec import preferred_inputs


def listeners_by_mount(state: ClusterState) -> dict[str, int]:
    totals: dict[str, int] = {}
    for status in state.nodes.values():
        for mount, count in status.listeners.items():
            totals[mount] = totals.get(mount, 0) + count
    return totals


def live_on(state: ClusterState) -> dict[str, list[str]]:
    """For each mount, the nodes whose Icecast plays its live audio now."""
    nodes: dict[str, list[str]] = {name: [] for name in state.mounts}
    for node_name, status in sorted(state.nodes.items()):
        for mount in status.live_mounts:
            nodes.setdefault(mount, []).append(node_name)
    return nodes


def status_document(state: ClusterState) -> dict[str, Any]:
    """A mount is on air while at least one node plays its live audio; the others serve
    the holding audio (dead air)."""
    totals = listeners_by_mount(state)
    live = live_on(state)
    return {
        "leader": None
        if state.leader is None
        else {
            "name": state.leader.name,
            "epoch": state.leader.epoch,
        },
        "nodes": {
            name: json.loads(status.to_json()) for name, status in sorted(state.nodes.items())
        },
        # Known nodes whose status expired, with since when (Unix time; None: the leader
        # has not marked it yet), until `radioctl node forget`.
        "down_nodes": {name: {"down_since": since} for name, since in state.down_nodes().items()},
        "mounts": {
            name: _mount_entry(state, name, totals, live, history=False)
            for name in sorted(state.mounts)
        },
    }


def mount_document(state: ClusterState, name: str) -> dict[str, Any] | None:
    """One mount, with its last titles; None if there is no such mount."""
    if name not in state.mounts:
        return None
    return {
        "name": name,
        **_mount_entry(state, name, listeners_by_mount(state), live_on(state), history=True),
    }


def _mount_entry(
    state: ClusterState,
    name: str,
    totals: dict[str, int],
    live: dict[str, list[str]],
    *,
    history: bool,
) -> dict[str, Any]:
    """A transcoded mount plays its parent's titles."""
    playing = mount_now_playing(name, state.mounts, state.titles)
    now_playing = None
    if playing is not None:
        now_playing = playing.public_dict()
        if not history:
            del now_playing["history"]
    mount = state.mounts[name]
    entry = {
        **mount.public_dict(),
        "hls": f"/{name}.m3u8" if packs(mount) else None,  # its HLS master playlist
        "listeners": totals.get(name, 0),
        "on_air": bool(live.get(name)),
        "live_on": live.get(name, []),
        "now_playing": now_playing,
    }
    if mount.programme is not None:
        entry["programme_state"] = programme_report(state, name)
    return entry


def programme_reports(state: ClusterState) -> dict[str, dict[str, Any]]:
    """programme_report for every programme."""
    return {
        name: programme_report(state, name)
        for name, mount in sorted(state.mounts.items())
        if mount.programme is not None
    }


def programme_report(state: ClusterState, name: str) -> dict[str, Any]:
    """Like Radio France's `GET /livesource`: the inputs, the preferred one (as etcd
    holds it), the one really on air and whether the output is blank (as the programme's
    Liquidsoap last said, through its owner's status; None while none runs)."""
    programme = state.mounts[name].programme
    assert programme is not None  # noqa: S101 - callers pass programmes only
    owner = state.transcoders.get(name)
    owner_status = state.nodes.get(owner) if owner is not None else None
    running = owner_status.programmes.get(name) if owner_status is not None else None
    preferred = preferred_inputs({name: programme}, state.preferences).get(name)
    return {
        "inputs": [
            {
                "mount": entry.mount,
                "automatic": entry.automatic,
                **(running or {}).get("inputs", {}).get(entry.mount, {}),
            }
            for entry in programme.inputs
        ],
        "preferred": preferred,
        "owner": owner,
        "real_output": None if running is None else running.get("on_air"),
        "is_output_blank": None if running is None else running.get("blank"),
        "lufs": None if running is None else running.get("lufs"),
    }
