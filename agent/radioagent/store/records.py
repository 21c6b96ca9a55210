"""Every record the cluster keeps in etcd, encoded and decoded. Pure: bytes in, values out.

Mounts, settings and node statuses are JSON written by their own model's `to_json`; the
records only the store knows (leader, handover request, drain mark, transcoder claim) are
encoded here. Garbage under the prefix (a hand-edited key, another tool's data) never
stops a reader: the key is skipped and named in `problems`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from radioagent.acme.http01 import key_authorization_problem
from radioagent.acme.state import (
    AcmeAccount,
    AcmeFailure,
    AcmeState,
    StoredCertificate,
    TxtChallenge,
    decode_account,
    decode_certificate,
    decode_failure,
    decode_txt_challenge,
)
from radioagent.coordination.state import ClusterState, Handover, LeaderRecord
from radioagent.model import (
    MountSpec,
    NodeStatus,
    cross_mount_problems,
    mount_from_json,
    node_status_from_json,
)
from radioagent.nowplaying import NowPlaying, now_playing_from_json
from radioagent.settings import ClusterSettings, settings_from_json
from radioagent.store.keys import KeyLayout
from radioagent.validation import ValidationError


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


def encode_handover(handover: Handover) -> str:
    return json.dumps({"epoch": handover.epoch, "from": handover.from_node, "to": handover.to})


def decode_handover(value: bytes, revision: int = 0) -> Handover:
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
    return Handover(epoch, from_node, to, revision)


def encode_drain_mark(since: int) -> str:
    """A drain mark's presence is what counts; its value says since when (Unix time)."""
    return json.dumps({"since": since})


def encode_known_node(down_since: float | None) -> str:
    return json.dumps({"down_since": down_since})


def decode_known_node(value: bytes) -> float | None:
    """Since when the node is down (None: up); ValidationError for anything else."""
    try:
        decoded = json.loads(value)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValidationError(["known node: not JSON"]) from error
    since = decoded.get("down_since") if isinstance(decoded, dict) else "missing"
    if since is not None and (isinstance(since, bool) or not isinstance(since, int | float)):
        raise ValidationError([f"known node: down_since: {since!r} is not a time"])
    return None if since is None else float(since)


def decode_name(what: str, value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError as error:
        raise ValidationError([f"{what} is not UTF-8"]) from error


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
    transcoder_leases: dict[str, int] = field(default_factory=dict)
    titles: dict[str, NowPlaying] = field(default_factory=dict)
    acme_challenges: dict[str, str] = field(default_factory=dict)
    certificate: StoredCertificate | None = None
    certificate_revision: int = 0
    account: AcmeAccount | None = None
    ordering: str | None = None
    failure: AcmeFailure | None = None
    renewal_requested: int | None = None
    dns_challenges: dict[str, TxtChallenge] = field(default_factory=dict)
    preferences: dict[str, str] = field(default_factory=dict)
    known: dict[str, float | None] = field(default_factory=dict)

    def acme(self) -> AcmeState:
        return AcmeState(
            self.certificate,
            self.certificate_revision,
            self.account,
            self.ordering,
            self.failure,
            self.renewal_requested,
            self.dns_challenges,
        )


def decode_acme_challenge(layout: KeyLayout, entry: KeyValue) -> tuple[str, str]:
    """(token, key authorization); ValidationError for anything else."""
    token = entry.key.removeprefix(layout.acme_challenges)
    key_authorization = decode_name("key authorization", entry.value)
    problem = key_authorization_problem(token, key_authorization)
    if problem is not None:
        raise ValidationError([problem])
    return token, key_authorization


def decode_leader(entry: KeyValue) -> tuple[LeaderRecord, str | None]:
    """The leader, and a problem if its name is not UTF-8: a leader key is never skipped,
    its lease and revision are what fence the others."""
    try:
        return LeaderRecord(entry.value.decode(), entry.create_revision, entry.lease), None
    except UnicodeDecodeError:
        problem = f"{entry.key}: leader name is not UTF-8"
        return LeaderRecord(repr(entry.value), entry.create_revision, entry.lease), problem


def _decode_leader(entry: KeyValue, decoded: _Decoded) -> None:
    decoded.leader, problem = decode_leader(entry)
    if problem is not None:
        decoded.problems.append(problem)


def decode_mount(layout: KeyLayout, entry: KeyValue) -> MountSpec:
    """A mount filed under its own key; ValidationError otherwise."""
    name = entry.key.removeprefix(layout.mounts)
    mount = mount_from_json(entry.value)
    if mount.name != name:
        raise ValidationError([f"it names mount {mount.name!r}"])
    return mount


def _decode_entry(layout: KeyLayout, entry: KeyValue, decoded: _Decoded) -> None:
    """Raises ValidationError for an entry to skip."""
    if entry.key == layout.leader:
        _decode_leader(entry, decoded)
    elif entry.key == layout.handover:
        decoded.handover = decode_handover(entry.value, entry.mod_revision)
    elif entry.key == layout.config:
        decoded.settings = settings_from_json(entry.value)
    elif entry.key.startswith(layout.drains):
        decoded.draining.add(entry.key.removeprefix(layout.drains))
    elif entry.key.startswith(layout.known_nodes):
        decoded.known[entry.key.removeprefix(layout.known_nodes)] = decode_known_node(entry.value)
    elif entry.key.startswith(layout.nodes):
        decoded.nodes[entry.key.removeprefix(layout.nodes)] = node_status_from_json(entry.value)
    elif entry.key.startswith(layout.mounts):
        mount = decode_mount(layout, entry)
        decoded.mounts[mount.name] = mount
    elif entry.key.startswith(layout.transcoders):
        owner = decode_name("transcoder owner", entry.value)
        claimed = entry.key.removeprefix(layout.transcoders)
        decoded.transcoders[claimed] = owner
        decoded.transcoder_leases[claimed] = entry.lease
    elif entry.key.startswith(layout.preferences):
        programme = entry.key.removeprefix(layout.preferences)
        decoded.preferences[programme] = decode_name("preferred input", entry.value)
    elif entry.key.startswith(layout.titles):
        decoded.titles[entry.key.removeprefix(layout.titles)] = now_playing_from_json(entry.value)
    elif entry.key.startswith(layout.acme):
        _decode_acme_entry(layout, entry, decoded)
    elif entry.key == layout.certificate:
        decoded.certificate = decode_certificate(entry.value)
        decoded.certificate_revision = entry.mod_revision


def _decode_acme_entry(layout: KeyLayout, entry: KeyValue, decoded: _Decoded) -> None:
    if entry.key.startswith(layout.acme_challenges):
        token, key_authorization = decode_acme_challenge(layout, entry)
        decoded.acme_challenges[token] = key_authorization
    elif entry.key.startswith(layout.acme_txt_challenges):
        token = entry.key.removeprefix(layout.acme_txt_challenges)
        decoded.dns_challenges[token] = decode_txt_challenge(entry.value)
    elif entry.key == layout.acme_account:
        decoded.account = decode_account(entry.value)
    elif entry.key == layout.acme_claim:
        decoded.ordering = decode_name("acme claim", entry.value)
    elif entry.key == layout.acme_failure:
        decoded.failure = decode_failure(entry.value)
    elif entry.key == layout.acme_renewal_request:
        decoded.renewal_requested = entry.mod_revision


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
        decoded.titles,
        decoded.acme_challenges,
        decoded.acme(),
        decoded.preferences,
        decoded.known,
        decoded.transcoder_leases,
    )


def entries_of(kvs: Any) -> list[KeyValue]:
    """etcd's key-value messages (a range response's `kvs`) as plain values."""
    return [
        KeyValue(
            kv.key.decode(errors="replace"), kv.value, kv.create_revision, kv.mod_revision, kv.lease
        )
        for kv in kvs
    ]


def entry_of(value: bytes, metadata: Any) -> KeyValue:
    """python-etcd3's (value, KVMetadata) pair, from a single-key get, as a plain value."""
    key = metadata.key.decode(errors="replace")
    return KeyValue(key, value, metadata.create_revision, metadata.mod_revision, metadata.lease_id)


def stored_settings_document(value: bytes | None) -> Any:
    """The settings as stored (so a restore writes the same bytes), once validated."""
    if value is None:
        return None
    settings_from_json(value)
    return json.loads(value)
