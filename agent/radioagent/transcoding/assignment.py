"""Which transcoders this node runs, claims or gives up: the per-mount election's
decisions. Pure.

Each transcoded mount has a claim key `transcoders/<mount>` on its owner's lease, won
with a transaction on `create_revision == 0` like leadership. Transcoders spread: a node
claims a free one only while no eligible node holds fewer (ties race in etcd; one wins).
Claims stay where they are when nodes join: moving a running transcoder costs a gap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from radioagent.model import MountSpec, NodeStatus


@dataclass(frozen=True)
class TranscoderPlan:
    run: tuple[str, ...]  # mounts this node owns: their Liquidsoap must run here
    claim: str | None  # a free mount to try to win now
    release: tuple[str, ...]  # this node's claims on mounts no longer transcoded


def eligible_nodes(
    nodes: dict[str, NodeStatus], draining: Iterable[str], me: str, me_eligible: bool
) -> set[str]:
    """Nodes that may take a transcoder: up, Icecast answering, not draining."""
    drained = set(draining)
    eligible = {
        name
        for name, status in nodes.items()
        if status.icecast_up and not status.draining and name not in drained
    }
    if me_eligible:
        eligible.add(me)
    else:
        eligible.discard(me)
    return eligible


def plan_transcoders(
    mounts: dict[str, MountSpec],
    claims: dict[str, str],
    nodes: dict[str, NodeStatus],
    draining: Iterable[str],
    me: str,
    *,
    me_eligible: bool,
) -> TranscoderPlan:
    """`claims`: mount -> owner, as read from etcd. `me_eligible`: this node may run
    transcoders now (reaches etcd, knows the leader, its Icecast answers, not draining
    for new ones is checked here)."""
    transcoded = {name for name, mount in mounts.items() if mount.produced}
    mine = sorted(mount for mount, owner in claims.items() if owner == me)
    release = tuple(mount for mount in mine if mount not in transcoded)
    run = tuple(mount for mount in mine if mount in transcoded)
    eligible = eligible_nodes(nodes, draining, me, me_eligible and me not in set(draining))
    free = sorted(transcoded - set(claims))
    claim = None
    if free and me in eligible:
        held = {name: 0 for name in eligible}
        for mount, owner in claims.items():
            if owner in held and mount in transcoded:
                held[owner] += 1
        if held[me] <= min(held.values()):
            claim = free[0]
    return TranscoderPlan(run=run, claim=claim, release=release)
