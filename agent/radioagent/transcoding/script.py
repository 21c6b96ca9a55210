"""The Liquidsoap script of one transcoder, from templates/transcoder.liq.j2. Pure."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import jinja2

from radioagent.hosts import host_port
from radioagent.liquidsoap import liquidsoap_encoder, liquidsoap_string
from radioagent.model import CODEC_CONTENT_TYPES, LIVE_MOUNT_PREFIX, MountSpec, NodeStatus

SILENCE_THRESHOLD_DB = -40.0
SILENCE_MAX_BLANK_S = 5.0


@dataclass(frozen=True)
class TranscoderJob:
    """What one transcoder process is; a different job means a restart."""

    mount: str
    script: str
    username: str
    password: str


@functools.lru_cache(maxsize=4)  # one per templates directory; Jinja re-reads changed files
def _environment(templates_dir: str) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - a Liquidsoap script; strings go through liq_string
        keep_trailing_newline=True,
    )
    environment.filters["liq_string"] = liquidsoap_string
    return environment


def transcoder_job(templates_dir: str, mount: MountSpec, leader: NodeStatus) -> TranscoderJob:
    if mount.transcode is None:
        raise ValueError(f"{mount.name} is not a transcoded mount")
    output_format = mount.transcode.format
    script = (
        _environment(templates_dir)
        .get_template("transcoder.liq.j2")
        .render(
            mount=mount.name,
            parent=mount.transcode.parent,
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
    return TranscoderJob(mount.name, script, mount.source_username, mount.source_password)


def script_path(run_dir: Path, mount: str) -> Path:
    return run_dir / f"transcoder-{mount}.liq"
