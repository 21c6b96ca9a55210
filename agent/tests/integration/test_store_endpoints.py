"""The cluster store's endpoint fail-over policy, on real etcd members: the agent and
radioctl move past an endpoint that stopped answering."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from radioagent.config import EtcdSettings
from radioagent.coordination.state import LeaderRecord
from radioagent.store.cluster import ClusterStore
from tests.harness.agents import TEST_TIMING, AgentNode, RadioCluster
from tests.harness.etcd import EtcdCluster
from tests.harness.icecast import IcecastServer
from tests.harness.ports import free_port
from tests.harness.waiting import wait_for
from tests.integration.conftest import started
from tests.integration.test_radioctl import run_radioctl

pytestmark = pytest.mark.integration


def test_an_agent_whose_etcd_member_dies_keeps_its_leadership_through_the_next_endpoint(
    radio_cluster: RadioCluster,
) -> None:
    store = radio_cluster.store()
    leader_name = radio_cluster.wait_leader()
    before = store.leader()
    assert before is not None
    # Each agent's first endpoint is "its" member (as a node's local member or gateway).
    assert_the_leader_outlives_its_member(radio_cluster, radio_cluster.node(leader_name), before)


def assert_the_leader_outlives_its_member(
    cluster: RadioCluster, leader: AgentNode, before: LeaderRecord
) -> None:
    """Its member killed, its lease lives on through another member (same leader, same
    epoch, for 3 ttl), and it still reads the cluster: a mount created now reaches its
    Icecast."""
    cluster.etcd.kill(cluster.nodes.index(leader))
    watched_until = time.monotonic() + 3 * TEST_TIMING["ttl"]
    samples = 0
    while time.monotonic() < watched_until:  # bounded by the deadline
        now = cluster.store().leader()
        assert now is not None, "the leader key vanished"
        assert (now.name, now.epoch) == (before.name, before.epoch)
        samples += 1
        time.sleep(0.2)
    assert samples >= 10
    cluster.store().create_mount({"name": "after.mp3", "source_password": "pw-after"})
    leader.wait_serving("/after.mp3", timeout=10)


def test_an_agent_configured_with_its_own_member_alone_learns_the_others_and_outlives_it(
    agent_icecasts: list[IcecastServer], etcd_cluster: EtcdCluster, holding_cache_dir: Path
) -> None:
    """As on a node whose config names only 127.0.0.1:2379: the agent asks etcd for its
    members, and when its own dies it carries on through another; once its own is back
    with the quorum it returns to it (left on another machine's member, it would share
    that machine's partitions)."""
    cluster = RadioCluster(
        etcd_cluster,
        started(agent_icecasts),
        holding_cache_dir=holding_cache_dir,
        own_member_only=True,
    )
    try:
        cluster.start()
        leader_name = cluster.wait_leader()
        leader = cluster.node(leader_name)
        wait_for(
            lambda: leader.metric("radio_etcd_endpoints") == len(etcd_cluster.members),
            timeout=10,
            what="the leader to know every etcd member",
        )
        before = cluster.store().leader()
        assert before is not None
        assert leader.metric("radio_etcd_own_endpoint") == 1
        assert_the_leader_outlives_its_member(cluster, leader, before)
        assert leader.metric("radio_etcd_own_endpoint") == 0
        member = cluster.nodes.index(leader)
        etcd_cluster.restart(member)
        wait_for(
            lambda: leader.metric("radio_etcd_own_endpoint") == 1,
            timeout=15,
            what="the leader back on its own etcd member",
        )
        # Its own member is the one it uses now: pausing another (not raft's leader, whose
        # election would time out every member's calls) changes nothing for it.
        raft_leader = etcd_cluster.leader_index()
        other = next(
            index
            for index in range(len(etcd_cluster.members))
            if index not in (member, raft_leader)
        )
        etcd_cluster.pause(other)
        try:
            watched_until = time.monotonic() + TEST_TIMING["ttl"]
            while time.monotonic() < watched_until:  # bounded by the deadline
                assert leader.metric("radio_etcd_own_endpoint") == 1
                time.sleep(0.5)
        finally:
            etcd_cluster.resume(other)
    finally:
        cluster.stop()


def test_radioctl_moves_past_a_dead_first_endpoint(etcd: EtcdCluster, tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    live = f"127.0.0.1:{etcd.members[0].client_port}"
    config.write_text(yaml.safe_dump({"etcd": {"endpoints": [f"127.0.0.1:{free_port()}", live]}}))
    result = run_radioctl(config, "mount", "create", "first.mp3")
    assert result.returncode == 0, result.stderr
    listed = run_radioctl(config, "mount", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [mount["name"] for mount in yaml.safe_load(listed.stdout)] == ["first.mp3"]


def test_radioctl_writes_through_the_next_endpoint_when_the_first_hangs(
    etcd_cluster: EtcdCluster, tmp_path: Path
) -> None:
    """A hung member (SIGSTOP: it accepts connections, answers nothing) is found out by a
    status request, a read, before any write is sent: the write goes once, elsewhere."""
    config = tmp_path / "config.yml"
    endpoints = [f"127.0.0.1:{member.client_port}" for member in etcd_cluster.members[:2]]
    config.write_text(yaml.safe_dump({"etcd": {"endpoints": endpoints}}))
    etcd_cluster.pause(0)
    try:
        # undrain's first call is a write (a delete): only the status request sees the hang.
        undrained = run_radioctl(config, "node", "undrain", "node9")
        assert undrained.returncode == 0, undrained.stderr
        assert undrained.stdout == "node9: was not draining\n"
        assert undrained.stderr == ""
        created = run_radioctl(config, "mount", "create", "through.mp3")
        assert created.returncode == 0, created.stderr
        listed = run_radioctl(config, "mount", "list", "--json")
        assert listed.returncode == 0, listed.stderr
    finally:
        etcd_cluster.resume(0)
    assert [mount["name"] for mount in yaml.safe_load(listed.stdout)] == ["through.mp3"]


def test_raft_leadership_is_handed_over_by_the_raft_leader_whatever_the_current_endpoint(
    etcd_cluster: EtcdCluster,
) -> None:
    """An agent stays on the endpoint it moved on to when its own member stopped
    answering; that member may lead raft later. Only the raft leader can hand leadership
    over (another member answers "not leader"), so the move goes to it."""
    members = etcd_cluster.members
    leader = etcd_cluster.leader_index()
    current, target = (index for index in range(len(members)) if index != leader)
    store = store_through(etcd_cluster, current)
    try:
        raft_leader, ids = raft_ids(store)
        assert raft_leader == ids[members[leader].name]
        moved_to = store.move_raft_leader(raft_leader, (ids[members[target].name],))
    finally:
        store.close()
    assert moved_to == ids[members[target].name]
    assert etcd_cluster.leader_index() == target  # MoveLeader answers once it sees it lead


def test_raft_leadership_goes_to_a_member_that_answers_and_stays_without_one(
    etcd_cluster: EtcdCluster,
) -> None:
    """A dead target would keep etcd refusing writes for its whole transfer, again at each
    try: the move skips it, and with no other member ready it does not try at all."""
    members = etcd_cluster.members
    leader = etcd_cluster.leader_index()
    dead, alive = (index for index in range(len(members)) if index != leader)
    store = store_through(etcd_cluster, leader)
    try:
        raft_leader, ids = raft_ids(store)
        etcd_cluster.kill(dead)
        term = etcd_cluster.raft_term(leader)
        assert store.move_raft_leader(raft_leader, (ids[members[dead].name],)) is None
        assert etcd_cluster.leader_index(among=[leader, alive]) == leader  # asks the living
        assert etcd_cluster.raft_term(leader) == term  # no transfer was even tried
        to = store.move_raft_leader(
            raft_leader, (ids[members[dead].name], ids[members[alive].name])
        )
    finally:
        store.close()
    assert to == ids[members[alive].name]
    assert etcd_cluster.leader_index(among=[leader, alive]) == alive


def store_through(etcd_cluster: EtcdCluster, member: int) -> ClusterStore:
    """A store whose only endpoint is that member."""
    port = etcd_cluster.members[member].client_port
    return ClusterStore(
        EtcdSettings(endpoints=(f"127.0.0.1:{port}",), prefix="/move"), request_timeout=1
    )


def raft_ids(store: ClusterStore) -> tuple[int, dict[str, int]]:
    """etcd's raft leader and each member's id by name, as the store sees them."""
    raft_leader, names = store.raft_view()
    assert raft_leader is not None
    return raft_leader, {name: member_id for member_id, name in names.items()}
