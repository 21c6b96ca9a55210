"""Answers to Icecast's questions, decided from the agent's view. Pure.

- stream_auth: may this source take this mount on this node now?
- relay: where is the mount's live copy (the leader's Icecast)?
"""

from __future__ import annotations

from dataclasses import dataclass

from radioagent.hosts import host_port
from radioagent.model import LIVE_MOUNT_PREFIX, MountSpec, NodeStatus, credentials_match


@dataclass(frozen=True)
class SourceDecision:
    allowed: bool
    reason: str


def decide_source(
    mounts: dict[str, MountSpec], mount_path: str, user: str, password: str, leading: bool
) -> SourceDecision:
    if not mount_path.startswith(LIVE_MOUNT_PREFIX):
        return SourceDecision(False, f"{mount_path} takes no source (sources go to /_live/)")
    mount = mounts.get(mount_path.removeprefix(LIVE_MOUNT_PREFIX))
    if mount is None:
        return SourceDecision(False, f"unknown mount {mount_path}")
    if not leading:
        return SourceDecision(False, "this node does not lead: sources go to the leader")
    if not credentials_match(mount, user, password):
        return SourceDecision(False, f"wrong credentials for {mount_path}")
    return SourceDecision(True, "ok")


@dataclass(frozen=True)
class RelayTarget:
    url: str | None  # None: nowhere to relay from now (this node leads, or no leader)
    reason: str


def relay_target(
    mounts: dict[str, MountSpec], mount_name: str, leader: NodeStatus | None
) -> RelayTarget:
    if mount_name not in mounts:
        return RelayTarget(None, f"unknown mount /{mount_name}")
    if leader is None:
        return RelayTarget(None, "no leader known")
    # The leader relays its own /_live/ mount too: one path for every node.
    authority = host_port(leader.address, leader.icecast_port)
    return RelayTarget(f"http://{authority}{LIVE_MOUNT_PREFIX}{mount_name}", "ok")
