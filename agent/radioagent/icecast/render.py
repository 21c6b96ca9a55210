"""Render the node's icecast.xml from the mounts. Pure.

Every node, the leader included, runs the same three mounts per public mount /<name>:
- /_live/<name> takes the source. Icecast asks the local agent whether to take it (URL
  stream_auth) and the agent says yes only while this node leads and the credentials
  match: fencing at the moment a source connects, with no reload.
- /<name>, what listeners play, relays /_live/<name> of the leader: the relay asks the
  local agent, which answers with a 302 to the current leader (Icecast 2.4 relays follow
  it on every reconnect). It is locked with a password no source has.
- /_holding/<name> carries local silence and is /<name>'s fallback (fallback-override
  on), so listeners stay connected while the relay is away and move back when it returns.
ICY listeners get a metadata block about every half second of audio (Icecast's default,
16000 bytes, is 1 s at 128 kbps and 4 s at 32 kbps): the front door puts the cluster's
title in each, so that interval bounds how late a title reaches a listener.
So a leader change rewrites nothing; only the leader's pulls of external URLs (relay_url
mounts) depend on the role.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jinja2

from radioagent.config import AgentConfig
from radioagent.model import AudioFormat, MountSpec

HOLDING_FEED_USERNAME = "source"
RELAY_RETRY_SECONDS = 1  # Icecast waits this long after a failed relay connect (default 120)
STREAM_AUTH_PATH = "/icecast/stream-auth"
ICY_INTERVAL_SECONDS = 0.5
ICY_INTERVAL_BYTES = (1024, 16000)  # bounds: small enough to matter, Icecast's default
RELAY_PATH_PREFIX = "/relay/"


@dataclass(frozen=True)
class IcecastPlan:
    """What this node's Icecast should run."""

    leading: bool
    mounts: tuple[MountSpec, ...]

    @property
    def role(self) -> str:
        return "leader" if self.leading else "relay"


@functools.lru_cache(maxsize=4)  # one per templates directory; Jinja re-reads changed files
def _template_environment(templates_dir: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=True,  # XML: passwords and names are escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def local_api_url(config: AgentConfig) -> tuple[str, int]:
    return config.local_api.bind_address, config.local_api.port


def lock_password(node_secret: str, mount_path: str) -> str:
    """A password no source has, stable across renders (so it causes no reload)."""
    return hashlib.sha256(f"radio-agent lock {mount_path} {node_secret}".encode()).hexdigest()


def _mount(
    name: str,
    *,
    stream_auth_url: str | None = None,
    username: str = HOLDING_FEED_USERNAME,
    password: str | None = None,
    max_listeners: int | None = None,
    fallback_mount: str | None = None,
    hidden: bool = False,
    metadata_interval: int | None = None,
) -> dict:
    return {
        "name": name,
        "stream_auth_url": stream_auth_url,
        "username": username if password else None,
        "password": password,
        "max_listeners": max_listeners,
        "fallback_mount": fallback_mount,
        "hidden": hidden,
        "metadata_interval": metadata_interval,
    }


def icy_interval(audio: AudioFormat) -> int:
    """Bytes of audio between two ICY metadata blocks: ICY_INTERVAL_SECONDS of it."""
    interval = round(audio.bitrate_kbps * 1000 / 8 * ICY_INTERVAL_SECONDS)
    return min(max(interval, ICY_INTERVAL_BYTES[0]), ICY_INTERVAL_BYTES[1])


def mount_entries(config: AgentConfig, plan: IcecastPlan) -> list[dict]:
    host, port = local_api_url(config)
    stream_auth_url = f"http://{host}:{port}{STREAM_AUTH_PATH}"
    entries = []
    for mount in plan.mounts:
        public_fallback = f"/{mount.fallback}" if mount.fallback else mount.holding_path
        entries += [
            # Listeners' mount: it only relays, so it is locked. Not URL auth: Icecast
            # would queue every listener through its auth thread.
            _mount(
                mount.path,
                username="locked",
                password=lock_password(config.icecast.source_password, mount.path),
                max_listeners=mount.max_listeners,
                fallback_mount=public_fallback,
                metadata_interval=icy_interval(mount.format),
            ),
            _mount(mount.live_path, stream_auth_url=stream_auth_url, hidden=True),
            # Listeners move here and back: the same interval keeps them in step.
            _mount(
                mount.holding_path,
                password=config.icecast.source_password,
                hidden=True,
                metadata_interval=icy_interval(mount.format),
            ),
        ]
    return entries


def relay_entries(config: AgentConfig, plan: IcecastPlan) -> list[dict]:
    host, port = local_api_url(config)
    relays = []
    for mount in plan.mounts:
        relays.append(
            {
                "server": host,
                "port": port,
                "mount": f"{RELAY_PATH_PREFIX}{mount.name}",
                "local_mount": mount.path,
                "username": None,
                "password": None,
            }
        )
        if plan.leading and mount.relay_url:
            # The leader pulls an external stream in, as if it were a source.
            url = urlsplit(mount.relay_url)
            relays.append(
                {
                    "server": url.hostname,
                    "port": url.port or 80,
                    "mount": (url.path or "/") + (f"?{url.query}" if url.query else ""),
                    "local_mount": mount.live_path,
                    "username": unquote(url.username) if url.username else None,
                    "password": unquote(url.password) if url.password else None,
                }
            )
    return relays


def icecast_context(config: AgentConfig, plan: IcecastPlan) -> dict:
    icecast = config.icecast
    return {
        "role": plan.role,
        "hostname": config.node_address,
        "location": f"radio cluster node {config.node_name}",
        "admin_email": "radio-agent@localhost",
        "listen_sockets": [{"address": icecast.bind_address, "port": icecast.port}],
        "limits": {
            "clients": icecast.max_clients,
            # Per mount: the relay on /<name>, the source on /_live/, the holding feed.
            "sources": 3 * len(plan.mounts) + 10,
            "queue_size": 524288,
            "burst_size": 65536,
            "source_timeout": 10,
        },
        "source_password": icecast.source_password,
        "relay_password": icecast.source_password,
        "admin_user": icecast.admin_user,
        "admin_password": icecast.admin_password,
        "relay_retry_seconds": RELAY_RETRY_SECONDS,
        "mounts": mount_entries(config, plan),
        "relays": relay_entries(config, plan),
        "paths": {
            "logdir": icecast.log_dir,
            "webroot": "/usr/share/icecast2/web",
            "adminroot": "/usr/share/icecast2/admin",
            "pidfile": str(Path(icecast.log_dir) / "icecast.pid"),
        },
        "log_level": 3,
    }


def render_icecast_config(config: AgentConfig, plan: IcecastPlan) -> str:
    template = _template_environment(config.templates_dir).get_template("icecast.xml.j2")
    return template.render(icecast_context(config, plan))
