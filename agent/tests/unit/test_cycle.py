"""The cycle planner, driven through fabricated cluster states like Patroni's test_ha.py:
each test builds what etcd says and what this node knows, and asserts the plan. Pure: no
etcd, no Icecast, no mocks."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

from radioagent.config import Limits, Timing
from radioagent.coordination.cycle import (
    CyclePlan,
    LeaseStep,
    LocalFacts,
    Moves,
    NodeIdentity,
    plan_cycle,
)
from radioagent.coordination.election import Leadership, Role
from radioagent.coordination.state import ClusterState, Handover, LeaderRecord
from radioagent.icecast.render import IcecastPlan
from radioagent.icecast.stats import IcecastStats
from radioagent.model import MountSpec, NodeStatus, node_status_from_json, parse_mount
from radioagent.settings import ClusterSettings
from radioagent.transcoding.assignment import GIVE_UP_AFTER_FAILURES, TranscoderPlan, first_taker
from radioagent.transcoding.state import TranscoderState
from tests.unit.builders import node_status

ME = NodeIdentity("node1", "10.0.0.1", 8001, None, (80, 8000))
MY_LEASE = 101
OTHER_LEASE = 202
TIMING = Timing(ttl=15, loop_wait=3, retry_timeout=6)
NOW = 1000.0
LIVE = parse_mount({"name": "live.mp3", "source_password": "pw"})
LOW = parse_mount(
    {
        "name": "low.mp3",
        "source_password": "pw",
        "transcode": {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 48}},
    }
)
MOUNTS = {"live.mp3": LIVE, "low.mp3": LOW}


def icecast_up(*paths: str) -> IcecastStats:
    return IcecastStats(listeners_by_mount={}, outgoing_kbps=0.0, sources=frozenset(paths))


def facts(**fields: Any) -> LocalFacts:
    """A node in good health: a lease of the current ttl, etcd heard a moment ago, its
    Icecast answering."""
    values: dict = {
        "now": NOW,
        "lease_id": MY_LEASE,
        "lease_ttl": TIMING.ttl,
        "last_etcd_contact": NOW - 1,
        "own_timing": TIMING,
        "own_limits": Limits(),
        "stats": icecast_up(LIVE.path, LIVE.holding_path),
    }
    values.update(fields)
    return LocalFacts(**values)


def state(
    leader: tuple[str, int] | None = ("node2", OTHER_LEASE),
    *,
    epoch: int = 7,
    mounts: dict[str, MountSpec] | None = None,
    nodes: dict[str, NodeStatus] | None = None,
    **fields: Any,
) -> ClusterState:
    """What etcd says: node2 leads (epoch 7) unless told otherwise; three healthy nodes."""
    record = None if leader is None else LeaderRecord(leader[0], epoch, leader[1])
    if nodes is None:
        nodes = {
            name: node_status(name, address=f"10.0.0.{index}")
            for index, name in enumerate(("node1", "node2", "node3"), start=1)
        }
    return ClusterState(
        revision=50,
        leader=record,
        nodes=nodes,
        mounts=MOUNTS if mounts is None else mounts,
        **fields,
    )


def leading_state(**fields: Any) -> ClusterState:
    return state(("node1", MY_LEASE), **fields)


def icecast_of(plan: CyclePlan) -> IcecastPlan:
    assert plan.icecast is not None
    return plan.icecast


def transcoders_of(plan: CyclePlan) -> TranscoderPlan:
    assert plan.transcoders is not None
    return plan.transcoders


def leader_of(plan: CyclePlan) -> NodeStatus:
    assert plan.transcoder_leader is not None
    return plan.transcoder_leader


# --- leases ------------------------------------------------------------------------------


def test_a_new_agent_takes_a_lease_before_anything_else() -> None:
    plan = plan_cycle(ME, state(leader=None), facts(lease_id=None, lease_ttl=None), fresh=True)
    assert plan.moves.lease is LeaseStep.GRANT
    assert not plan.moves.campaign
    assert plan.moves.any
    assert plan.publish is None  # nothing to hang the status on yet
    assert plan.transcoders is None


def test_a_healthy_replica_keeps_its_lease_and_makes_no_move() -> None:
    plan = plan_cycle(ME, state(), facts(), fresh=True)
    assert plan.moves.lease is LeaseStep.KEEP
    assert not plan.moves.any
    assert plan.leadership == Leadership(Role.REPLICA, "node2", 7)


def test_a_changed_ttl_moves_what_we_hold_to_a_new_lease() -> None:
    settings = ClusterSettings(timing=Timing(ttl=30, loop_wait=3, retry_timeout=6))
    current = leading_state(settings=settings, transcoders={"low.mp3": "node1"})
    plan = plan_cycle(ME, current, facts(), fresh=True)
    assert plan.moves.lease is LeaseStep.MOVE
    assert plan.timing.ttl == 30
    assert plan.moves.move_transcoders == ("low.mp3",)
    assert plan.leadership.role is Role.LEADER  # the leader key moves with its epoch


def test_a_changed_ttl_moves_only_our_own_claims() -> None:
    settings = ClusterSettings(timing=Timing(ttl=30, loop_wait=3, retry_timeout=6))
    current = state(settings=settings, transcoders={"low.mp3": "node3"})
    plan = plan_cycle(ME, current, facts(), fresh=True)
    assert plan.moves.lease is LeaseStep.MOVE
    assert plan.moves.move_transcoders == ()


# --- elections -----------------------------------------------------------------------------


def test_leader_gone_the_node_campaigns() -> None:
    plan = plan_cycle(ME, state(leader=None), facts(), fresh=True)
    assert plan.moves.campaign
    assert plan.leadership.role is Role.DETACHED
    assert plan.transcoders is None  # no leader to push to: nothing runs


def test_leader_alive_nobody_campaigns() -> None:
    plan = plan_cycle(ME, state(), facts(), fresh=True)
    assert not plan.moves.campaign


def test_a_node_cut_off_from_etcd_does_not_campaign_on_a_stale_read() -> None:
    cut_off = facts(last_etcd_contact=NOW - TIMING.retry_timeout)
    plan = plan_cycle(ME, state(leader=None), cut_off, fresh=True)
    assert not plan.moves.campaign


def test_a_node_whose_icecast_does_not_answer_does_not_campaign() -> None:
    """It could not take the sources it would win."""
    plan = plan_cycle(
        ME, state(leader=None), facts(stats=None, icecast_answered_at=NOW - 1), fresh=True
    )
    assert not plan.moves.campaign


def test_a_leader_whose_icecast_is_silent_for_retry_timeout_steps_down() -> None:
    silent = facts(stats=None, icecast_answered_at=NOW - TIMING.retry_timeout)
    plan = plan_cycle(ME, leading_state(), silent, fresh=True)
    assert plan.moves.step_down == "its Icecast has not answered for 6.0 s"
    assert plan.moves.any
    assert not plan.moves.campaign


def test_a_leader_keeps_leading_through_a_short_icecast_silence() -> None:
    """Icecast restarted by systemd answers again within a second or two."""
    brief = facts(stats=None, icecast_answered_at=NOW - TIMING.retry_timeout + 0.5)
    assert plan_cycle(ME, leading_state(), brief, fresh=True).moves.step_down is None
    answering = facts(icecast_answered_at=NOW - 100)  # stats: it answers now
    assert plan_cycle(ME, leading_state(), answering, fresh=True).moves.step_down is None


def test_a_leader_whose_icecast_is_down_stays_when_no_other_node_could_lead() -> None:
    nodes = {
        "node1": node_status("node1", icecast_up=False),
        "node2": node_status("node2", icecast_up=False),
    }
    silent = facts(stats=None, icecast_answered_at=NOW - 60)
    plan = plan_cycle(ME, leading_state(nodes=nodes), silent, fresh=True)
    assert plan.moves.step_down is None


def test_our_own_previous_life_is_not_our_leadership_and_is_resigned_at_once() -> None:
    """A leader key with our name on another lease (before a restart) is not ours: the
    new life resigns it (by its epoch) so nobody waits out the old lease."""
    plan = plan_cycle(ME, state(("node1", 999), epoch=41), facts(), fresh=True)
    assert plan.leadership.role is Role.REPLICA
    assert not icecast_of(plan).leading
    assert plan.moves.resign_previous_life == 41
    assert not plan.moves.campaign
    # Without a lease of our own yet, the lease comes first; another node's key is theirs;
    # our own current leadership is kept; a stale read resigns nothing.
    assert plan_cycle(ME, state(("node1", 999)), facts(lease_id=None), fresh=True).moves == Moves(
        lease=LeaseStep.GRANT
    )
    assert plan_cycle(ME, state(), facts(), fresh=True).moves.resign_previous_life is None
    assert plan_cycle(ME, leading_state(), facts(), fresh=True).moves.resign_previous_life is None
    stale = plan_cycle(ME, state(("node1", 999)), facts(), fresh=False)
    assert stale.moves.resign_previous_life is None


def test_the_leader_renders_a_leaders_icecast_and_publishes_itself_as_leader() -> None:
    plan = plan_cycle(ME, leading_state(), facts(), fresh=True)
    assert plan.acting == Leadership(Role.LEADER, "node1", 7)
    assert icecast_of(plan).leading
    assert icecast_of(plan).mounts == (LIVE, LOW)
    assert plan.status.role == "leader"
    assert plan.status.epoch == 7
    assert plan.transcoder_leader == plan.status  # transcoders push to ourselves


def test_a_transcoder_that_keeps_failing_here_is_given_up_and_the_status_says_so() -> None:
    current = state(transcoders={"low.mp3": "node1"})
    failing = facts(transcoders={"low.mp3": TranscoderState(failures=GIVE_UP_AFTER_FAILURES)})
    plan = plan_cycle(ME, current, failing, fresh=True)
    assert transcoders_of(plan).give_up == ("low.mp3",)
    assert transcoders_of(plan).run == ()
    assert plan.status.given_up == ("low.mp3",)
    almost = facts(transcoders={"low.mp3": TranscoderState(failures=GIVE_UP_AFTER_FAILURES - 1)})
    assert transcoders_of(plan_cycle(ME, current, almost, fresh=True)).run == ("low.mp3",)
    later = plan_cycle(ME, state(), facts(given_up={"low.mp3": 12.0}), fresh=True)
    assert later.status.given_up == ("low.mp3",)
    assert transcoders_of(later).claim is None  # the free mount is left to the others
    assert transcoders_of(plan_cycle(ME, state(), overdue_facts(), fresh=True)).claim == "low.mp3"


def test_a_programme_pushing_to_the_old_leader_is_handed_over_by_its_owner_now_leading() -> None:
    programme = parse_mount(
        {"name": "radio.mp3", "source_password": "pw", "programme": {"inputs": ["live.mp3"]}}
    )
    current = leading_state(
        mounts={**MOUNTS, "radio.mp3": programme}, transcoders={"radio.mp3": "node1"}
    )
    moved = plan_cycle(ME, current, facts(programme_leaders={"radio.mp3": "node2"}), fresh=True)
    assert transcoders_of(moved).hand_over == ("radio.mp3",)
    kept = plan_cycle(ME, current, facts(programme_leaders={"radio.mp3": "node1"}), fresh=True)
    assert transcoders_of(kept).hand_over == ()
    assert transcoders_of(kept).run == ("radio.mp3",)


def test_the_status_names_the_standbys_running_here() -> None:
    plan = plan_cycle(ME, state(), facts(standbys=("radio.mp3",)), fresh=True)
    assert plan.status.standbys == ("radio.mp3",)
    assert node_status_from_json(plan.status.to_json()).standbys == ("radio.mp3",)


def test_a_replica_points_transcoders_at_the_leaders_published_address() -> None:
    plan = plan_cycle(ME, state(transcoders={"low.mp3": "node1"}), facts(), fresh=True)
    assert leader_of(plan).name == "node2"
    assert leader_of(plan).address == "10.0.0.2"
    assert transcoders_of(plan).run == ("low.mp3",)


# --- handovers -----------------------------------------------------------------------------


def test_handover_requested_of_my_epoch_i_step_down() -> None:
    request = Handover(epoch=7, from_node="node1", to="node3")
    plan = plan_cycle(ME, leading_state(handover=request), facts(), fresh=True)
    assert plan.moves.hand_over == request
    assert plan.finish_handover is None  # pending, not served
    assert not plan.moves.campaign
    assert plan.moves.any


def test_handover_for_an_older_epoch_is_not_mine_to_serve() -> None:
    request = Handover(epoch=3, from_node="node1", to="node3")
    plan = plan_cycle(ME, leading_state(handover=request), facts(), fresh=True)
    assert plan.moves.hand_over is None
    assert plan.finish_handover == request  # served: the new leader deletes it


def test_handover_pending_for_another_node_i_do_not_campaign() -> None:
    request = Handover(epoch=7, from_node="node2", to="node3")
    plan = plan_cycle(ME, state(leader=None, handover=request), facts(), fresh=True)
    assert not plan.moves.campaign


def test_handover_pending_for_me_i_campaign() -> None:
    request = Handover(epoch=7, from_node="node2", to="node1")
    plan = plan_cycle(ME, state(leader=None, handover=request), facts(), fresh=True)
    assert plan.moves.campaign


def test_handover_without_a_target_the_leader_that_stepped_down_does_not_campaign() -> None:
    request = Handover(epoch=7, from_node="node1", to=None)
    plan = plan_cycle(ME, state(leader=None, handover=request), facts(), fresh=True)
    assert not plan.moves.campaign


def test_a_replica_never_deletes_a_handover_request() -> None:
    request = Handover(epoch=3, from_node="node2", to="node3")
    plan = plan_cycle(ME, state(handover=request), facts(), fresh=True)
    assert plan.finish_handover is None


# --- etcd unreachable ------------------------------------------------------------------------


def test_etcd_unreachable_past_retry_timeout_the_leader_acts_as_nothing() -> None:
    known = Leadership(Role.LEADER, "node1", 7)
    cut_off = facts(last_etcd_contact=NOW - TIMING.retry_timeout - 0.1, leadership=known)
    plan = plan_cycle(ME, leading_state(), cut_off, fresh=False)
    assert plan.leadership == known  # what etcd last said...
    assert plan.acting.role is Role.DETACHED  # ...but it may not act on it
    assert not icecast_of(plan).leading
    assert plan.transcoders is None  # stopped before the claims can expire elsewhere
    assert plan.transcoder_leader is None
    assert not plan.moves.any  # no move in etcd without a fresh read
    assert plan.status.role == "detached"


def test_etcd_unreachable_briefly_the_leader_keeps_leading() -> None:
    known = Leadership(Role.LEADER, "node1", 7)
    plan = plan_cycle(ME, leading_state(), facts(leadership=known), fresh=False)
    assert plan.acting == known
    assert icecast_of(plan).leading


def test_without_a_fresh_read_the_last_known_leadership_stands() -> None:
    """The state in hand may be older than a lease expiry the keepalive already saw."""
    detached = Leadership(Role.DETACHED)
    plan = plan_cycle(ME, leading_state(), facts(lease_id=None, leadership=detached), fresh=False)
    assert plan.leadership == detached
    assert plan.moves.lease is LeaseStep.KEEP  # no lease taken without etcd


def test_never_read_etcd_leaves_icecast_as_it_is() -> None:
    plan = plan_cycle(ME, None, facts(lease_id=None, lease_ttl=None), fresh=False)
    assert plan.icecast is None
    assert plan.transcoders is None
    assert not plan.moves.any


# --- local health ----------------------------------------------------------------------------


def test_my_icecast_down_i_claim_no_transcoder() -> None:
    plan = plan_cycle(ME, state(), facts(stats=None), fresh=True)
    assert plan.transcoders is not None
    assert transcoders_of(plan).claim is None
    assert not plan.status.icecast_up


def overdue_facts(**fields: Any) -> LocalFacts:
    """low.mp3 has been free for a whole cycle: any node with the fewest claims races."""
    return facts(unclaimed_since={"low.mp3": NOW - TIMING.loop_wait}, **fields)


def test_my_icecast_up_i_claim_a_free_transcoder() -> None:
    plan = plan_cycle(ME, state(), overdue_facts(), fresh=True)
    assert transcoders_of(plan).claim == "low.mp3"


def test_a_free_transcoder_goes_to_its_first_taker_at_once_and_to_anyone_a_cycle_later() -> None:
    """The first taker (fewest claims, then the rendezvous hash) is node3 for low.mp3
    among node1-3: node1 leaves it to node3 until it has been free for loop_wait."""
    assert first_taker("low.mp3", ("node1", "node2", "node3"), defaultdict(int)) == "node3"
    just_freed = facts(unclaimed_since={"low.mp3": NOW - TIMING.loop_wait + 0.1})
    assert transcoders_of(plan_cycle(ME, state(), just_freed, fresh=True)).claim is None
    assert transcoders_of(plan_cycle(ME, state(), overdue_facts(), fresh=True)).claim == "low.mp3"
    node3 = NodeIdentity("node3", "10.0.0.3", 8001, None, (80, 8000))
    assert transcoders_of(plan_cycle(node3, state(), just_freed, fresh=True)).claim == "low.mp3"


def test_my_icecast_down_the_transcoders_i_run_keep_running() -> None:
    """They push to the leader's Icecast, not ours; moving them would cost a gap."""
    plan = plan_cycle(ME, state(transcoders={"low.mp3": "node1"}), facts(stats=None), fresh=True)
    assert transcoders_of(plan).run == ("low.mp3",)


def test_drained_i_claim_no_transcoder_and_say_so() -> None:
    plan = plan_cycle(ME, state(draining=frozenset({"node1"})), facts(), fresh=True)
    assert transcoders_of(plan).claim is None
    assert plan.status.draining


def test_transcoder_owner_gone_a_healthy_node_claims_it() -> None:
    """The owner's lease expired: its claim vanished with it, the mount is free."""
    nodes = {name: node_status(name) for name in ("node1", "node2")}
    plan = plan_cycle(ME, state(nodes=nodes, transcoders={}), overdue_facts(), fresh=True)
    assert transcoders_of(plan).claim == "low.mp3"


def test_a_node_holding_more_transcoders_than_another_waits() -> None:
    extra = parse_mount(
        {
            "name": "tiny.mp3",
            "source_password": "pw",
            "transcode": {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 32}},
        }
    )
    mounts = {**MOUNTS, "tiny.mp3": extra}
    plan = plan_cycle(
        ME, state(mounts=mounts, transcoders={"low.mp3": "node1"}), facts(), fresh=True
    )
    assert transcoders_of(plan).claim is None  # node2 and node3 hold none


def test_a_claim_on_a_mount_no_longer_transcoded_is_released() -> None:
    plan = plan_cycle(
        ME, state(mounts={"live.mp3": LIVE}, transcoders={"low.mp3": "node1"}), facts(), fresh=True
    )
    assert transcoders_of(plan).release == ("low.mp3",)
    assert transcoders_of(plan).run == ()


def test_a_replica_drops_stray_sources_on_its_live_mounts() -> None:
    stats = icecast_up(LIVE.path, LIVE.live_path, "/_live/other.mp3")
    plan = plan_cycle(ME, state(), facts(stats=stats), fresh=True)
    assert plan.drop_sources == ("/_live/live.mp3", "/_live/other.mp3")


def test_the_leader_keeps_its_sources() -> None:
    stats = icecast_up(LIVE.path, LIVE.live_path)
    plan = plan_cycle(ME, leading_state(), facts(stats=stats), fresh=True)
    assert plan.drop_sources == ()


# --- the status ------------------------------------------------------------------------------


def test_the_status_says_what_this_node_serves_and_runs() -> None:
    running = {"low.mp3": TranscoderState(running=True, silent=True)}
    plan = plan_cycle(
        ME,
        state(transcoders={"low.mp3": "node1"}),
        facts(
            listeners={"live.mp3": 4, "low.mp3": 0},
            bandwidth_kbps=512.04,
            transcoders=running,
            live_mounts=("live.mp3",),
            hls_mounts=("low.mp3", "live.mp3"),
            hls_numbers={"live.mp3": (425000001, 2)},
            leading_since=1_700_000_000.0,
            air_changed={"live.mp3": 1_700_000_100.0},
        ),
        fresh=True,
    )
    status = plan.status
    assert status.mounts == ("live.mp3",)  # low.mp3 is not in Icecast's sources
    assert status.listeners == {"live.mp3": 4}
    assert status.bandwidth_kbps == 512.0
    assert status.transcoders == ("low.mp3",)
    assert status.silent_mounts == ("low.mp3",)
    assert status.live_mounts == ("live.mp3",)
    assert status.hls_mounts == ("live.mp3", "low.mp3")
    assert status.hls_numbers == {"live.mp3": (425000001, 2)}
    assert (status.leading_since, status.air_changed) == (
        1_700_000_000.0,
        {"live.mp3": 1_700_000_100.0},
    )
    assert status.front_door_ports == (80, 8000)


def test_cluster_limits_apply_unless_the_node_sets_its_own() -> None:
    settings = ClusterSettings(limits=Limits(max_listeners=100, bandwidth_kbps=5000))
    own = facts(own_limits=Limits(max_listeners=20))
    plan = plan_cycle(ME, state(settings=settings), own, fresh=True)
    assert plan.status.listener_limit == 20
    assert plan.status.bandwidth_limit_kbps == 5000


def test_an_unchanged_status_is_not_published_again() -> None:
    first = plan_cycle(ME, state(), facts(), fresh=True)
    assert first.publish == first.status.to_json()
    again = plan_cycle(ME, state(), facts(published_status=first.status.to_json()), fresh=True)
    assert again.publish is None
    moved = replace(facts(published_status=first.status.to_json()), listeners={"live.mp3": 1})
    assert plan_cycle(ME, state(), moved, fresh=True).publish is not None


def test_a_status_is_published_with_its_count_time_but_not_for_it_alone() -> None:
    """The count time lets other nodes' predictions keep what was sent after it; a new
    one alone would otherwise publish every loop and wake every agent."""
    first = plan_cycle(ME, state(), facts(counted_at=1000.0), fresh=True)
    assert first.publish is not None
    assert first.status.counted_at == 1000.0
    later = facts(published_status=first.publish, counted_at=1003.0)
    assert plan_cycle(ME, state(), later, fresh=True).publish is None
    moved = replace(later, listeners={"live.mp3": 1})
    published = plan_cycle(ME, state(), moved, fresh=True).publish
    assert published is not None
    assert node_status_from_json(published).counted_at == 1003.0


# --- relayed titles ----------------------------------------------------------------------

EXT = parse_mount({"name": "ext.mp3", "source_password": "pw", "relay_url": "http://radio.test/"})


def titled_feed(title: str) -> IcecastStats:
    return IcecastStats({}, 0.0, frozenset({EXT.live_path}), titles={EXT.live_path: title})


def test_the_leader_keeps_a_relayed_streams_title_and_a_replica_does_not() -> None:
    mounts = {"ext.mp3": EXT}
    leading = plan_cycle(
        ME, leading_state(mounts=mounts), facts(stats=titled_feed("Song")), fresh=True
    )
    assert leading.relay_titles == {"ext.mp3": "Song"}
    replica = plan_cycle(ME, state(mounts=mounts), facts(stats=titled_feed("Song")), fresh=True)
    assert replica.relay_titles == {}


def test_a_node_registers_once_its_status_is_in_etcd_and_again_after_being_down() -> None:
    assert plan_cycle(ME, state(), facts(), fresh=True).register  # no record yet
    assert not plan_cycle(ME, state(known={"node1": None}), facts(), fresh=True).register
    assert plan_cycle(ME, state(known={"node1": 1234.0}), facts(), fresh=True).register
    without_me = {name: node_status(name) for name in ("node2", "node3")}
    assert not plan_cycle(ME, state(nodes=without_me), facts(), fresh=True).register
    assert not plan_cycle(ME, state(), facts(), fresh=False).register


def test_the_leader_marks_known_nodes_without_a_status_down_once() -> None:
    known = {"node1": None, "node2": None, "node4": None, "node5": 1234.0}
    leading = plan_cycle(ME, leading_state(known=known), facts(), fresh=True)
    assert leading.mark_down == ("node4",)  # node5 is marked already; node2 has a status
    assert plan_cycle(ME, state(known=known), facts(), fresh=True).mark_down == ()


def test_a_claim_of_our_previous_life_is_neither_run_nor_taken_but_released() -> None:
    """Our name on another lease: its Liquidsoap died with that life. Running it again
    would make two once that lease expires and another node claims the mount."""
    previous = state(transcoders={"low.mp3": "node1"}, transcoder_leases={"low.mp3": 999})
    plan = plan_cycle(ME, previous, facts(), fresh=True)
    assert transcoders_of(plan).run == ()
    assert transcoders_of(plan).release == ("low.mp3",)
    assert transcoders_of(plan).claim is None  # held: not free for anyone yet
    ours = state(transcoders={"low.mp3": "node1"}, transcoder_leases={"low.mp3": MY_LEASE})
    plan = plan_cycle(ME, ours, facts(), fresh=True)
    assert transcoders_of(plan).run == ("low.mp3",)
    assert transcoders_of(plan).release == ()
    theirs = state(transcoders={"low.mp3": "node2"}, transcoder_leases={"low.mp3": 999})
    assert transcoders_of(plan_cycle(ME, theirs, facts(), fresh=True)).release == ()
