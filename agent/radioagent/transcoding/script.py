"""The Liquidsoap script of one transcoder, from templates/transcoder.liq.j2. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from radioagent.hosts import host_port
from radioagent.liquidsoap import (
    OLDEST_LIQUIDSOAP,
    LiquidsoapVersion,
    liquidsoap_encoder,
    liquidsoap_templates,
)
from radioagent.model import (
    CODEC_CONTENT_TYPES,
    LIVE_MOUNT_PREFIX,
    AudioFormat,
    MountSpec,
    NodeStatus,
)

SILENCE_THRESHOLD_DB = -40.0
SILENCE_MAX_BLANK_S = 5.0


@dataclass(frozen=True)
class TranscoderJob:
    """What one transcoder or programme process is; a different job means a restart."""

    mount: str
    script: str
    username: str
    password: str
    programme: bool = False  # a programme: its server socket is polled and told the preference
    # A programme's standby: its output stays off until it is told to go on air. Going
    # on air is no restart (TranscoderSupervisor.converge), only the way back is.
    standby: bool = False
    leader: str = ""  # the node it pulls from and pushes to

    @property
    def kind(self) -> str:
        """What the logs call it."""
        return "standby" if self.standby else "programme" if self.programme else "transcoder"


def transcoder_job(
    templates_dir: str,
    mount: MountSpec,
    leader: NodeStatus,
    parent_format: AudioFormat | None,
    *,
    liquidsoap_version: LiquidsoapVersion = OLDEST_LIQUIDSOAP,
) -> TranscoderJob:
    """`parent_format`: what the parent mount carries (its radio file says so); None
    (the parent's record is unreadable) lets ffmpeg probe. `liquidsoap_version`: the
    node's, which the script is written for."""
    if mount.transcode is None:
        raise ValueError(f"{mount.name} is not a transcoded mount")
    output_format = mount.transcode.format
    script = (
        liquidsoap_templates(templates_dir, liquidsoap_version)
        .get_template("transcoder.liq.j2")
        .render(
            mount=mount.name,
            parent=mount.transcode.parent,
            input_demuxer=parent_format.demuxer if parent_format is not None else None,
            input_url=(
                f"http://{host_port(leader.address, leader.icecast_port)}"
                f"{LIVE_MOUNT_PREFIX}{mount.transcode.parent}"
            ),
            # A bare address: output.icecast takes a host to connect to, not a URL.
            output={
                "host": leader.address,
                "port": leader.icecast_port,
                "mount": mount.live_path,
                "user": mount.source_username,
            },
            encoder=liquidsoap_encoder(output_format),
            content_type=CODEC_CONTENT_TYPES[output_format.codec],
            silence={"threshold_db": SILENCE_THRESHOLD_DB, "max_blank_s": SILENCE_MAX_BLANK_S},
        )
    )
    return TranscoderJob(
        mount.name, script, mount.source_username, mount.source_password, leader=leader.name
    )


def script_path(run_dir: Path, mount: str) -> Path:
    return run_dir / f"transcoder-{mount}.liq"
