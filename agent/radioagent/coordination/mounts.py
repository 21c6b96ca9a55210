"""Create, update and delete mounts in etcd: the internal API behind radioctl and tests.

Blocking (python-etcd3), for command-line tools; the agent itself only reads mounts.
Every write is validated first, alone and against the other mounts, and is a
compare-and-set, so two operators editing at once cannot silently overwrite each other.
"""

from __future__ import annotations

import etcd3

from radioagent.coordination.keys import KeyLayout
from radioagent.model import MountSpec, cross_mount_problems, mount_from_json, parse_mount
from radioagent.radios import MountChange
from radioagent.validation import ValidationError

TRANSACTION_OPERATIONS = 100


class MountConflict(Exception):
    """The mount exists (create), does not exist (update, delete), or changed meanwhile."""


class MountRepository:
    def __init__(self, client: etcd3.Etcd3Client, layout: KeyLayout) -> None:
        self.client = client
        self.layout = layout

    def _read(self) -> dict[str, tuple[MountSpec, int]]:
        """Valid mounts with their mod revisions; invalid entries are not ours to judge."""
        mounts = {}
        for value, metadata in self.client.get_prefix(self.layout.mounts):
            try:
                mount = mount_from_json(value)
            except ValidationError:
                continue
            if self.layout.mount(mount.name) != metadata.key.decode(errors="replace"):
                continue  # a spec filed under another mount's key
            mounts[mount.name] = (mount, metadata.mod_revision)
        return mounts

    def list(self) -> dict[str, MountSpec]:
        return {name: mount for name, (mount, _) in sorted(self._read().items())}

    def get(self, name: str) -> MountSpec | None:
        found = self._read().get(name)
        return found[0] if found else None

    def _check_with(
        self, mounts: dict[str, MountSpec], changed: MountSpec | None, removed: str | None = None
    ) -> None:
        after = dict(mounts)
        if removed is not None:
            after.pop(removed, None)
        if changed is not None:
            after[changed.name] = changed
        new_problems = set(cross_mount_problems(after)) - set(cross_mount_problems(mounts))
        if new_problems:
            raise ValidationError(sorted(new_problems))

    def create(self, fields: dict) -> MountSpec:
        mount = parse_mount(fields)
        existing = self._read()
        if mount.name in existing:
            raise MountConflict(f"mount {mount.name!r} already exists")
        self._check_with({name: spec for name, (spec, _) in existing.items()}, mount)
        key = self.layout.mount(mount.name)
        created, _ = self.client.transaction(
            compare=[self.client.transactions.create(key) == 0],
            success=[self.client.transactions.put(key, mount.to_json())],
            failure=[],
        )
        if not created:
            raise MountConflict(f"mount {mount.name!r} was created meanwhile")
        return mount

    def update(self, name: str, changes: dict) -> MountSpec:
        existing = self._read()
        if name not in existing:
            raise MountConflict(f"mount {name!r} does not exist")
        current, revision = existing[name]
        if "name" in changes and changes["name"] != name:
            raise ValidationError([f"name: a mount cannot be renamed ({name!r})"])
        fields = {**current.as_dict(), **changes}
        mount = parse_mount(fields)
        self._check_with({n: spec for n, (spec, _) in existing.items()}, mount)
        key = self.layout.mount(name)
        updated, _ = self.client.transaction(
            compare=[self.client.transactions.mod(key) == revision],
            success=[self.client.transactions.put(key, mount.to_json())],
            failure=[],
        )
        if not updated:
            raise MountConflict(f"mount {name!r} changed meanwhile; read it again")
        return mount

    def delete(self, name: str, *, force: bool = False) -> None:
        """Refuses a mount others depend on (a transcode parent, a fallback) unless
        `force`: then the dependents lose their source until it comes back."""
        existing = self._read()
        if name not in existing:
            raise MountConflict(f"mount {name!r} does not exist")
        _, revision = existing[name]
        if not force:
            self._check_with({n: spec for n, (spec, _) in existing.items()}, None, removed=name)
        key = self.layout.mount(name)
        deleted, _ = self.client.transaction(
            compare=[self.client.transactions.mod(key) == revision],
            success=[self.client.transactions.delete(key)],
            failure=[],
        )
        if not deleted:
            raise MountConflict(f"mount {name!r} changed meanwhile; read it again")

    def apply_changes(self, changes: list[MountChange]) -> None:
        """Creates, updates and deletes, each guarded by the revision the plan was made
        from. Up to TRANSACTION_OPERATIONS changes go in one transaction, all or none
        (MountConflict); etcd refuses bigger transactions (128 operations by default), so
        larger plans are written in such batches."""
        current = self._read()
        compares, operations = [], []
        for change in changes:
            key = self.layout.mount(change.name)
            if change.action == "create":
                compares.append(self.client.transactions.create(key) == 0)
                operations.append(self.client.transactions.put(key, change.after.to_json()))
            elif change.action in ("update", "delete"):
                if current.get(change.name, (None, None))[0] != change.before:
                    raise MountConflict(f"mount {change.name!r} changed meanwhile; run again")
                revision = current[change.name][1]
                compares.append(self.client.transactions.mod(key) == revision)
                operations.append(
                    self.client.transactions.put(key, change.after.to_json())
                    if change.action == "update"
                    else self.client.transactions.delete(key)
                )
        for start in range(0, len(operations), TRANSACTION_OPERATIONS):
            batch = slice(start, start + TRANSACTION_OPERATIONS)
            applied, _ = self.client.transaction(
                compare=compares[batch], success=operations[batch], failure=[]
            )
            if not applied:
                done = f"{start} of {len(operations)} changes were applied; " if start else ""
                raise MountConflict(f"mounts changed meanwhile; {done}run again")
