"""Leadership decisions. Pure: the loop feeds them what it read and the clock."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from radioagent.config import Timing, keepalive_interval
from radioagent.coordination.state import ClusterState


class Role(Enum):
    LEADER = "leader"  # holds the sources
    REPLICA = "replica"  # relays every mount from the leader
    DETACHED = "detached"  # no known leader, or cut off from etcd: holds nothing new


@dataclass(frozen=True)
class Leadership:
    role: Role
    leader_name: str | None = None
    epoch: int | None = None


def leadership_from_state(state: ClusterState, my_name: str, my_lease: int | None) -> Leadership:
    """Who leads, as etcd says. A leader key with my name but another lease is a previous
    life of this agent: it is not mine (see previous_life_epoch)."""
    leader = state.leader
    if leader is None:
        return Leadership(Role.DETACHED)
    if leader.name == my_name and my_lease is not None and leader.lease == my_lease:
        return Leadership(Role.LEADER, my_name, leader.epoch)
    return Leadership(Role.REPLICA, leader.name, leader.epoch)


def previous_life_epoch(state: ClusterState, my_name: str, my_lease: int | None) -> int | None:
    """The epoch of a leadership this node held in a previous life (its agent or machine
    restarted within the lease's ttl): nobody takes sources under it, and its lease would
    keep every node from campaigning until it expires, so the new life resigns it at once."""
    leader = state.leader
    if leader is None or my_lease is None or leader.name != my_name or leader.lease == my_lease:
        return None
    return leader.epoch


def previous_life_claims(state: ClusterState, my_name: str, my_lease: int | None) -> set[str]:
    """Mounts claimed under this node's name on another lease: claims of its previous
    life. Its Liquidsoap died with it; running them again would start a second one the
    moment that lease expires and another node claims the mount, so they are released."""
    if my_lease is None:
        return set()
    return {
        mount
        for mount, owner in state.transcoders.items()
        if owner == my_name and state.transcoder_leases.get(mount, my_lease) != my_lease
    }


def should_campaign(state: ClusterState, my_lease: int | None, my_name: str = "") -> bool:
    """Nobody leads and we hold a lease; during an operator's handover only its target
    campaigns (or, with no target, anyone but the leader that stepped down)."""
    if state.leader is not None or my_lease is None:
        return False
    handover = state.handover
    if handover is None:
        return True
    if handover.to is not None and handover.to in state.nodes:
        return handover.to == my_name
    # No target, or the target is gone: anyone but the leader that stepped down.
    return my_name != handover.from_node


def must_hand_over(state: ClusterState, leadership: Leadership) -> bool:
    """We lead, and an operator asked the leader of exactly our epoch to step down."""
    return (
        leadership.role is Role.LEADER
        and state.handover is not None
        and state.handover.epoch == leadership.epoch
    )


def must_stop_leading(now: float, last_etcd_contact: float, retry_timeout: float) -> bool:
    """Cut off from etcd for retry_timeout: step down while the lease is surely still
    alive (loop_wait + 2 * retry_timeout <= ttl), so no other node leads yet."""
    return now - last_etcd_contact >= retry_timeout


def settle_seconds(timing: Timing) -> float:
    """How long a node may go on acting on what it no longer holds, from the moment etcd
    could first have told it: retry_timeout (its fence, or a failsafe hold), one keepalive
    for the answer that tells it, one for the clocks' steps."""
    return timing.retry_timeout + 2 * keepalive_interval(timing)


@dataclass(frozen=True)
class LeaseLoss:
    """This node's lease found gone (keepalive: "no such lease") while the agent ran."""

    at: float  # the agent's clock
    led: bool  # the lease held the leadership


def settled_after_lease_loss(now: float, loss: LeaseLoss | None, timing: Timing) -> bool:
    """Whether what other nodes held on their leases may be taken again. A lease expires
    on its own only after its holder's fence stopped it; but a raft leader frozen past the
    ttl revokes every lease as it wakes (etcd-io/etcd#15247, in Debian 12's etcd 3.4.23),
    and the other holders learn it only at their next keepalive, or when a failsafe hold
    they gave ends. A node that finds its own lease gone assumes everyone's went with it."""
    return loss is None or now - loss.at >= settle_seconds(timing)
