"""Every etcd operation of the agent and of radioctl. Blocking (python-etcd3); the agent
runs these through its async facade (`agent_store`), radioctl calls them directly.

Every write that could race with another writer is a transaction: leadership and claims
on `create_revision == 0`, operators' edits as compare-and-set on the revision they read,
so two operators (or an operator and an agent) cannot silently overwrite each other.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from etcd3 import etcdrpc

from radioagent.config import EtcdSettings
from radioagent.coordination.raft import ready_to_lead
from radioagent.coordination.state import ClusterState, Handover, LeaderRecord
from radioagent.model import MountSpec, cross_mount_problems, parse_mount
from radioagent.nowplaying import NowPlaying, now_playing_from_json, with_title
from radioagent.radios import MountChange
from radioagent.settings import ClusterSettings, settings_from_json
from radioagent.store.acme import AcmeRecords
from radioagent.store.client import Client, EtcdClients, describe
from radioagent.store.endpoints import endpoint_from_url
from radioagent.store.errors import Conflict, EtcdUnavailable, NoSuchMount
from radioagent.store.keys import KeyLayout
from radioagent.store.records import (
    decode_cluster_state,
    decode_leader,
    decode_mount,
    encode_drain_mark,
    encode_handover,
    encode_known_node,
    entries_of,
    entry_of,
    stored_settings_document,
)
from radioagent.validation import ValidationError

# etcd refuses transactions of more than 128 operations by default.
TRANSACTION_OPERATIONS = 100
TITLE_WRITE_TRIES = 3  # a title races only with other titles of the same mount
# etcd aborts a leadership transfer after its election timeout (2.5 s with the etcd
# role's settings), and MoveLeader answers only once it sees the target lead.
RAFT_MOVE_TIMEOUT_S = 5.0
RAFT_STATUS_TIMEOUT_S = 1.0  # a target that cannot answer within this is not offered it
HOME_PROBE_S = 1.0  # the node's own etcd endpoint, asked whether the agent may go back to it
WatchCallback = Callable[[Client, Any], None]


class ClusterStore(AcmeRecords):
    def __init__(
        self, settings: EtcdSettings, request_timeout: float, *, every_endpoint: bool = False
    ) -> None:
        """`every_endpoint`: try each endpoint in turn within one call (client.py)."""
        self.layout = KeyLayout(settings.prefix)
        self.clients = EtcdClients(settings, request_timeout)
        self.every_endpoint = every_endpoint
        self._watch: tuple[Client, int] | None = None

    def _call(self, what: str, function: Callable[[Client], Any], *, writes: bool = False) -> Any:
        return self.clients.call(what, function, every_endpoint=self.every_endpoint, writes=writes)

    def close(self) -> None:
        self._watch = None
        self.clients.discard()

    # --- reads ---------------------------------------------------------------------------

    def read_state(self, *, serializable: bool = False) -> ClusterState:
        """Everything under the prefix in one read. The agent reads serializably from its
        local member (it must keep working while that member is partitioned); radioctl
        reads linearizably."""
        response = self._call(
            "read state",
            lambda client: client.get_prefix_response(self.layout.root, serializable=serializable),
        )
        return decode_cluster_state(self.layout, entries_of(response.kvs), response.header.revision)

    def raft_view(self) -> tuple[int | None, dict[int, str]]:
        """etcd's raft leader (member id) and every member (id -> name), as the current
        endpoint sees them."""

        def read(client: Client) -> tuple[int | None, dict[int, str]]:
            members = {member.id: member.name for member in client.members}
            leader = client.status().leader
            return (leader.id if leader is not None else None), members

        return self._call("read raft leadership", read)

    def move_raft_leader(self, leader: int, targets: Sequence[int]) -> int | None:
        """etcd's MoveLeader (python-etcd3 0.12 has no call for it) to the first of
        `targets` that answers and is ready to lead (coordination/raft.py); the member it
        went to, or None when none is. Sent to the raft leader itself, the only member
        that can hand leadership over: the current endpoint may be another member (an
        agent stays on the one it moved on to when its own stopped answering)."""
        urls = self._call(
            "list members",
            lambda client: {member.id: list(member.client_urls) for member in client.members},
        )
        with self._member_client(leader, urls, RAFT_MOVE_TIMEOUT_S) as (client, endpoint):
            leader_index = self._member_status(client, endpoint).raftIndex
            target = next(
                (
                    member
                    for member in targets
                    if self._ready_to_lead(member, urls, leader, leader_index)
                ),
                None,
            )
            if target is None:
                return None
            try:
                client.maintenancestub.MoveLeader(
                    etcdrpc.MoveLeaderRequest(targetID=target),
                    client.timeout,
                    credentials=client.call_credentials,
                    metadata=client.metadata,
                )
            except grpc.RpcError as error:
                raise EtcdUnavailable(
                    f"move raft leadership via {endpoint}: {describe(error)}"
                ) from error
        return target

    def _ready_to_lead(
        self, member: int, urls: dict[int, list[str]], leader: int, leader_index: int
    ) -> bool:
        try:
            with self._member_client(member, urls, RAFT_STATUS_TIMEOUT_S) as (client, endpoint):
                status = self._member_status(client, endpoint)
        except EtcdUnavailable:
            return False  # down or unreachable: not a target
        return ready_to_lead(leader, leader_index, status.leader, status.raftIndex)

    @contextlib.contextmanager
    def _member_client(
        self, member: int, urls: dict[int, list[str]], timeout: float
    ) -> Iterator[tuple[Client, str]]:
        """A client of that member's own endpoint, outside the endpoint policy."""
        endpoint = next(filter(None, map(endpoint_from_url, urls.get(member, []))), None)
        if endpoint is None:
            raise EtcdUnavailable(f"etcd member {member:x} lists no client URL")
        client = self.clients.client_of(endpoint, timeout)
        try:
            yield client, endpoint
        finally:
            client.close()

    @staticmethod
    def _member_status(client: Client, endpoint: str) -> Any:
        try:
            return client.maintenancestub.Status(
                etcdrpc.StatusRequest(),
                client.timeout,
                credentials=client.call_credentials,
                metadata=client.metadata,
            )
        except grpc.RpcError as error:
            raise EtcdUnavailable(f"status of {endpoint}: {describe(error)}") from error

    def member_client_urls(self, leaving_out: str | None = None) -> list[str]:
        """Every etcd member's client URLs, as the cluster lists them, but those of the
        member named `leaving_out` (the node's own, already its first endpoint)."""
        return self._call(
            "list members",
            lambda client: [
                url
                for member in client.members
                if member.name != leaving_out
                for url in member.client_urls
            ],
        )

    def go_home(self) -> bool:
        """The endpoint policy back on the node's own endpoint once that serves a
        linearizable read (it is with a quorum again); whether it moved."""
        return self.clients.go_home(lambda client: client.get(self.layout.leader), HOME_PROBE_S)

    def leader(self) -> LeaderRecord | None:
        value, metadata = self._call("read leader", lambda client: client.get(self.layout.leader))
        return None if value is None else decode_leader(entry_of(value, metadata))[0]

    def _mounts_with_revisions(self) -> dict[str, tuple[MountSpec, int]]:
        """Valid mounts with their mod revisions; invalid entries are not ours to judge."""
        response = self._call(
            "read mounts", lambda client: client.get_prefix_response(self.layout.mounts)
        )
        mounts = {}
        for entry in entries_of(response.kvs):
            try:
                mount = decode_mount(self.layout, entry)
            except ValidationError:
                continue
            mounts[mount.name] = (mount, entry.mod_revision)
        return mounts

    def mounts(self) -> dict[str, MountSpec]:
        return {name: mount for name, (mount, _) in sorted(self._mounts_with_revisions().items())}

    def mount(self, name: str) -> MountSpec | None:
        found = self._mounts_with_revisions().get(name)
        return found[0] if found else None

    def _settings_with_revision(self) -> tuple[bytes | None, int | None]:
        value, metadata = self._call("read settings", lambda client: client.get(self.layout.config))
        return value, None if metadata is None else metadata.mod_revision

    def settings(self) -> ClusterSettings:
        return settings_from_json(self._settings_with_revision()[0])

    def stored_settings(self) -> Any:
        """The settings document as stored, validated; None when unset."""
        return stored_settings_document(self._settings_with_revision()[0])

    # --- leases and leadership (the agent) ------------------------------------------------

    def grant_lease(self, ttl: float) -> int:
        # Never round down: a shorter lease would break loop_wait + 2 * retry_timeout <= ttl.
        lease = self._call("grant lease", lambda client: client.lease(max(1, math.ceil(ttl))))
        return lease.id

    def refresh_lease(self, lease_id: int) -> int:
        """Remaining TTL in seconds after the refresh; 0 means the lease is gone."""
        replies = self._call("refresh lease", lambda client: list(client.refresh_lease(lease_id)))
        return replies[0].TTL if replies else 0

    def revoke_lease(self, lease_id: int) -> None:
        self._call("revoke lease", lambda client: client.revoke_lease(lease_id), writes=True)

    def _transaction(
        self, what: str, compare: Callable[[Client], list], success: Callable[[Client], list]
    ) -> tuple[bool, list]:
        def run(client: Client) -> tuple[bool, list]:
            return client.transaction(compare=compare(client), success=success(client), failure=[])

        return self._call(what, run, writes=True)

    def campaign(self, name: str, lease_id: int) -> int | None:
        """Take the leader key if nobody holds it; the epoch if we won, else None."""
        key = self.layout.leader
        won, responses = self._transaction(
            "campaign",
            lambda client: [client.transactions.create(key) == 0],
            lambda client: [
                client.transactions.put(key, name, lease=lease_id),
                client.transactions.get(key),
            ],
        )
        if not won:
            return None
        ((_, metadata),) = responses[1]
        return metadata.create_revision

    def resign(self, epoch: int) -> bool:
        """Delete the leader key only if it is still the one from our `epoch`."""
        key = self.layout.leader
        resigned, _ = self._transaction(
            "resign",
            lambda client: [client.transactions.create(key) == epoch],
            lambda client: [client.transactions.delete(key)],
        )
        return resigned

    def claim_transcoder(self, mount: str, name: str, lease_id: int) -> bool:
        """Take `transcoders/<mount>` on our lease if nobody holds it."""
        return self._claim(self.layout.transcoder(mount), name, lease_id)

    def release_transcoder(self, mount: str, name: str) -> bool:
        """Delete `transcoders/<mount>` only while it is still ours."""
        return self._release(self.layout.transcoder(mount), name)

    def _claim(self, key: str, name: str, lease_id: int) -> bool:
        """Put `name` at `key` on our lease if the key does not exist; whether we did."""
        won, _ = self._transaction(
            f"claim {key}",
            lambda client: [client.transactions.create(key) == 0],
            lambda client: [client.transactions.put(key, name, lease=lease_id)],
        )
        return won

    def _release(self, key: str, name: str) -> bool:
        """Delete `key` only while it holds `name`; whether we did."""
        released, _ = self._transaction(
            f"release {key}",
            lambda client: [client.transactions.value(key) == name],
            lambda client: [client.transactions.delete(key)],
        )
        return released

    def move_to_lease(
        self,
        lease_id: int,
        name: str,
        *,
        leader: bool,
        transcoders: Iterable[str],
        status: str | None,
    ) -> int:
        """Attach what this node holds to `lease_id`, each key only while it still holds
        our value (a put keeps the key's create revision, so a leader keeps its epoch);
        how many keys moved."""
        held = {self.layout.transcoder(mount): name for mount in transcoders}
        if leader:
            held[self.layout.leader] = name
        if status is not None:
            held[self.layout.node(name)] = status

        def move(client: Client) -> int:
            moved = 0
            for key, value in held.items():
                done, _ = client.transaction(
                    compare=[client.transactions.value(key) == value],
                    success=[client.transactions.put(key, value, lease=lease_id)],
                    failure=[],
                )
                moved += bool(done)
            return moved

        return self._call("move keys to a new lease", move, writes=True)

    def publish_status(self, name: str, status: str, lease_id: int) -> None:
        key = self.layout.node(name)
        self._call(
            f"put {key}", lambda client: client.put(key, status, lease=lease_id), writes=True
        )

    def finish_handover(self, handover: Handover) -> bool:
        """Delete a handover request that has been served, unless a new one replaced it."""
        key = self.layout.handover
        deleted, _ = self._transaction(
            "finish handover",
            lambda client: [client.transactions.mod(key) == handover.revision],
            lambda client: [client.transactions.delete(key)],
        )
        return deleted

    # --- operators (radioctl) ------------------------------------------------------------

    def request_handover(self, leader: LeaderRecord, to: str | None, lapse_seconds: int) -> int:
        """Ask the leader of `leader.epoch` to step down (for `to`, if named); the request
        lapses by itself after `lapse_seconds` if nobody takes over. Conflict if the leader
        changed or another request is under way. The request's lease, to withdraw it."""
        layout = self.layout
        lease = self._call("grant lease", lambda client: client.lease(lapse_seconds))
        request = encode_handover(Handover(leader.epoch, leader.name, to))
        accepted, _ = self._transaction(
            "request handover",
            lambda client: [
                client.transactions.create(layout.leader) == leader.epoch,
                client.transactions.create(layout.handover) == 0,
            ],
            lambda client: [client.transactions.put(layout.handover, request, lease=lease.id)],
        )
        if not accepted:
            self.revoke_lease(lease.id)
            raise Conflict(
                "the leader changed or a handover is already under way; "
                "check `radioctl status` and run again"
            )
        return lease.id

    def drain(self, name: str, since: int) -> None:
        key = self.layout.drain(name)
        self._call(
            f"put {key}", lambda client: client.put(key, encode_drain_mark(since)), writes=True
        )

    def register_node(self, name: str) -> None:
        """This node is known to the cluster, and up."""
        key = self.layout.known_node(name)
        self._call(f"put {key}", lambda client: client.put(key, encode_known_node(None)))

    def mark_down(self, name: str, since: float) -> bool:
        """The leader's mark on a known node whose status expired: only while it still has
        no status and its record says up (it may have come back meanwhile)."""
        known, status = self.layout.known_node(name), self.layout.node(name)
        marked, _ = self._transaction(
            f"mark {name} down",
            lambda client: [
                client.transactions.version(status) == 0,
                client.transactions.value(known) == encode_known_node(None),
            ],
            lambda client: [client.transactions.put(known, encode_known_node(since))],
        )
        return bool(marked)

    def forget_node(self, name: str) -> bool:
        """False if the node was not known."""
        key = self.layout.known_node(name)
        return bool(self._call(f"delete {key}", lambda client: client.delete(key), writes=True))

    def undrain(self, name: str) -> bool:
        """False if the node was not draining."""
        key = self.layout.drain(name)
        return bool(self._call(f"delete {key}", lambda client: client.delete(key), writes=True))

    def update_settings(
        self, change: Callable[[ClusterSettings], ClusterSettings]
    ) -> ClusterSettings:
        """Compare-and-set the settings to `change(current)`."""
        value, revision = self._settings_with_revision()
        updated = change(settings_from_json(value))
        self._put_settings_if_unchanged(updated.to_json(), revision)
        return updated

    def restore_settings(self, document: Any) -> bool:
        """Write a backup's settings document unless the same settings are in place."""
        restored = settings_from_json(json.dumps(document))  # ValidationError first
        value, revision = self._settings_with_revision()
        if value is not None and settings_from_json(value) == restored:
            return False
        self._put_settings_if_unchanged(json.dumps(document, sort_keys=True), revision)
        return True

    def _put_settings_if_unchanged(self, text: str, revision: int | None) -> None:
        key = self.layout.config
        written, _ = self._transaction(
            "write settings",
            lambda client: [unchanged_since(client, key, revision)],
            lambda client: [client.transactions.put(key, text)],
        )
        if not written:
            raise Conflict("the settings changed meanwhile; run again")

    # --- programmes (radioctl) ----------------------------------------------------------

    def preference(self, programme: str) -> str | None:
        value, _ = self._call(
            "read preference", lambda client: client.get(self.layout.preference(programme))
        )
        return None if value is None else value.decode(errors="replace")

    def set_preference(self, programme: str, input_name: str | None) -> MountSpec:
        """Prefer `input_name` on `programme` (None: the automatic order). Compare-and-set
        on the programme's spec and on the preference as read: NoSuchMount for a mount that
        is not a programme, ValidationError for an input it does not have, Conflict if
        either changed meanwhile. The programme, as it was when the preference was set."""
        key, mount_key = self.layout.preference(programme), self.layout.mount(programme)
        found = self._mounts_with_revisions().get(programme)
        if found is None or found[0].programme is None:
            raise NoSuchMount(f"{programme!r} is not a programme")
        mount, mount_revision = found
        assert mount.programme is not None  # noqa: S101 - checked above; for the type checker
        if input_name is not None and input_name not in mount.programme.input_names:
            raise ValidationError(
                [
                    f"input: {input_name!r} is not an input of {programme!r} "
                    f"(inputs: {', '.join(mount.programme.input_names)})"
                ]
            )
        _, metadata = self._call("read preference", lambda client: client.get(key))
        revision = None if metadata is None else metadata.mod_revision
        written, _ = self._transaction(
            f"write {key}",
            lambda client: [
                client.transactions.mod(mount_key) == mount_revision,
                unchanged_since(client, key, revision),
            ],
            lambda client: [
                client.transactions.delete(key)
                if input_name is None
                else client.transactions.put(key, input_name)
            ],
        )
        if not written:
            raise Conflict(f"programme {programme!r} changed meanwhile; run again")
        return mount

    # --- titles (the front doors) --------------------------------------------------------

    def now_playing(self, mount: str) -> tuple[NowPlaying | None, int | None]:
        """The mount's titles and their record's revision (None, None: no title yet)."""
        value, metadata = self._call(
            "read titles", lambda client: client.get(self.layout.title(mount))
        )
        if value is None:
            return None, None
        try:
            return now_playing_from_json(value), metadata.mod_revision
        except ValidationError:
            return None, metadata.mod_revision  # garbage (a hand edit): start afresh

    def set_title(self, mount: str, text: str, at: float) -> bool:
        """Put `text` on air on `mount` (at Unix time `at`); False if it already was.
        Compare-and-set: two front doors taking titles at once both land, in some order.
        Refused (NoSuchMount) once the mount is gone."""
        for _ in range(TITLE_WRITE_TRIES):
            current, revision = self.now_playing(mount)
            updated = with_title(current, text, at)
            if updated is None:
                return False
            if self._put_title_if_unchanged(mount, updated, revision):
                return True
            if self.mount(mount) is None:
                raise NoSuchMount(f"mount {mount!r} does not exist")
        raise Conflict(f"the titles of {mount!r} keep changing; send it again")

    def _put_title_if_unchanged(
        self, mount: str, now_playing: NowPlaying, revision: int | None
    ) -> bool:
        key, mount_key = self.layout.title(mount), self.layout.mount(mount)
        written, _ = self._transaction(
            f"write {key}",
            lambda client: [
                unchanged_since(client, key, revision),
                client.transactions.version(mount_key) > 0,
            ],
            lambda client: [client.transactions.put(key, now_playing.to_json())],
        )
        return written

    # --- mounts (radioctl and tests) -----------------------------------------------------

    @staticmethod
    def _check_with(
        mounts: dict[str, MountSpec], changed: MountSpec | None, removed: str | None = None
    ) -> None:
        """ValidationError for rules between mounts that the change would newly break."""
        after = dict(mounts)
        if removed is not None:
            after.pop(removed, None)
        if changed is not None:
            after[changed.name] = changed
        new_problems = set(cross_mount_problems(after)) - set(cross_mount_problems(mounts))
        if new_problems:
            raise ValidationError(sorted(new_problems))

    def create_mount(self, fields: dict) -> MountSpec:
        mount = parse_mount(fields)
        existing = self._mounts_with_revisions()
        if mount.name in existing:
            raise Conflict(f"mount {mount.name!r} already exists")
        self._check_with({name: spec for name, (spec, _) in existing.items()}, mount)
        key = self.layout.mount(mount.name)
        created, _ = self._transaction(
            f"create {key}",
            lambda client: [client.transactions.create(key) == 0],
            lambda client: [client.transactions.put(key, mount.to_json())],
        )
        if not created:
            raise Conflict(f"mount {mount.name!r} was created meanwhile")
        return mount

    def update_mount(self, name: str, changes: dict) -> MountSpec:
        existing = self._mounts_with_revisions()
        if name not in existing:
            raise Conflict(f"mount {name!r} does not exist")
        current, revision = existing[name]
        if "name" in changes and changes["name"] != name:
            raise ValidationError([f"name: a mount cannot be renamed ({name!r})"])
        mount = parse_mount({**current.as_dict(), **changes})
        self._check_with({n: spec for n, (spec, _) in existing.items()}, mount)
        self._write_if_unchanged(name, revision, mount, self._stale_preference(name, mount))
        return mount

    def delete_mount(self, name: str, *, force: bool = False) -> None:
        """Refuses a mount others depend on (a transcode parent, a fallback) unless
        `force`: then the dependents lose their source until it comes back."""
        existing = self._mounts_with_revisions()
        if name not in existing:
            raise Conflict(f"mount {name!r} does not exist")
        _, revision = existing[name]
        if not force:
            self._check_with({n: spec for n, (spec, _) in existing.items()}, None, removed=name)
        self._write_if_unchanged(name, revision, None)

    def _goes_with(self, name: str) -> tuple[str, ...]:
        """Keys a mount deleted takes with it: its titles, a programme's preferred input."""
        return (self.layout.title(name), self.layout.preference(name))

    def _stored_preferences(self) -> dict[str, str]:
        response = self._call(
            "read preferences",
            lambda client: client.get_prefix_response(self.layout.preferences),
        )
        return {
            entry.key.removeprefix(self.layout.preferences): entry.value.decode(errors="replace")
            for entry in entries_of(response.kvs)
        }

    def _stale_preference(
        self, name: str, after: MountSpec, stored: dict[str, str] | None = None
    ) -> tuple[str, ...]:
        """The preference key of `name` if its preferred input is no longer one of its
        inputs after an edit: removed with the edit, so that it never comes back by
        itself when the input is added again (a guest on air nobody asked for)."""
        preferences = self._stored_preferences() if stored is None else stored
        if name not in preferences:
            return ()
        inputs = after.programme.input_names if after.programme is not None else ()
        return () if preferences[name] in inputs else (self.layout.preference(name),)

    def _write_if_unchanged(
        self,
        name: str,
        revision: int,
        mount: MountSpec | None,
        also_delete: tuple[str, ...] = (),
    ) -> None:
        key = self.layout.mount(name)
        written, _ = self._transaction(
            f"write {key}",
            lambda client: [client.transactions.mod(key) == revision],
            lambda client: (
                [client.transactions.delete(key)]
                + [client.transactions.delete(other) for other in self._goes_with(name)]
                if mount is None
                else [client.transactions.put(key, mount.to_json())]
                + [client.transactions.delete(other) for other in also_delete]
            ),
        )
        if not written:
            raise Conflict(f"mount {name!r} changed meanwhile; read it again")

    def apply_mount_changes(self, changes: list[MountChange]) -> None:
        """Creates, updates and deletes, each guarded by the revision the plan was made
        from. Up to TRANSACTION_OPERATIONS writes go in one transaction, all or none
        (Conflict); larger plans are written in such batches."""
        current = self._mounts_with_revisions()
        preferences = self._stored_preferences()
        guards: list[_Guard] = []
        for change in changes:
            if change.action not in ("create", "update", "delete"):
                continue  # unchanged or unlisted: nothing to write
            key = self.layout.mount(change.name)
            if (change.after is None) != (change.action == "delete"):
                # A planning bug, never bad input; the mount is not shown (its password).
                raise ValueError(
                    f"a planned {change.action} of {change.name!r} has the wrong shape"
                )
            after = None if change.after is None else change.after.to_json()
            if change.action == "create":
                guards.append(_Guard(key, None, after))
                continue
            if current.get(change.name, (None, None))[0] != change.before:
                raise Conflict(f"mount {change.name!r} changed meanwhile; run again")
            deletes = (
                self._goes_with(change.name)
                if change.after is None
                else self._stale_preference(change.name, change.after, preferences)
            )
            guards.append(_Guard(key, current[change.name][1], after, deletes))
        batches = _batches(guards)
        for done, batch in batches:
            applied, _ = self._transaction(
                "apply mount changes",
                functools.partial(_batch_compares, batch),
                functools.partial(_batch_operations, batch),
            )
            if not applied:
                applied_note = f"{done} of {len(guards)} changes were applied; " if done else ""
                raise Conflict(f"mounts changed meanwhile; {applied_note}run again")

    # --- watch ---------------------------------------------------------------------------

    def watching(self) -> bool:
        return self._watch is not None and self.clients.is_current(self._watch[0])

    def watch(self, callback: WatchCallback) -> None:
        """Call `callback(client, response)` on python-etcd3's watch thread for every
        change under the prefix (response is an Exception when the watch broke)."""

        def add_watch(client: Client) -> tuple[Client, int]:
            return client, client.add_watch_prefix_callback(
                self.layout.root, functools.partial(callback, client)
            )

        client, _ = self.clients.current()
        try:
            self._watch = self._call("watch", add_watch)
        except Exception:
            # A failed create leaves python-etcd3's watch thread retrying in a tight loop:
            # closing that client ends it (only that one: another thread may be using a
            # newer one); the next call builds a fresh one.
            self.clients.discard(client)
            raise

    def changed_keys(self, response: Any) -> list[str]:
        return [event.key.decode(errors="replace") for event in response.events]

    def drop_watch_client(self, client: Client) -> bool:
        """A watch broke: close its client if it is still the current one."""
        if not self.clients.is_current(client):
            return False
        self._watch = None
        self.clients.discard(client)
        return True


def unchanged_since(client: Client, key: str, revision: int | None) -> Any:
    """The compare of a compare-and-set: `key` still at `revision` (None: still absent)."""
    if revision is None:
        return client.transactions.create(key) == 0
    return client.transactions.mod(key) == revision


@dataclass(frozen=True)
class _Guard:
    """One write of a batch: `key` to `value` (None: deleted) if still at `revision`
    (None: still absent), and keys that go with it (a deleted mount's titles)."""

    key: str
    revision: int | None
    value: str | None
    also_delete: tuple[str, ...] = ()

    @property
    def operations(self) -> int:
        return 1 + len(self.also_delete)


def _batches(guards: list[_Guard]) -> list[tuple[int, list[_Guard]]]:
    """Guards in batches of at most TRANSACTION_OPERATIONS writes, each with the number
    of guards before it."""
    batches: list[tuple[int, list[_Guard]]] = []
    operations = TRANSACTION_OPERATIONS
    for index, guard in enumerate(guards):
        if operations + guard.operations > TRANSACTION_OPERATIONS:
            batches.append((index, []))
            operations = 0
        batches[-1][1].append(guard)
        operations += guard.operations
    return batches


def _batch_compares(batch: list[_Guard], client: Client) -> list:
    return [unchanged_since(client, guard.key, guard.revision) for guard in batch]


def _batch_operations(batch: list[_Guard], client: Client) -> list:
    operations = []
    for guard in batch:
        if guard.value is None:
            operations.append(client.transactions.delete(guard.key))
        else:
            operations.append(client.transactions.put(guard.key, guard.value))
        operations += [client.transactions.delete(key) for key in guard.also_delete]
    return operations
