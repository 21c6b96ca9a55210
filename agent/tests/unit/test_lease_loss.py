"""A node that finds its lease gone takes nothing others held for a while: a raft leader
frozen past the ttl revokes every lease as it wakes (etcd-io/etcd#15247), and the other
holders learn it only at their next keepalive. Found by bench/chaos on 5 nodes: a
replica's transcoder taken by the leader while the replica still ran it."""

from __future__ import annotations

import pytest

from radioagent.coordination.cycle import plan_cycle
from radioagent.coordination.election import LeaseLoss, settle_seconds, settled_after_lease_loss
from tests.unit.test_cycle import ME, NOW, TIMING, facts, overdue_facts, state

SETTLE = settle_seconds(TIMING)


@pytest.mark.parametrize(
    ("lost_ago", "settled"),
    [(0.0, False), (SETTLE - 0.01, False), (SETTLE, True), (3600.0, True)],
)
def test_a_lost_lease_settles_after_the_settle_time(lost_ago: float, settled: bool) -> None:
    loss = LeaseLoss(NOW - lost_ago, led=False)
    assert settled_after_lease_loss(NOW, loss, TIMING) is settled
    assert settled_after_lease_loss(NOW, None, TIMING)


@pytest.mark.parametrize("failsafe_on", [False, True])
@pytest.mark.parametrize(
    ("loss", "claims"),
    [
        (None, True),
        (LeaseLoss(NOW - 1.0, led=False), False),
        (LeaseLoss(NOW - 1.0, led=True), False),  # a replica's transcoder may still run
        (LeaseLoss(NOW - SETTLE, led=True), True),
    ],
)
def test_no_transcoder_is_claimed_soon_after_the_nodes_own_lease_was_found_gone(
    failsafe_on: bool, loss: LeaseLoss | None, claims: bool
) -> None:
    plan = plan_cycle(
        ME, state(), overdue_facts(lease_lost=loss, failsafe_on=failsafe_on), fresh=True
    )
    assert plan.transcoders is not None
    assert (plan.transcoders.claim == "low.mp3") is claims


@pytest.mark.parametrize(
    ("loss", "campaigns"),
    [
        (None, True),
        # A replica: the leader's lease may have gone with ours, and it may lead on unaware.
        (LeaseLoss(NOW - 1.0, led=False), False),
        (LeaseLoss(NOW - SETTLE, led=False), True),
        # Ours held the leadership: the only leader the others could follow was this node.
        (LeaseLoss(NOW - 1.0, led=True), True),
    ],
)
def test_a_node_that_lost_its_lease_campaigns_only_once_settled_unless_it_led(
    loss: LeaseLoss | None, campaigns: bool
) -> None:
    plan = plan_cycle(ME, state(None), facts(lease_lost=loss), fresh=True)
    assert plan.moves.campaign is campaigns


def test_a_leader_that_lost_its_lease_still_waits_for_an_acknowledged_hold() -> None:
    """Its exemption is from the lease rule only: with the failsafe, an acknowledgement it
    gave (as a replica, before it led) still counts."""
    plan = plan_cycle(
        ME,
        state(None),
        facts(lease_lost=LeaseLoss(NOW - 1.0, led=True), failsafe_on=True, acknowledged_at=NOW),
        fresh=True,
    )
    assert not plan.moves.campaign
