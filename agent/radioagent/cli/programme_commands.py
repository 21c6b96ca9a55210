"""radioctl programme: each programme's inputs, the preferred one and the one really on
air; an operator's preference, kept in etcd (compare-and-set) so that it survives a
Liquidsoap restart and a takeover on another node."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from radioagent.cli.output import on_air_text, programmes_text, table
from radioagent.coordination.state import ClusterState
from radioagent.status import programme_report, programme_reports
from radioagent.store.errors import NoSuchMount

if TYPE_CHECKING:  # the unit tier imports this module without etcd3
    from radioagent.store.cluster import ClusterStore

EXIT_OK = 0


def programme_show_text(name: str, report: dict[str, Any]) -> str:
    lufs = report["lufs"]
    lines = [
        f"programme /{name}",
        f"on air:    {on_air_text(report)}",
        f"preferred: {report['preferred'] or '(automatic)'}",
        f"runs on:   {report['owner'] or '-'}",
        f"loudness:  {'-' if lufs is None else f'{lufs:.1f} LUFS'}",
        "",
    ]
    rows = []
    for entry in report["inputs"]:
        state = "-"
        if "connected" in entry:
            state = (
                "silent"
                if entry["connected"] and entry["silent"]
                else "connected"
                if entry["connected"]
                else "absent"
            )
        loudness = entry.get("lufs")
        rows.append(
            [
                entry["mount"],
                "automatic" if entry["automatic"] else "manual",
                state,
                "-" if loudness is None else f"{loudness:.1f}",
            ]
        )
    return "\n".join(lines) + table(["INPUT", "MODE", "STATE", "LUFS"], rows)


def _programme(state: ClusterState, name: str) -> dict[str, Any]:
    mount = state.mounts.get(name)
    if mount is None or mount.programme is None:
        raise NoSuchMount(f"{name!r} is not a programme")
    return programme_report(state, name)


def cmd_programme_list(store: ClusterStore, arguments: argparse.Namespace) -> int:
    state = store.read_state()
    reports = programme_reports(state)
    if arguments.json:
        print(json.dumps(reports, indent=2, sort_keys=True))
    else:
        print(programmes_text(state) if reports else "no programmes")
    return EXIT_OK


def cmd_programme_show(store: ClusterStore, arguments: argparse.Namespace) -> int:
    report = _programme(store.read_state(), arguments.name)
    print(
        json.dumps(report, indent=2, sort_keys=True)
        if arguments.json
        else programme_show_text(arguments.name, report)
    )
    return EXIT_OK


def cmd_programme_prefer(store: ClusterStore, arguments: argparse.Namespace) -> int:
    store.set_preference(arguments.name, arguments.input)
    print(f"/{arguments.name}: prefers {arguments.input}")
    return EXIT_OK


def cmd_programme_auto(store: ClusterStore, arguments: argparse.Namespace) -> int:
    store.set_preference(arguments.name, None)
    print(f"/{arguments.name}: automatic (the first usable automatic input)")
    return EXIT_OK


def mount_argument(text: str) -> str:
    """A mount as typed: `list` prints `/radio.mp3`, and that works as well as the name."""
    return text.removeprefix("/")


def add_programme_commands(commands: Any) -> None:
    programme = commands.add_parser(
        "programme", help="programmes: inputs, the preferred one, the one on air"
    )
    actions = programme.add_subparsers(dest="programme_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every programme and its input on air")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_programme_list)
    show = actions.add_parser("show", help="one programme: its inputs' states and loudness")
    show.add_argument("name", type=mount_argument)
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=cmd_programme_show)
    prefer = actions.add_parser(
        "prefer", help="put an input first (a manual-only one airs only this way)"
    )
    prefer.add_argument("name", type=mount_argument)
    prefer.add_argument("input", type=mount_argument)
    prefer.set_defaults(run=cmd_programme_prefer)
    auto = actions.add_parser("auto", help="back to the automatic order")
    auto.add_argument("name", type=mount_argument)
    auto.set_defaults(run=cmd_programme_auto)
