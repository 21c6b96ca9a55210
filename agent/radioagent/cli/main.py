"""radioctl's commands: parse, run, and map failures to exit codes (0 ok, 1 runtime
failure such as etcd unreachable, 2 usage or validation error), one line each, no
traceback."""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
from collections.abc import Callable
from typing import Any

import yaml

from radioagent import __version__
from radioagent.cli.cert_commands import add_cert_commands
from radioagent.cli.cluster_commands import NoLeaderChange, add_cluster_commands
from radioagent.cli.output import change_lines, mount_show_text, mounts_text, status_text
from radioagent.cli.programme_commands import add_programme_commands
from radioagent.config import load_etcd_settings
from radioagent.model import MountSpec, cross_mount_problems, parse_mount
from radioagent.radios import MountChange, parse_radio_file, plan_apply
from radioagent.settings import settings_from_json
from radioagent.status import mount_document, status_document
from radioagent.store.cluster import ClusterStore
from radioagent.store.errors import Conflict, EtcdUnavailable
from radioagent.validation import ValidationError
from radioagent.yamlfile import load_yaml_text, read_text

DEFAULT_CONFIG_PATH = "/etc/radio-agent/config.yml"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
BACKUP_FORMAT = "radio-cluster-backup"
BACKUP_VERSION = 1
REQUEST_TIMEOUT_SECONDS = 5


def new_source_password() -> str:
    return secrets.token_urlsafe(18)


# Fields whose values are text as typed: YAML would turn "123456" or "yes" into numbers
# and booleans, and choke on a password starting with "!" or "@".
TEXT_FIELDS = {
    "name",
    "source_password",
    "source_username",
    "radio",
    "fallback",
    "relay_url",
    "transcode.parent",
    "format.codec",
    "transcode.format.codec",
}


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`key=value` pairs, dotted keys for nested fields; values read as YAML scalars
    except text fields. Messages never repeat a value (it may be a password)."""
    fields: dict[str, Any] = {}
    for assignment in assignments:
        key, separator, raw_value = assignment.partition("=")
        if not separator or not key:
            raise ValidationError([f"--set {key or assignment!r}: expected KEY=VALUE"])
        if key in TEXT_FIELDS:
            value: Any = raw_value
        elif not raw_value:
            value = None
        else:
            try:
                value = yaml.safe_load(raw_value)
            except yaml.YAMLError as error:
                raise ValidationError(
                    [f"--set {key}: the value is not a number, true/false or text YAML can read"]
                ) from error
        target = fields
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ValidationError([f"--set {key}: {parent} is not a mapping"])
        target[leaf] = value
    return fields


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


# --- commands ----------------------------------------------------------------------------


def cmd_status(store: ClusterStore, arguments: argparse.Namespace) -> int:
    state = store.read_state()
    if arguments.json:
        print(json.dumps(status_document(state), indent=2, sort_keys=True))
    else:
        print(status_text(state))
    for problem in state.problems:
        print(f"radioctl: warning: ignored in etcd: {problem}", file=sys.stderr)
    return EXIT_OK


def cmd_mount_list(store: ClusterStore, arguments: argparse.Namespace) -> int:
    state = store.read_state()
    if arguments.json:
        print(
            json.dumps(
                [mount.public_dict() for _, mount in sorted(state.mounts.items())],
                indent=2,
            )
        )
    else:
        print(mounts_text(state) or "no mounts")
    return EXIT_OK


def cmd_mount_show(store: ClusterStore, arguments: argparse.Namespace) -> int:
    """The mount, its listeners and air, and what it plays now and played before."""
    document = mount_document(store.read_state(), arguments.name)
    if document is None:
        raise Conflict(f"mount {arguments.name!r} does not exist")
    print(
        json.dumps(document, indent=2, sort_keys=True)
        if arguments.json
        else mount_show_text(document)
    )
    return EXIT_OK


def cmd_mount_create(store: ClusterStore, arguments: argparse.Namespace) -> int:
    fields = parse_assignments(arguments.set or [])
    generated = "source_password" not in fields
    if generated:
        fields["source_password"] = new_source_password()
    mount = store.create_mount({**fields, "name": arguments.name})
    print(f"created {mount.path}")
    if generated and not mount.produced:
        # Printed once, on the terminal only: it is nowhere else but in etcd. A mount the
        # cluster makes (transcode, programme) needs no studio, so its password stays unsaid.
        print(f"source password (shown once): {mount.source_password}")
    return EXIT_OK


def cmd_mount_edit(store: ClusterStore, arguments: argparse.Namespace) -> int:
    current = store.mount(arguments.name)
    if current is None:
        raise Conflict(f"mount {arguments.name!r} does not exist")
    fields = merged(current.as_dict(), parse_assignments(arguments.set or []))
    for key in arguments.unset or []:
        if key in ("name", "source_password"):
            raise ValidationError([f"--unset {key}: a mount always has one"])
        fields.pop(key, None)
    if "name" in fields and fields["name"] != arguments.name:
        raise ValidationError([f"name: a mount cannot be renamed ({arguments.name!r})"])
    updated = parse_mount(fields)
    if updated == current:
        print(f"/{arguments.name}: no change")
        return EXIT_OK
    store.update_mount(arguments.name, json.loads(updated.to_json()))
    print(f"updated /{arguments.name}")
    return EXIT_OK


def cmd_mount_delete(store: ClusterStore, arguments: argparse.Namespace) -> int:
    store.delete_mount(arguments.name, force=arguments.force)
    print(f"deleted /{arguments.name}")
    return EXIT_OK


def cmd_apply(store: ClusterStore, arguments: argparse.Namespace) -> int:
    radio_file = parse_radio_file(load_yaml_text(arguments.file))
    changes = plan_apply(
        radio_file, store.mounts(), prune=arguments.prune, new_password=new_source_password
    )
    if not arguments.dry_run:
        store.apply_mount_changes(changes)
    for line in change_lines(radio_file.radio, changes, dry_run=arguments.dry_run):
        print(line)
    return EXIT_OK


def cmd_backup(store: ClusterStore, arguments: argparse.Namespace) -> int:
    state = store.read_state()
    for problem in state.problems:
        print(f"radioctl: warning: not in the backup: {problem}", file=sys.stderr)
    print(
        json.dumps(
            {
                "format": BACKUP_FORMAT,
                "version": BACKUP_VERSION,
                "mounts": [mount.as_dict() for _, mount in sorted(state.mounts.items())],
                "settings": store.stored_settings(),
            },
            indent=2,
            sort_keys=True,
        )
    )
    return EXIT_OK


def restore_plan(document: Any, existing: dict[str, MountSpec]) -> list[MountChange]:
    if not isinstance(document, dict) or document.get("format") != BACKUP_FORMAT:
        raise ValidationError([f"backup: not a {BACKUP_FORMAT} document"])
    if document.get("version") != BACKUP_VERSION:
        raise ValidationError(
            [f"backup.version: {document.get('version')!r} is not {BACKUP_VERSION}"]
        )
    mounts = document.get("mounts") or []
    if not isinstance(mounts, list):
        raise ValidationError(["backup.mounts: expected a list"])
    settings = document.get("settings")
    if settings is not None:
        settings_from_json(json.dumps(settings))  # ValidationError before anything is written
    problems, restored = [], {}
    for index, fields in enumerate(mounts):
        try:
            mount = parse_mount(fields)
        except ValidationError as error:
            problems += [f"backup.mounts[{index}]: {problem}" for problem in error.problems]
            continue
        if mount.name in restored:
            problems.append(f"backup.mounts[{index}]: {mount.name!r} appears twice")
        restored[mount.name] = mount
    problems += [f"backup: {problem}" for problem in cross_mount_problems({**existing, **restored})]
    if problems:
        raise ValidationError(problems)
    changes = []
    for name, mount in sorted(restored.items()):
        before = existing.get(name)
        action = "create" if before is None else "unchanged" if before == mount else "update"
        changes.append(MountChange(action, name, before, mount))
    return changes


def cmd_restore(store: ClusterStore, arguments: argparse.Namespace) -> int:
    try:
        document = json.loads(read_text(arguments.file))
    except ValueError as error:
        raise ValidationError([f"{arguments.file}: not JSON ({error})"]) from error
    changes = restore_plan(document, store.mounts())
    store.apply_mount_changes(changes)
    settings = document.get("settings")
    settings_changed = settings is not None and store.restore_settings(settings)
    counts = {
        action: sum(change.action == action for change in changes)
        for action in ("create", "update", "unchanged")
    }
    print(
        f"restored: {counts['create']} created, {counts['update']} updated, "
        f"{counts['unchanged']} unchanged; settings "
        f"{'restored' if settings_changed else 'unchanged'}"
    )
    return EXIT_OK


# --- parser and error handling -----------------------------------------------------------


def _add_mount_commands(commands: Any) -> None:
    mount = commands.add_parser("mount", help="list, show, create, edit, delete mounts")
    mount_commands = mount.add_subparsers(dest="mount_command", required=True, metavar="ACTION")
    listing = mount_commands.add_parser("list", help="every mount")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_mount_list)
    show = mount_commands.add_parser("show", help="one mount (never its password)")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=cmd_mount_show)
    assignment_help = (
        "set a field, dotted for nested ones, e.g. format.codec=vorbis, "
        "transcode.parent=live.mp3, relay_url=http://host/stream"
    )
    create = mount_commands.add_parser("create", help="a new mount; prints its password once")
    create.add_argument("name")
    create.add_argument("--set", action="append", metavar="KEY=VALUE", help=assignment_help)
    create.set_defaults(run=cmd_mount_create)
    edit = mount_commands.add_parser("edit", help="change fields of a mount")
    edit.add_argument("name")
    edit.add_argument("--set", action="append", metavar="KEY=VALUE", help=assignment_help)
    edit.add_argument(
        "--unset", action="append", metavar="KEY", help="reset a top-level field to its default"
    )
    edit.set_defaults(run=cmd_mount_edit)
    delete = mount_commands.add_parser("delete", help="remove a mount")
    delete.add_argument("name")
    delete.add_argument(
        "--force", action="store_true", help="even if other mounts transcode or fall back to it"
    )
    delete.set_defaults(run=cmd_mount_delete)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radioctl",
        description="Operate a radio cluster: status, mounts, radios, backups.",
    )
    parser.add_argument("--version", action="version", version=f"radioctl {__version__}")
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG_PATH,
        help=f"the agent's config file; its etcd section is used (default {DEFAULT_CONFIG_PATH})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = commands.add_parser("status", help="nodes, leader and mounts at a glance")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=cmd_status)

    _add_mount_commands(commands)

    apply = commands.add_parser("apply", help="make a radio's mounts match its YAML file")
    apply.add_argument("-f", "--file", required=True, help="the radio's YAML file; - reads stdin")
    apply.add_argument("--dry-run", action="store_true", help="show what would change")
    apply.add_argument(
        "--prune",
        action="store_true",
        help="delete this radio's mounts that the file no longer lists",
    )
    apply.set_defaults(run=cmd_apply)

    add_cluster_commands(commands)
    add_cert_commands(commands)
    add_programme_commands(commands)

    backup = commands.add_parser("backup", help="mounts, passwords and settings as JSON")
    backup.set_defaults(run=cmd_backup)
    restore = commands.add_parser("restore", help="create or update what a backup holds")
    restore.add_argument("file")
    restore.set_defaults(run=cmd_restore)
    return parser


def open_store(config_path: str) -> ClusterStore:
    """radioctl's way to etcd: the agent's own config file (its `etcd` section only);
    each call tries every endpoint before giving up."""
    settings = load_etcd_settings(config_path)
    return ClusterStore(settings, REQUEST_TIMEOUT_SECONDS, every_endpoint=True)


def main(argv: list[str] | None = None) -> int:
    # Every failure is reported in one line of radioctl's own; the store's log lines
    # (an endpoint switched, say) are for the agent's journal.
    logging.disable(logging.WARNING)
    arguments = build_parser().parse_args(argv)
    run: Callable[[ClusterStore, argparse.Namespace], int] = arguments.run
    store: ClusterStore | None = None
    try:
        store = open_store(arguments.config)
        return run(store, arguments)
    except ValidationError as error:
        for problem in error.problems:
            print(f"radioctl: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except Conflict as error:
        print(f"radioctl: {error}", file=sys.stderr)
        return EXIT_USAGE
    except EtcdUnavailable as error:
        print(f"radioctl: etcd: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except NoLeaderChange as error:
        print(f"radioctl: {error}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if store is not None:
            store.close()
