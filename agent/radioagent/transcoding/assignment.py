"""Which transcoders this node runs, claims or gives up: the per-mount election's
decisions. Pure.

Each transcoded mount has a claim key `transcoders/<mount>` on its owner's lease, won
with a transaction on `create_revision == 0` like leadership. Transcoders spread: a node
claims a free one only while no eligible node holds fewer (ties race in etcd; one wins).
Claims stay where they are when nodes join: moving a running transcoder costs a gap.
A node whose Liquidsoap for a mount fails GIVE_UP_AFTER_FAILURES times in a row gives its
claim up and leaves that mount to the others for GIVE_UP_SECONDS (its status says so), so
a node that cannot run it (a broken package, a full disk) does not keep it off the air.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from radioagent.model import MountSpec, NodeStatus

GIVE_UP_AFTER_FAILURES = 3  # with the backoff (1, 2, 4 s): about 15 s of a failing mount
GIVE_UP_SECONDS = 300.0  # then this node may try it again


@dataclass(frozen=True)
class TranscoderPlan:
    run: tuple[str, ...]  # mounts this node owns: their Liquidsoap must run here
    claim: str | None  # a free mount to try to win now
    release: tuple[str, ...]  # this node's claims on mounts no longer transcoded
    give_up: tuple[str, ...] = ()  # this node's claims whose Liquidsoap keeps failing here


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
    failing: Iterable[str] = (),
    avoiding: Iterable[str] = (),
) -> TranscoderPlan:
    """`claims`: mount -> owner, as read from etcd. `me_eligible`: this node may run
    transcoders now (reaches etcd, knows the leader, its Icecast answers, not draining
    for new ones is checked here). `failing`: mounts whose Liquidsoap failed here
    GIVE_UP_AFTER_FAILURES times in a row; `avoiding`: mounts this node gave up lately.
    Other nodes' given-up mounts come from their statuses."""
    transcoded = {name for name, mount in mounts.items() if mount.produced}
    mine = sorted(mount for mount, owner in claims.items() if owner == me)
    # An avoided claim still ours: its release failed last time.
    leaving = set(failing) | set(avoiding)
    give_up = tuple(mount for mount in mine if mount in transcoded and mount in leaving)
    release = tuple(mount for mount in mine if mount not in transcoded)
    run = tuple(mount for mount in mine if mount in transcoded and mount not in give_up)
    eligible = eligible_nodes(nodes, draining, me, me_eligible and me not in set(draining))
    avoided_by = {name: set(status.given_up) for name, status in nodes.items()}
    avoided_by[me] = set(avoiding) | set(give_up)
    free = sorted(transcoded - set(claims))
    claim = None
    if me in eligible:
        held = {name: 0 for name in eligible}
        for mount, owner in claims.items():
            if owner in held and mount in transcoded and mount not in give_up:
                held[owner] += 1
        for mount in free:
            # The spread rule among the nodes that would take this mount.
            takers = [name for name in eligible if mount not in avoided_by.get(name, set())]
            if me in takers and held[me] <= min(held[name] for name in takers):
                claim = mount
                break
    return TranscoderPlan(run=run, claim=claim, release=release, give_up=give_up)
