"""Text for people: aligned tables and one-line summaries. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from radioagent.coordination.state import ClusterState
from radioagent.model import MountSpec
from radioagent.nowplaying import NowPlaying, mount_now_playing
from radioagent.radios import MountChange
from radioagent.status import listeners_by_mount, programme_reports

TITLE_COLUMN_CHARACTERS = 40


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(cell) for cell in headers]] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def format_text(mount: MountSpec) -> str:
    audio = mount.format
    layout = "stereo" if audio.channels == 2 else "mono"
    text = f"{audio.codec} {audio.samplerate / 1000:g} kHz {layout}"
    return text if audio.codec == "flac" else f"{text} {audio.bitrate_kbps} kbps"


def status_text(state: ClusterState) -> str:
    leader = state.leader
    lines = [
        f"leader: {leader.name} (epoch {leader.epoch})" if leader else "leader: none",
        "",
        table(
            [
                "NODE",
                "ADDRESS",
                "ROLE",
                "ICECAST",
                "DRAINING",
                "LISTENERS",
                "KBPS",
                "TRANSCODERS",
                "VERSION",
            ],
            [
                [
                    name,
                    f"{status.address}:{status.icecast_port}",
                    status.role,
                    "up" if status.icecast_up else "DOWN",
                    "yes" if status.draining else "no",
                    sum(status.listeners.values()),
                    round(status.bandwidth_kbps),
                    transcoders_text(status.transcoders, status.silent_mounts),
                    status.agent_version,
                ]
                for name, status in sorted(state.nodes.items())
            ],
        )
        if state.nodes
        else "nodes: none",
        "",
    ]
    for name, since in state.down_nodes().items():
        lines[-1:-1] = [f"{name}: DOWN since {_utc(since) if since else 'a moment ago'}"]
    lines.append(mounts_text(state) or "mounts: none")
    if programme_reports(state):
        lines += ["", programmes_text(state)]
    return "\n".join(lines)


def on_air_text(report: dict[str, Any]) -> str:
    if report["owner"] is None or (report["real_output"] is None and not report["is_output_blank"]):
        return "(not running)"
    return report["real_output"] or "(blank)"


def programmes_text(state: ClusterState) -> str:
    """One line per programme: what `programme list` and `status` print."""
    return table(
        ["PROGRAMME", "ON AIR", "PREFERRED", "INPUTS", "RUNS ON"],
        [
            [
                f"/{name}",
                on_air_text(report),
                report["preferred"] or "(automatic)",
                ", ".join(entry["mount"] for entry in report["inputs"]),
                report["owner"] or "-",
            ]
            for name, report in programme_reports(state).items()
        ],
    )


def mounts_text(state: ClusterState) -> str:
    """The mounts' table, with what each plays now; empty without mounts."""
    if not state.mounts:
        return ""
    titles = {name: mount_now_playing(name, state.mounts, state.titles) for name in state.mounts}
    return mount_table(state.mounts, listeners_by_mount(state), titles)


def transcoders_text(running: Sequence[str], silent: Sequence[str]) -> str:
    """ "low.mp3, hq.ogg (SILENT)": what runs on a node, dead air flagged."""
    if not running:
        return "-"
    return ", ".join(f"{name} (SILENT)" if name in silent else name for name in running)


def mount_table(
    mounts: dict[str, MountSpec],
    listeners: dict[str, int],
    titles: Mapping[str, NowPlaying | None],
) -> str:
    return table(
        ["MOUNT", "RADIO", "FORMAT", "FROM", "LISTENERS", "NOW PLAYING"],
        [
            [
                mount.path,
                mount.radio or "-",
                format_text(mount),
                from_text(mount),
                listeners.get(name, 0),
                title_cell(titles.get(name)),
            ]
            for name, mount in sorted(mounts.items())
        ],
    )


def from_text(mount: MountSpec) -> str:
    if mount.transcode is not None:
        return f"transcode of /{mount.transcode.parent}"
    if mount.programme is not None:
        return f"programme of {len(mount.programme.inputs)} inputs"
    return mount.relay_url or "source"


def title_cell(playing: NowPlaying | None) -> str:
    if playing is None or not playing.current.text:
        return "-"
    text = playing.current.text
    if len(text) > TITLE_COLUMN_CHARACTERS:
        return text[: TITLE_COLUMN_CHARACTERS - 1] + "\u2026"
    return text


def mount_show_text(document: dict[str, Any]) -> str:
    """`radioctl mount show`: the mount as YAML, its titles' times readable (UTC)."""
    shown = dict(document)
    playing = shown.get("now_playing")
    if playing is not None:
        shown["now_playing"] = {
            **playing,
            "since": _utc(playing["since"]),
            "history": [
                f"{_utc(entry['since'])}  {entry['title']}" for entry in playing["history"]
            ],
        }
    return yaml.safe_dump(shown, sort_keys=True, allow_unicode=True).rstrip()


def _utc(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _created_note(mount: MountSpec, change: MountChange, dry_run: bool) -> str:
    """A studio's mount shows the password made for it, once. A mount the cluster makes
    itself (a transcode, a programme) has one too, but only its Liquidsoap uses it: no
    studio needs it, so it is not shown."""
    if mount.produced:
        return f" (made in the cluster from {', '.join(f'/{name}' for name in mount.made_from)})"
    if change.password_generated and not dry_run:
        return f" (source password, shown once: {mount.source_password})"
    return ""


def change_lines(radio: str, changes: list[MountChange], *, dry_run: bool) -> list[str]:
    verb = {"create": "would create", "update": "would update", "delete": "would delete"}
    lines = []
    for change in changes:
        action = (
            verb.get(change.action, change.action)
            if dry_run
            else {
                "create": "created",
                "update": "updated",
                "delete": "deleted",
            }.get(change.action, change.action)
        )
        if change.action == "create" and change.after is not None:
            lines.append(f"{action} /{change.name}{_created_note(change.after, change, dry_run)}")
        elif change.action == "update":
            lines.append(f"{action} /{change.name}: {', '.join(change.changed_fields)}")
        elif change.action == "delete":
            lines.append(f"{action} /{change.name}")
        elif change.action == "unlisted":
            lines.append(f"kept /{change.name}: not in the file (--prune deletes it)")
    if not any(change.action in ("create", "update", "delete") for change in changes):
        lines.append(f"{radio}: no change")
    return lines
