"""Leadership decisions and the decoding of what etcd holds."""

from __future__ import annotations

from radioagent.coordination.election import (
    Leadership,
    Role,
    leadership_from_state,
    must_stop_leading,
    should_campaign,
)
from radioagent.coordination.raft import MAX_RAFT_LAG, raft_move_targets, ready_to_lead
from radioagent.coordination.state import ClusterState, LeaderRecord
from radioagent.model import parse_mount
from radioagent.store.keys import KeyLayout
from radioagent.store.records import KeyValue, decode_cluster_state

LAYOUT = KeyLayout("/radio")


def state_with_leader(name: str, lease: int, epoch: int = 7) -> ClusterState:
    return ClusterState(revision=10, leader=LeaderRecord(name, epoch, lease))


def test_no_leader_key_means_campaign_if_we_hold_a_lease() -> None:
    empty = ClusterState(revision=1, leader=None)
    assert leadership_from_state(empty, "node1", 5) == Leadership(Role.DETACHED)
    assert should_campaign(empty, my_lease=5)
    assert not should_campaign(empty, my_lease=None)
    assert not should_campaign(state_with_leader("node2", 9), my_lease=5)


def test_leader_key_with_my_name_and_lease_makes_me_leader_with_its_epoch() -> None:
    leadership = leadership_from_state(state_with_leader("node1", 5, epoch=31), "node1", 5)
    assert leadership == Leadership(Role.LEADER, "node1", 31)


def test_leader_key_from_my_previous_lease_is_not_mine() -> None:
    leadership = leadership_from_state(state_with_leader("node1", 4), "node1", 5)
    assert leadership.role is Role.REPLICA


def test_another_leader_makes_me_its_replica() -> None:
    assert leadership_from_state(state_with_leader("node2", 9, 12), "node1", 5) == Leadership(
        Role.REPLICA, "node2", 12
    )


def test_stop_leading_exactly_when_cut_off_for_retry_timeout() -> None:
    assert not must_stop_leading(now=103.9, last_etcd_contact=100.0, retry_timeout=4)
    assert must_stop_leading(now=104.0, last_etcd_contact=100.0, retry_timeout=4)
    assert must_stop_leading(now=0.0, last_etcd_contact=float("-inf"), retry_timeout=4)


def entry(key: str, value: bytes, create: int = 1, lease: int = 0) -> KeyValue:
    return KeyValue(LAYOUT.root + key, value, create, create, lease)


def test_decoding_skips_garbage_and_names_each_bad_key() -> None:
    good = parse_mount({"name": "live.mp3", "source_password": "pw"})
    state = decode_cluster_state(
        LAYOUT,
        [
            entry("leader", b"node2", create=17, lease=99),
            entry("mounts/live.mp3", good.to_json().encode()),
            entry("mounts/broken", b"{not json"),
            entry("mounts/other", good.to_json().encode()),
            entry("nodes/node3", b"[]"),
            entry("unrelated/key", b"whatever"),
        ],
        revision=20,
    )
    assert state.leader == LeaderRecord("node2", 17, 99)
    assert state.mounts == {"live.mp3": good}
    assert state.nodes == {}
    assert [problem.split(":")[0] for problem in state.problems] == [
        "/radio/v1/mounts/broken",
        "/radio/v1/mounts/other",
        "/radio/v1/nodes/node3",
    ]


def test_only_leader_mount_and_config_changes_wake_the_loop() -> None:
    assert LAYOUT.wakes_the_loop("/radio/v1/leader")
    assert LAYOUT.wakes_the_loop("/radio/v1/mounts/live.mp3")
    assert LAYOUT.wakes_the_loop("/radio/v1/config")
    assert not LAYOUT.wakes_the_loop("/radio/v1/nodes/node1")


def test_the_radio_leader_hands_raft_leadership_to_another_started_member() -> None:
    members = {1: "node1", 2: "node2", 3: "node3", 4: ""}  # 4: added, not started yet
    assert raft_move_targets(True, "node2", 2, members) == (1, 3)  # the others, by name
    assert raft_move_targets(True, "node1", 2, members) == ()  # raft led elsewhere
    assert raft_move_targets(False, "node2", 2, members) == ()  # not the radio leader
    assert raft_move_targets(True, "node2", None, members) == ()  # no raft leader now
    assert raft_move_targets(True, "gateway", 2, members) == ()  # no member of its own
    assert raft_move_targets(True, "node2", 2, {2: "node2", 4: ""}) == ()  # nobody to take it


def test_only_a_member_that_follows_the_leader_with_its_log_caught_up_is_offered_it() -> None:
    assert ready_to_lead(leader=2, leader_index=500, follows=2, index=500)
    assert ready_to_lead(leader=2, leader_index=500, follows=2, index=500 - MAX_RAFT_LAG)
    assert not ready_to_lead(leader=2, leader_index=500, follows=2, index=499 - MAX_RAFT_LAG)
    assert not ready_to_lead(leader=2, leader_index=500, follows=0, index=500)  # electing
    assert not ready_to_lead(leader=2, leader_index=500, follows=3, index=500)  # other view
