"""What the agent reads from etcd, decoded and checked. Pure: bytes in, values out.

Garbage under the prefix (a hand-edited key, another tool's data) never stops the
agent: the key is skipped and named in `problems`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from radioagent.coordination.keys import KeyLayout
from radioagent.model import (
    MountSpec,
    NodeStatus,
    cross_mount_problems,
    mount_from_json,
    node_status_from_json,
)
from radioagent.validation import ValidationError


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


@dataclass(frozen=True)
class LeaderRecord:
    name: str
    epoch: int  # the leader key's create revision: a fencing token, new at every election
    lease: int


@dataclass(frozen=True)
class ClusterState:
    revision: int
    leader: LeaderRecord | None
    nodes: dict[str, NodeStatus] = field(default_factory=dict)
    mounts: dict[str, MountSpec] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def decode_cluster_state(layout: KeyLayout, entries: list[KeyValue], revision: int) -> ClusterState:
    leader = None
    nodes: dict[str, NodeStatus] = {}
    mounts: dict[str, MountSpec] = {}
    problems: list[str] = []
    for entry in entries:
        if entry.key == layout.leader:
            try:
                name = entry.value.decode()
            except UnicodeDecodeError:
                name = repr(entry.value)
                problems.append(f"{entry.key}: leader name is not UTF-8")
            leader = LeaderRecord(name, entry.create_revision, entry.lease)
        elif entry.key.startswith(layout.nodes):
            name = entry.key.removeprefix(layout.nodes)
            try:
                nodes[name] = node_status_from_json(entry.value)
            except ValidationError as error:
                problems.append(f"{entry.key}: {error}")
        elif entry.key.startswith(layout.mounts):
            name = entry.key.removeprefix(layout.mounts)
            try:
                mount = mount_from_json(entry.value)
            except ValidationError as error:
                problems.append(f"{entry.key}: skipped, {error}")
                continue
            if mount.name != name:
                problems.append(f"{entry.key}: skipped, it names mount {mount.name!r}")
                continue
            mounts[name] = mount
    problems += [f"mounts: {problem}" for problem in cross_mount_problems(mounts)]
    return ClusterState(revision, leader, nodes, mounts, tuple(problems))
