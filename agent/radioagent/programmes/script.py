"""The Liquidsoap script of one programme, from templates/programme.liq.j2. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from radioagent.hosts import host_port
from radioagent.liquidsoap import (
    OLDEST_LIQUIDSOAP,
    LiquidsoapVersion,
    liquidsoap_encoder,
    liquidsoap_templates,
)
from radioagent.model import LIVE_MOUNT_PREFIX, MountSpec, NodeStatus
from radioagent.transcoding.script import TranscoderJob


def socket_directory(run_dir: Path) -> Path:
    """Where Liquidsoap creates the programmes' sockets: its own user must be able to."""
    return run_dir / "programme-sockets"


def socket_path(run_dir: Path, mount: str) -> Path:
    """Named by a digest of the mount: a Unix socket's path has at most 107 bytes, and a
    mount's name up to 63."""
    digest = hashlib.sha256(mount.encode()).hexdigest()[:16]
    return socket_directory(run_dir) / f"{digest}.sock"


def liquidsoap_float(value: float) -> str:
    """A float literal Liquidsoap reads (it has no exponent notation: not 1e-05)."""
    return f"{value:.3f}"


def preference_path(run_dir: Path, mount: str) -> Path:
    """Where the agent keeps the preferred input for the programme's next start."""
    return run_dir / f"programme-{mount}.preferred"


def programme_job(
    templates_dir: str,
    mount: MountSpec,
    leader: NodeStatus,
    run_dir: Path,
    mounts: Mapping[str, MountSpec],
    *,
    liquidsoap_version: LiquidsoapVersion = OLDEST_LIQUIDSOAP,
) -> TranscoderJob:
    """The job of the programme's Liquidsoap. The preferred input is not in it: changing
    it must not restart the process (it is sent over the socket and kept in a file).
    `mounts`: the cluster's, for what each input carries (its radio file says so); an
    input missing there (its record is unreadable) is probed by ffmpeg.
    `liquidsoap_version`: the node's, which the script is written for."""
    programme = mount.programme
    if programme is None:
        raise ValueError(f"{mount.name} is not a programme")
    leader_url = f"http://{host_port(leader.address, leader.icecast_port)}{LIVE_MOUNT_PREFIX}"
    script = (
        liquidsoap_templates(templates_dir, liquidsoap_version)
        .get_template("programme.liq.j2")
        .render(
            programme=mount.name,
            inputs=[
                {
                    "name": entry.mount,
                    "url": f"{leader_url}{entry.mount}",
                    "demuxer": (
                        mounts[entry.mount].format.demuxer if entry.mount in mounts else None
                    ),
                    "automatic": entry.automatic,
                }
                for entry in programme.inputs
            ],
            silence={
                "threshold_db": liquidsoap_float(programme.silence.threshold_db),
                "seconds": liquidsoap_float(programme.silence.seconds),
            },
            hold_seconds=liquidsoap_float(programme.hold_seconds),
            preference_path=str(preference_path(run_dir, mount.name)),
            socket_path=str(socket_path(run_dir, mount.name)),
            output={
                "host": leader.address,
                "port": leader.icecast_port,
                "mount": mount.live_path,
                "user": mount.source_username,
            },
            encoder=liquidsoap_encoder(mount.format),
            content_type=mount.format.content_type,
        )
    )
    return TranscoderJob(
        mount.name,
        script,
        mount.source_username,
        mount.source_password,
        programme=True,
        leader=leader.name,
    )
