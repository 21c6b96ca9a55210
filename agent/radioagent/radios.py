"""A radio's file (`inventory/<site>/radios/<radio>.yml`) and what applying it changes.
Pure: the plan is computed from the file and the mounts etcd holds; radioctl executes it.

    radio: radio-one
    mounts:
      - name: live.mp3
        format: {codec: mp3, bitrate_kbps: 128}
      - name: low.mp3
        transcode: {parent: live.mp3, format: {codec: mp3, bitrate_kbps: 48}}

Declarative: a listed mount ends up exactly as written (fields left out take their
defaults), except its source password, kept from etcd unless the file sets one (a new
mount gets a generated one). Mounts of this radio missing from the file are deleted only
with `prune`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from radioagent.model import (
    MOUNT_NAME_DESCRIPTION,
    MOUNT_NAME_PATTERN,
    MountSpec,
    cross_mount_problems,
    parse_mount,
)
from radioagent.validation import ValidationError, check_string, unknown_keys


@dataclass(frozen=True)
class RadioFile:
    radio: str
    mounts: tuple[dict[str, Any], ...]


def parse_radio_file(raw: Any) -> RadioFile:
    if not isinstance(raw, dict):
        raise ValidationError(["radio file: expected a mapping with `radio` and `mounts`"])
    problems = unknown_keys("", raw, {"radio", "mounts"})
    radio = raw.get("radio")
    if radio is None:
        problems.append("radio: missing")
    else:
        problem = check_string("radio", radio, MOUNT_NAME_PATTERN, MOUNT_NAME_DESCRIPTION, 63)
        problems += [problem] if problem else []
    mounts = raw.get("mounts", [])
    if not isinstance(mounts, list) or not all(isinstance(mount, dict) for mount in mounts):
        problems.append("mounts: expected a list of mappings")
        mounts = []
    names = [repr(mount.get("name")) for mount in mounts]  # repr: any YAML value hashes
    problems += [
        f"mounts: {name} is listed more than once"
        for name in sorted({name for name in names if names.count(name) > 1})
    ]
    for index, mount in enumerate(mounts):
        if "radio" in mount and mount["radio"] != radio:
            problems.append(f"mounts[{index}].radio: {mount['radio']!r} is not {radio!r}")
    if problems:
        raise ValidationError(problems)
    assert isinstance(radio, str)  # noqa: S101 - checked above; tells the type checker
    return RadioFile(radio, tuple(mounts))


@dataclass(frozen=True)
class MountChange:
    action: str  # "create", "update", "unchanged", "delete", "unlisted"
    name: str
    before: MountSpec | None
    after: MountSpec | None
    changed_fields: tuple[str, ...] = ()
    password_generated: bool = False


def flat_fields(mount: MountSpec) -> dict[str, Any]:
    """Dotted field names -> values, for readable diffs. A transcoded mount's `format` is
    its `transcode.format`: only the latter is named."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}{key}.", inner)
        else:
            flat[prefix.rstrip(".")] = value

    fields = mount.as_dict()
    if mount.transcode is not None:
        del fields["format"]
    walk("", fields)
    return flat


def changed_fields(before: MountSpec, after: MountSpec) -> tuple[str, ...]:
    old, new = flat_fields(before), flat_fields(after)
    return tuple(sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key)))


def plan_apply(
    radio_file: RadioFile,
    existing: dict[str, MountSpec],
    *,
    prune: bool,
    new_password: Callable[[], str],
) -> list[MountChange]:
    """What applying the file does, mount by mount; ValidationError if any listed mount
    is invalid, belongs to another radio, or the result breaks a rule between mounts."""
    problems: list[str] = []
    changes: list[MountChange] = []
    for index, fields in enumerate(radio_file.mounts):
        name = fields.get("name")
        before = existing.get(name) if isinstance(name, str) else None
        if before is not None and before.radio != radio_file.radio:
            problems.append(
                f"mounts[{index}]: mount {name!r} belongs to "
                f"{'no radio' if before.radio is None else 'radio ' + repr(before.radio)}"
            )
            continue
        password = fields.get("source_password") or (before.source_password if before else None)
        generated = password is None
        try:
            after = parse_mount(
                {
                    **fields,
                    "radio": radio_file.radio,
                    "source_password": new_password() if generated else password,
                }
            )
        except ValidationError as error:
            problems += [f"mounts[{index}] ({name}): {problem}" for problem in error.problems]
            continue
        if before is None:
            changes.append(MountChange("create", after.name, None, after, (), generated))
        elif before == after:
            changes.append(MountChange("unchanged", after.name, before, after))
        else:
            changes.append(
                MountChange("update", after.name, before, after, changed_fields(before, after))
            )
    listed = {change.name for change in changes}
    for name, mount in sorted(existing.items()):
        if mount.radio == radio_file.radio and name not in listed and not problems:
            changes.append(MountChange("delete" if prune else "unlisted", name, mount, None))
    final = {name: mount for name, mount in existing.items()}
    for change in changes:
        if change.action == "delete":
            final.pop(change.name, None)
        elif change.after is not None:
            final[change.name] = change.after
    before_problems = set(cross_mount_problems(existing))
    problems += [
        problem for problem in cross_mount_problems(final) if problem not in before_problems
    ]
    if problems:
        raise ValidationError(problems)
    return changes
