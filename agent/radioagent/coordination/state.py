"""What the agent reads from etcd, decoded and checked. Pure: bytes in, values out.

Garbage under the prefix (a hand-edited key, another tool's data) never stops the
agent: the key is skipped and named in `problems`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from radioagent.coordination.keys import KeyLayout
from radioagent.model import (
    MountSpec,
    NodeStatus,
    cross_mount_problems,
    mount_from_json,
    node_status_from_json,
)
from radioagent.settings import ClusterSettings, settings_from_json
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
class Handover:
    """An operator's request that the leader of `epoch` steps down, for `to` if named."""

    epoch: int
    from_node: str
    to: str | None


@dataclass(frozen=True)
class ClusterState:
    revision: int
    leader: LeaderRecord | None
    nodes: dict[str, NodeStatus] = field(default_factory=dict)
    mounts: dict[str, MountSpec] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    draining: frozenset[str] = frozenset()
    handover: Handover | None = None
    settings: ClusterSettings = field(default_factory=ClusterSettings)
    transcoders: dict[str, str] = field(default_factory=dict)  # mount -> owning node


def decode_handover(value: bytes) -> Handover:
    try:
        decoded = json.loads(value)
        epoch, from_node, to = decoded["epoch"], decoded["from"], decoded.get("to")
    except (ValueError, TypeError, KeyError) as error:
        raise ValidationError([f"not a handover request ({error})"]) from error
    if (
        not isinstance(epoch, int)
        or isinstance(epoch, bool)
        or not isinstance(from_node, str)
        or not (to is None or isinstance(to, str))
    ):
        raise ValidationError(["not a handover request (epoch, from, to)"])
    return Handover(epoch, from_node, to)


@dataclass
class _Decoded:
    leader: LeaderRecord | None = None
    nodes: dict[str, NodeStatus] = field(default_factory=dict)
    mounts: dict[str, MountSpec] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    draining: set[str] = field(default_factory=set)
    handover: Handover | None = None
    settings: ClusterSettings = field(default_factory=ClusterSettings)
    transcoders: dict[str, str] = field(default_factory=dict)


def _decode_leader(entry: KeyValue, decoded: _Decoded) -> None:
    try:
        name = entry.value.decode()
    except UnicodeDecodeError:
        name = repr(entry.value)
        decoded.problems.append(f"{entry.key}: leader name is not UTF-8")
    decoded.leader = LeaderRecord(name, entry.create_revision, entry.lease)


def _decode_mount(layout: KeyLayout, entry: KeyValue, decoded: _Decoded) -> None:
    name = entry.key.removeprefix(layout.mounts)
    mount = mount_from_json(entry.value)
    if mount.name != name:
        raise ValidationError([f"it names mount {mount.name!r}"])
    decoded.mounts[name] = mount


def _decode_entry(layout: KeyLayout, entry: KeyValue, decoded: _Decoded) -> None:
    """Raises ValidationError for an entry to skip."""
    if entry.key == layout.leader:
        _decode_leader(entry, decoded)
    elif entry.key == layout.handover:
        decoded.handover = decode_handover(entry.value)
    elif entry.key == layout.config:
        decoded.settings = settings_from_json(entry.value)
    elif entry.key.startswith(layout.drains):
        decoded.draining.add(entry.key.removeprefix(layout.drains))
    elif entry.key.startswith(layout.nodes):
        decoded.nodes[entry.key.removeprefix(layout.nodes)] = node_status_from_json(entry.value)
    elif entry.key.startswith(layout.mounts):
        _decode_mount(layout, entry, decoded)
    elif entry.key.startswith(layout.transcoders):
        try:
            owner = entry.value.decode()
        except UnicodeDecodeError as error:
            raise ValidationError(["transcoder owner is not UTF-8"]) from error
        decoded.transcoders[entry.key.removeprefix(layout.transcoders)] = owner


def decode_range_response(layout: KeyLayout, response: Any) -> ClusterState:
    """The state from an etcd range response over the whole prefix."""
    entries = [
        KeyValue(
            kv.key.decode(errors="replace"), kv.value, kv.create_revision, kv.mod_revision, kv.lease
        )
        for kv in response.kvs
    ]
    return decode_cluster_state(layout, entries, response.header.revision)


def decode_cluster_state(layout: KeyLayout, entries: list[KeyValue], revision: int) -> ClusterState:
    decoded = _Decoded()
    for entry in entries:
        try:
            _decode_entry(layout, entry, decoded)
        except ValidationError as error:
            decoded.problems.append(f"{entry.key}: skipped, {error}")
    decoded.problems += [f"mounts: {problem}" for problem in cross_mount_problems(decoded.mounts)]
    return ClusterState(
        revision,
        decoded.leader,
        decoded.nodes,
        decoded.mounts,
        tuple(decoded.problems),
        frozenset(decoded.draining),
        decoded.handover,
        decoded.settings,
        decoded.transcoders,
    )
