"""Render the node's icecast.xml from the cluster state. Pure: values in, text out.

Every node defines every mount, each with a local holding mount as fallback (with
fallback-override), so listeners stay connected when a relay or a source drops and move
back when it returns. The leader accepts sources with each mount's credentials; every
other node relays each mount from the leader and locks the mount with a password nobody
has, so it never accepts a source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jinja2

from radioagent.config import AgentConfig
from radioagent.model import MountSpec

HOLDING_FEED_USERNAME = "source"
RELAY_RETRY_SECONDS = 1  # Icecast waits this long after a failed relay connect (default 120)


@dataclass(frozen=True)
class IcecastPlan:
    """What this node's Icecast should do, decided by the loop."""

    role: str
    accept_sources: bool
    relay_from: tuple[str, int] | None  # the leader's Icecast (address, port)
    epoch: int | None
    mounts: tuple[MountSpec, ...]


def _template_environment(templates_dir: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=True,  # XML: passwords and names are escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def mount_entries(plan: IcecastPlan, lock_password: str, holding_password: str) -> list[dict]:
    entries = []
    for mount in plan.mounts:
        entries.append(
            {
                "name": mount.path,
                "username": mount.source_username if plan.accept_sources else "locked",
                "password": mount.source_password if plan.accept_sources else lock_password,
                "max_listeners": mount.max_listeners,
                "fallback_mount": f"/{mount.fallback}" if mount.fallback else mount.holding_path,
                "hidden": False,
            }
        )
        entries.append(
            {
                "name": mount.holding_path,
                "username": HOLDING_FEED_USERNAME,
                "password": holding_password,
                "max_listeners": None,
                "fallback_mount": None,
                "hidden": True,
            }
        )
    return entries


def relay_entries(plan: IcecastPlan) -> list[dict]:
    relays = []
    for mount in plan.mounts:
        if plan.relay_from is not None:
            server, port = plan.relay_from
            relays.append(
                {"server": server, "port": port, "mount": mount.path, "local_mount": mount.path}
            )
        elif plan.accept_sources and mount.relay_url:
            # The leader pulls an external stream into the mount; replicas relay the leader.
            url = urlsplit(mount.relay_url)
            relays.append(
                {
                    "server": url.hostname,
                    "port": url.port or 80,
                    "mount": url.path or "/",
                    "local_mount": mount.path,
                }
            )
    return relays


def icecast_context(config: AgentConfig, plan: IcecastPlan, lock_password: str) -> dict:
    icecast = config.icecast
    return {
        "role": plan.role,
        "epoch": plan.epoch if plan.epoch is not None else "none",
        "hostname": config.node_address,
        "location": f"radio cluster node {config.node_name}",
        "admin_email": "radio-agent@localhost",
        "listen_sockets": [{"address": icecast.bind_address, "port": icecast.port}],
        "limits": {
            "clients": icecast.max_clients,
            "sources": 2 * len(plan.mounts) + 10,
            "queue_size": 524288,
            "burst_size": 65536,
            "source_timeout": 10,
        },
        "source_password": icecast.source_password,
        "relay_password": icecast.source_password,
        "admin_user": icecast.admin_user,
        "admin_password": icecast.admin_password,
        "relay_retry_seconds": RELAY_RETRY_SECONDS,
        "mounts": mount_entries(plan, lock_password, icecast.source_password),
        "relays": relay_entries(plan),
        "paths": {
            "logdir": icecast.log_dir,
            "webroot": "/usr/share/icecast2/web",
            "adminroot": "/usr/share/icecast2/admin",
            "pidfile": str(Path(icecast.log_dir) / "icecast.pid"),
        },
        "log_level": 3,
    }


def render_icecast_config(config: AgentConfig, plan: IcecastPlan, lock_password: str) -> str:
    template = _template_environment(config.templates_dir).get_template("icecast.xml.j2")
    return template.render(icecast_context(config, plan, lock_password))
