"""Which transcoders this node runs, claims or gives up: the per-mount election's
decisions. Pure.

Each transcoded mount has a claim key `transcoders/<mount>` on its owner's lease, won
with a transaction on `create_revision == 0` like leadership. Transcoders spread: a free
one goes to the eligible node holding the fewest, ties broken by a hash of the mount and
the node (rendezvous hashing: every node computes the same first taker, and different
mounts prefer different nodes). The others race for it in etcd only once it has stayed
free for a cycle, so a first taker that is slow or gone does not keep it off the air.
Claims stay where they are when nodes join: moving a running transcoder costs a gap.
A programme's first taker after its owner runs a standby: the same Liquidsoap, its inputs
pulled and judged, its output off until it wins the claim (a takeover then costs no
Liquidsoap start, about 2 s). A node standing by (its status says so) stays the first
taker: it claims a freed programme at once, so two programmes freed by one death each go
to their own standby, and a standby does not move when claims change hands elsewhere.
Programmes leave the radio leader out while another node can take them: a leader's death
restarts every programme (its script pulls from and pushes to the leader), so an owner on
the leader would lose its standby's head start as well. An owner that becomes the leader
(a leader change) hands its programme over at once: its Liquidsoap restarts for the new
leader anyway, and the first taker starts it as fast. An owner that leads otherwise (it
was the only node that could) waits for a ready standby, whose promotion costs a shorter
gap than a start.
A node whose Liquidsoap for a mount fails GIVE_UP_AFTER_FAILURES times in a row gives its
claim up and leaves that mount to the others for GIVE_UP_SECONDS (its status says so), so
a node that cannot run it (a broken package, a full disk) does not keep it off the air.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
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
    # Programmes this node would take first: owned elsewhere, or free (`claim` then).
    standby: tuple[str, ...] = ()
    # This node's programmes to stop, then release: it leads, and a node stands by.
    hand_over: tuple[str, ...] = ()


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


def taker_order(mount: str, node: str, held: int, standing: bool = False) -> tuple[bool, int, str]:
    """A node standing by for the mount first, then fewest claims, then the rendezvous
    hash of (mount, node)."""
    return not standing, held, hashlib.sha256(f"{mount}\0{node}".encode()).hexdigest()


def first_taker(
    mount: str,
    takers: Iterable[str],
    held: Mapping[str, int],
    standing: Mapping[str, Iterable[str]] | None = None,
) -> str | None:
    """`standing`: node -> the programmes it stands by for."""
    stands = standing or {}
    return min(
        takers,
        key=lambda node: taker_order(mount, node, held[node], mount in stands.get(node, ())),
        default=None,
    )


def unclaimed(mounts: Mapping[str, MountSpec], claims: Mapping[str, str]) -> set[str]:
    return {name for name, mount in mounts.items() if mount.produced} - set(claims)


def free_since(previous: Mapping[str, float], free: Iterable[str], now: float) -> dict[str, float]:
    """When each free mount was first seen free (`now`'s clock); taken ones are dropped."""
    return {mount: previous.get(mount, now) for mount in free}


def awaited_sources(
    claims: Mapping[str, str], unclaimed_since: Mapping[str, float], now: float, window: float
) -> frozenset[str]:
    """Produced mounts whose source should be on the leader soon: claimed, or freed less
    than `window` ago (an owner's lease expired; its standby claims it next)."""
    freed = {mount for mount, since in unclaimed_since.items() if now - since < window}
    return frozenset(claims) | frozenset(freed)


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
    overdue: Iterable[str] = (),
    leader: str | None = None,
    restarting: Iterable[str] = (),
) -> TranscoderPlan:
    """`claims`: mount -> owner, as read from etcd. `me_eligible`: this node may run
    transcoders now (reaches etcd, knows the leader, its Icecast answers, not draining
    for new ones is checked here). `failing`: mounts whose Liquidsoap failed here
    GIVE_UP_AFTER_FAILURES times in a row; `avoiding`: mounts this node gave up lately;
    `overdue`: free mounts their first taker has left free for a cycle (any node with
    the fewest claims may take them); `leader`: the radio leader's name; `restarting`:
    programmes whose Liquidsoap here pushes to another leader (about to restart). Other
    nodes' given-up mounts come from their statuses, and every node's standbys as
    published, this one's too: every node then agrees on the first takers."""
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
    standing = {name: set(status.standbys) for name, status in nodes.items()}
    free = sorted(transcoded - set(claims))
    late = set(overdue)
    claim = None
    standby: list[str] = []
    hand_over: list[str] = []
    if me in eligible:
        held = {name: 0 for name in eligible}
        for mount, owner in claims.items():
            if owner in held and mount in transcoded and mount not in give_up:
                held[owner] += 1

        def takers(mount: str, owner: str | None = None) -> list[str]:
            willing = [
                name
                for name in eligible
                if mount not in avoided_by.get(name, set()) and name != owner
            ]
            if mounts[mount].programme is not None and any(name != leader for name in willing):
                return [name for name in willing if name != leader]
            return willing

        for mount in free:
            candidates = takers(mount)
            if me not in candidates:
                continue
            first = first_taker(mount, candidates, held, standing) == me
            if first and mounts[mount].programme is not None:
                standby.append(mount)  # kept while it claims: a lost race loses no start
            fewest = held[me] <= min(held[name] for name in candidates)
            if claim is None and (first or (mount in late and fewest)):
                claim = mount
        for mount, owner in sorted(claims.items()):
            if mount not in transcoded or mounts[mount].programme is None:
                continue
            if owner != me and first_taker(mount, takers(mount, owner), held, standing) == me:
                standby.append(mount)
            if owner == me and me == leader and mount in run:
                # On air: to a ready standby only (a short gap). About to restart for
                # this new leader anyway: to any other node, within that restart's gap.
                others = takers(mount, me)
                if any(mount in standing.get(name, ()) for name in others) or (
                    others and mount in set(restarting)
                ):
                    hand_over.append(mount)
    return TranscoderPlan(
        run=tuple(mount for mount in run if mount not in hand_over),
        claim=claim,
        release=release,
        give_up=give_up,
        standby=tuple(sorted(standby)),
        hand_over=tuple(hand_over),
    )
