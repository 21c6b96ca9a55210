"""The agent's cycle, decided. Pure: one function from what the cluster store says, what
this node knows of itself, and the clock, to everything the cycle must do. The agent
(`loop.py`) reads, calls `plan_cycle`, and executes the plan; like Patroni's `Ha`, every
decision is here where tests can reach it without etcd or Icecast.

A plan that changes coordination (a lease, a handover, a campaign) is executed first and
the state read again before the rest runs, so the Icecast config, the transcoders and the
status always follow what etcd says after this node's own moves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from radioagent import __version__
from radioagent.config import Limits, Timing
from radioagent.coordination.election import (
    Leadership,
    LeaseLoss,
    Role,
    leadership_from_state,
    must_hand_over,
    must_stop_leading,
    previous_life_claims,
    previous_life_epoch,
    settled_after_lease_loss,
    should_campaign,
)
from radioagent.coordination.failsafe import may_take
from radioagent.coordination.state import ClusterState, Handover
from radioagent.icecast.render import IcecastPlan
from radioagent.icecast.stats import IcecastStats
from radioagent.model import LIVE_MOUNT_PREFIX, NodeStatus, status_json_without_count_time
from radioagent.nowplaying import relayed_titles
from radioagent.transcoding.assignment import (
    GIVE_UP_AFTER_FAILURES,
    TranscoderPlan,
    plan_transcoders,
)
from radioagent.transcoding.state import TranscoderState

DETACHED = Leadership(Role.DETACHED)
# The owner planning sees for a claim this node's previous life left (not a node's name).
PREVIOUS_LIFE = "(a previous life of this node)"


@dataclass(frozen=True)
class NodeIdentity:
    """What the config says about this node; never changes while the agent runs."""

    name: str
    address: str
    icecast_port: int
    public_address: str | None
    front_door_ports: tuple[int, ...]
    https_name: str | None = None


@dataclass(frozen=True)
class LocalFacts:
    """What this node knows of itself at the start of a cycle."""

    now: float
    lease_id: int | None
    lease_ttl: float | None  # the ttl the lease was granted with
    last_etcd_contact: float  # when etcd (a quorum of it) last answered us
    own_timing: Timing
    own_limits: Limits
    stats: IcecastStats | None  # None: this node's Icecast does not answer
    listeners: Mapping[str, int] = field(default_factory=dict)  # front door, by mount
    counted_at: float | None = None  # when `listeners` were read (wall clock)
    # When this node's Icecast last answered (`now`'s clock); None: not since the start.
    icecast_answered_at: float | None = None
    bandwidth_kbps: float = 0.0
    transcoders: Mapping[str, TranscoderState] = field(default_factory=dict)
    # Mounts whose claims this node gave up (their Liquidsoap kept failing here), with
    # when (`now`'s clock): left to other nodes until GIVE_UP_SECONDS have passed.
    given_up: Mapping[str, float] = field(default_factory=dict)
    standbys: tuple[str, ...] = ()  # programmes whose standby runs here and answers
    # Programmes on air here -> the leader their Liquidsoap pushes to.
    programme_leaders: Mapping[str, str] = field(default_factory=dict)
    # Produced mounts nobody claims, with when this node first saw them so (`now`'s clock).
    unclaimed_since: Mapping[str, float] = field(default_factory=dict)
    live_mounts: tuple[str, ...] = ()  # mounts heard live here
    hls_mounts: tuple[str, ...] = ()  # mounts HLS players play here
    hls_numbers: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # by mount cut
    leading_since: float | None = None  # wall clock
    air_changed: Mapping[str, float] = field(default_factory=dict)  # wall clock, by mount
    published_status: str | None = None  # what etcd holds under nodes/<me>, as we wrote it
    leadership: Leadership = DETACHED  # as last read (kept while etcd is away)
    # HTTPS ports open now: none before the node has a certificate it may serve, so no
    # node sends an HTTPS listener here before then.
    tls_ports: tuple[int, ...] = ()
    # Cut off from etcd, but held by the failsafe: as leader, every other node
    # acknowledged it lately; as replica, it acknowledged its leader lately.
    failsafe_held: bool = False
    failsafe_on: bool = False  # this node has the cluster's failsafe key
    acknowledged_at: float | None = None  # when this node last acknowledged a failsafe ping
    lease_lost: LeaseLoss | None = None  # the last time this node found its lease gone


class LeaseStep(Enum):
    KEEP = "keep"
    GRANT = "grant"  # no lease: take one
    MOVE = "move"  # the cluster's ttl changed: a new lease, and what we hold moves onto it


@dataclass(frozen=True)
class Moves:
    """The moves in etcd a cycle makes."""

    lease: LeaseStep = LeaseStep.KEEP
    move_transcoders: tuple[str, ...] = ()  # our claims, to move to the new lease
    hand_over: Handover | None = None  # step down, then resign the leader key
    # Step down and resign unasked, for this reason: this leader cannot take sources.
    step_down: str | None = None
    resign_previous_life: int | None = None  # the epoch of this node's former leadership
    campaign: bool = False

    @property
    def any(self) -> bool:
        """Whether there is a move, after which the state must be read again."""
        return (
            self.lease is not LeaseStep.KEEP
            or self.hand_over is not None
            or self.step_down is not None
            or self.resign_previous_life is not None
            or self.campaign
        )


@dataclass(frozen=True)
class CyclePlan:
    timing: Timing
    leadership: Leadership  # as etcd says (or as last known, without a fresh read)
    acting: Leadership  # what this node may act as now: nothing while cut off from etcd
    status: NodeStatus  # this node's status as it should be published
    moves: Moves = field(default_factory=Moves)
    finish_handover: Handover | None = None  # a served request, to delete
    icecast: IcecastPlan | None = None  # None: never read etcd, leave Icecast as it is
    transcoders: TranscoderPlan | None = None  # None: stop every transcoder
    transcoder_leader: NodeStatus | None = None  # where transcoders pull from and push to
    drop_sources: tuple[str, ...] = ()  # stray sources on a node that does not lead
    publish: str | None = None  # the status's JSON when etcd does not hold it yet
    relay_titles: Mapping[str, str] = field(default_factory=dict)  # mount -> title to keep
    register: bool = False  # this node's `known` record is missing or says down
    mark_down: tuple[str, ...] = ()  # the leader's: known nodes whose status expired


def cluster_timing(state: ClusterState | None, own: Timing) -> Timing:
    return own if state is None else state.settings.timing_for(own)


def cluster_limits(state: ClusterState | None, own: Limits) -> Limits:
    return own if state is None else state.settings.limits_for(own)


def cut_off(facts: LocalFacts, timing: Timing) -> bool:
    """Cut off from etcd for retry_timeout, and not held by the failsafe."""
    return not facts.failsafe_held and must_stop_leading(
        facts.now, facts.last_etcd_contact, timing.retry_timeout
    )


def effective_leadership(leadership: Leadership, is_cut_off: bool) -> Leadership:
    """What this node may act as right now: nothing, once cut off from etcd."""
    if leadership.role is Role.LEADER and is_cut_off:
        return Leadership(Role.DETACHED, None, leadership.epoch)
    return leadership


def current_leader_status(
    leadership: Leadership,
    is_cut_off: bool,
    state: ClusterState | None,
    own_status: Callable[[], NodeStatus],
) -> NodeStatus | None:
    """The leader's status as etcd says now (ours, made only then, when we lead); None
    while detached or cut off from etcd: sources must not be piped, nor transcoders
    pointed, at a node that may have stepped down."""
    if leadership.role is Role.DETACHED or is_cut_off:
        return None
    if leadership.role is Role.LEADER:
        return own_status()
    return state.nodes.get(leadership.leader_name or "") if state is not None else None


def failing_transcoders(facts: LocalFacts) -> set[str]:
    """Mounts whose Liquidsoap failed here often enough in a row to give the claim up."""
    return {
        mount
        for mount, running in facts.transcoders.items()
        if running.failures >= GIVE_UP_AFTER_FAILURES
    }


def node_status(
    identity: NodeIdentity,
    leadership: Leadership,
    state: ClusterState | None,
    facts: LocalFacts,
) -> NodeStatus:
    """This node's published status. Listeners and bandwidth are the front door's:
    Icecast sees one connection per mount (the fan-out's upstream)."""
    stats = facts.stats
    limits = cluster_limits(state, facts.own_limits)
    mounts = state.mounts.values() if state is not None else ()
    return NodeStatus(
        name=identity.name,
        address=identity.address,
        icecast_port=identity.icecast_port,
        icecast_up=stats is not None,
        role=leadership.role.value,
        epoch=leadership.epoch,
        listeners=dict(sorted((name, count) for name, count in facts.listeners.items() if count)),
        bandwidth_kbps=round(facts.bandwidth_kbps, 1),
        bandwidth_limit_kbps=limits.bandwidth_kbps,
        listener_limit=limits.max_listeners,
        draining=state is not None and identity.name in state.draining,
        agent_version=__version__,
        public_address=identity.public_address,
        front_door_ports=identity.front_door_ports,
        tls_ports=facts.tls_ports,
        https_name=identity.https_name,
        transcoders=tuple(sorted(facts.transcoders)),
        silent_mounts=tuple(
            sorted(mount for mount, running in facts.transcoders.items() if running.silent)
        ),
        live_mounts=tuple(sorted(facts.live_mounts)),
        hls_mounts=tuple(sorted(facts.hls_mounts)),
        hls_numbers=dict(sorted(facts.hls_numbers.items())),
        leading_since=facts.leading_since,
        air_changed=dict(sorted(facts.air_changed.items())),
        counted_at=facts.counted_at,
        given_up=tuple(sorted(set(facts.given_up) | failing_transcoders(facts))),
        standbys=tuple(sorted(facts.standbys)),
        programmes={
            mount: running.programme.to_dict()
            for mount, running in sorted(facts.transcoders.items())
            if running.programme is not None
        },
        mounts=tuple(
            sorted(
                mount.name
                for mount in mounts
                if stats is not None
                and (mount.path in stats.sources or mount.holding_path in stats.sources)
            )
        ),
    )


def icecast_plan(state: ClusterState | None, leading: bool) -> IcecastPlan | None:
    if state is None:
        return None  # never read etcd: leave Icecast as it is
    mounts = tuple(sorted(state.mounts.values(), key=lambda mount: mount.name))
    return IcecastPlan(leading=leading, mounts=mounts)


def _moves(identity: NodeIdentity, state: ClusterState, facts: LocalFacts, timing: Timing) -> Moves:
    """One kind at a time: a lease first, then a handover, then a campaign (each needs
    what the one before it gives)."""
    return _lease_moves(identity, state, facts, timing) or _leadership_moves(
        identity, state, facts, timing
    )


def _lease_moves(
    identity: NodeIdentity, state: ClusterState, facts: LocalFacts, timing: Timing
) -> Moves | None:
    """A lease to take, or to move onto the cluster's new ttl; None: ours is right."""
    if facts.lease_id is None:
        return Moves(lease=LeaseStep.GRANT)
    if timing.ttl != facts.lease_ttl:
        previous_life = previous_life_claims(state, identity.name, facts.lease_id)
        mine = sorted(
            mount
            for mount, owner in state.transcoders.items()
            if owner == identity.name and mount not in previous_life
        )
        return Moves(lease=LeaseStep.MOVE, move_transcoders=tuple(mine))
    return None


def _leadership_moves(
    identity: NodeIdentity, state: ClusterState, facts: LocalFacts, timing: Timing
) -> Moves:
    """With a lease of the right ttl: what leadership asks of this node."""
    previous_life = previous_life_epoch(state, identity.name, facts.lease_id)
    if previous_life is not None:
        return Moves(resign_previous_life=previous_life)
    leadership = leadership_from_state(state, identity.name, facts.lease_id)
    if must_hand_over(state, leadership):
        return Moves(hand_over=state.handover)
    silent_for = icecast_silent_for(facts)
    if (
        leadership.role is Role.LEADER
        and silent_for >= timing.retry_timeout
        and another_can_lead(state, identity.name)
    ):
        return Moves(step_down=f"its Icecast has not answered for {silent_for:.1f} s")
    # A node whose Icecast does not answer could not take the sources it would win.
    if (
        should_campaign(state, facts.lease_id, identity.name)
        and not cut_off(facts, timing)
        and facts.stats is not None
        and may_campaign(facts, timing)
    ):
        return Moves(campaign=True)
    return Moves()


def may_campaign(facts: LocalFacts, timing: Timing) -> bool:
    """Not while another node may still lead unaware: a leader this node acknowledged
    (coordination/failsafe.py), or one whose lease went with ours (a mass revocation).
    A node whose own lost lease held the leadership campaigns at once: the only leader
    the others could still follow was itself."""
    loss = facts.lease_lost
    return failsafe_may_take(facts, timing) and (
        loss is None or loss.led or settled_after_lease_loss(facts.now, loss, timing)
    )


def may_claim(facts: LocalFacts, timing: Timing) -> bool:
    """Not while the owner of a freed transcoder may still run it unaware: its lease may
    have gone with ours, or it runs on under a failsafe hold."""
    return failsafe_may_take(facts, timing) and settled_after_lease_loss(
        facts.now, facts.lease_lost, timing
    )


def failsafe_may_take(facts: LocalFacts, timing: Timing) -> bool:
    return not facts.failsafe_on or may_take(
        facts.now, facts.last_etcd_contact, facts.acknowledged_at, timing
    )


def icecast_silent_for(facts: LocalFacts) -> float:
    """How long this node's Icecast has not answered (0 while it answers)."""
    if facts.stats is not None or facts.icecast_answered_at is None:
        return 0.0
    return facts.now - facts.icecast_answered_at


def another_can_lead(state: ClusterState, me: str) -> bool:
    """Another node is up with its Icecast answering: stepping down hands the sources to
    it. With none, a leader whose Icecast is down keeps the key (nobody could do better)."""
    return any(name != me and status.icecast_up for name, status in state.nodes.items())


def plan_cycle(
    identity: NodeIdentity,
    state: ClusterState | None,
    facts: LocalFacts,
    *,
    fresh: bool,
) -> CyclePlan:
    """`state`: the last state read; `fresh`: read this cycle (etcd answered). Without a
    fresh read the plan takes no lease, hands nothing over and does not campaign, keeps
    the leadership last known, and plans the rest from the last state (claims it makes
    then are transactions: they fail harmlessly on a stale view)."""
    timing = cluster_timing(state, facts.own_timing)
    is_cut_off = cut_off(facts, timing)
    leadership = (
        leadership_from_state(state, identity.name, facts.lease_id)
        if fresh and state is not None
        else facts.leadership
    )
    acting = effective_leadership(leadership, is_cut_off)
    moves = _moves(identity, state, facts, timing) if fresh and state is not None else Moves()
    status = node_status(identity, acting, state, facts)
    leader = current_leader_status(acting, is_cut_off, state, lambda: status)
    leading = acting.role is Role.LEADER
    transcoders = None
    if state is not None and facts.lease_id is not None and leader is not None:
        previous_life = previous_life_claims(state, identity.name, facts.lease_id)
        transcoders = plan_transcoders(
            state.mounts,
            {  # held by no node that runs: taken by nobody, run by nobody, released below
                mount: PREVIOUS_LIFE if mount in previous_life else owner
                for mount, owner in state.transcoders.items()
            },
            state.nodes,
            state.draining,
            identity.name,
            me_eligible=facts.stats is not None,  # cut off, there is no leader: no plan
            failing=failing_transcoders(facts),
            avoiding=facts.given_up,
            overdue={
                mount
                for mount, since in facts.unclaimed_since.items()
                if facts.now - since >= timing.loop_wait
            },
            leader=leader.name,
            restarting={
                mount
                for mount, pushes_to in facts.programme_leaders.items()
                if pushes_to != leader.name
            },
        )
        if previous_life:
            transcoders = replace(
                transcoders, release=tuple(sorted({*transcoders.release, *previous_life}))
            )
        if transcoders.claim is not None and not may_claim(facts, timing):
            transcoders = replace(transcoders, claim=None)  # its owner may still run it
    served = None
    if state is not None and leading and state.handover is not None:
        served = state.handover if state.handover.epoch != acting.epoch else None
    stray: tuple[str, ...] = ()
    if not leading and facts.stats is not None:
        stray = tuple(
            sorted(path for path in facts.stats.sources if path.startswith(LIVE_MOUNT_PREFIX))
        )
    relay_titles: dict[str, str] = {}
    if state is not None and leading and facts.stats is not None:
        relay_titles = relayed_titles(state.mounts.values(), facts.stats.titles, state.titles)
    published = status.to_json()
    # A new count time alone is not news: publishing it every loop would wake every agent.
    news = facts.published_status is None or status.without_count_time().to_json() != (
        status_json_without_count_time(facts.published_status)
    )
    return CyclePlan(
        timing=timing,
        leadership=leadership,
        acting=acting,
        icecast=icecast_plan(state, leading),
        transcoders=transcoders,
        transcoder_leader=leader,
        drop_sources=stray,
        status=status,
        publish=published if facts.lease_id is not None and news else None,
        finish_handover=served if fresh else None,
        moves=moves,
        relay_titles=relay_titles,
        register=fresh and needs_registering(identity.name, state, facts.lease_id),
        mark_down=nodes_to_mark_down(identity.name, state) if fresh and leading else (),
    )


def needs_registering(me: str, state: ClusterState | None, lease_id: int | None) -> bool:
    """Once its status is in etcd (a mark before would be taken for down at once): its
    `known` record is missing, or says down."""
    if state is None or lease_id is None or me not in state.nodes:
        return False
    return me not in state.known or state.known[me] is not None


def nodes_to_mark_down(me: str, state: ClusterState | None) -> tuple[str, ...]:
    """Known nodes marked up whose status expired (their agent stopped or died)."""
    if state is None:
        return ()
    return tuple(
        name
        for name, since in sorted(state.known.items())
        if since is None and name not in state.nodes and name != me
    )
