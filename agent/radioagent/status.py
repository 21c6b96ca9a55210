"""The cluster's status as one JSON-ready document, for `radioctl status --json` and the
agent's `/api/v1/status`. Pure; never includes a password."""

from __future__ import annotations

import json
from typing import Any

from radioagent.coordination.state import ClusterState


def listeners_by_mount(state: ClusterState) -> dict[str, int]:
    totals: dict[str, int] = {}
    for status in state.nodes.values():
        for mount, count in status.listeners.items():
            totals[mount] = totals.get(mount, 0) + count
    return totals


def status_document(state: ClusterState) -> dict[str, Any]:
    totals = listeners_by_mount(state)
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
        "mounts": {
            name: {**mount.public_dict(), "listeners": totals.get(name, 0)}
            for name, mount in sorted(state.mounts.items())
        },
    }
