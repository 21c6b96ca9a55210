"""Text for people: aligned tables and one-line summaries. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from radioagent.coordination.state import ClusterState
from radioagent.model import MountSpec
from radioagent.radios import MountChange
from radioagent.status import listeners_by_mount


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
    totals = listeners_by_mount(state)
    lines.append(mount_table(state.mounts, totals) if state.mounts else "mounts: none")
    return "\n".join(lines)


def transcoders_text(running: Sequence[str], silent: Sequence[str]) -> str:
    """ "low.mp3, hq.ogg (SILENT)": what runs on a node, dead air flagged."""
    if not running:
        return "-"
    return ", ".join(f"{name} (SILENT)" if name in silent else name for name in running)


def mount_table(mounts: dict[str, MountSpec], listeners: dict[str, int]) -> str:
    return table(
        ["MOUNT", "RADIO", "FORMAT", "FROM", "LISTENERS"],
        [
            [
                mount.path,
                mount.radio or "-",
                format_text(mount),
                f"transcode of /{mount.transcode.parent}"
                if mount.transcode
                else mount.relay_url or "source",
                listeners.get(name, 0),
            ]
            for name, mount in sorted(mounts.items())
        ],
    )


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
            secret = (
                change.after.source_password if change.password_generated and not dry_run else None
            )
            lines.append(
                f"{action} /{change.name}"
                + (f" (source password, shown once: {secret})" if secret else "")
            )
        elif change.action == "update":
            lines.append(f"{action} /{change.name}: {', '.join(change.changed_fields)}")
        elif change.action == "delete":
            lines.append(f"{action} /{change.name}")
        elif change.action == "unlisted":
            lines.append(f"kept /{change.name}: not in the file (--prune deletes it)")
    if not any(change.action in ("create", "update", "delete") for change in changes):
        lines.append(f"{radio}: no change")
    return lines
