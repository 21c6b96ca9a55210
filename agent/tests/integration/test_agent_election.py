"""Leadership on real etcd with real agents and Icecasts: one leader, fenced, and a new
one soon after the old one dies or steps down."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from radioagent.loop import RAFT_CHECK_EVERY_S
from tests.harness.agents import TEST_TIMING, RadioCluster, start_live_source
from tests.harness.clients import SourceClient
from tests.harness.etcd import EtcdCluster
from tests.harness.icecast import IcecastServer
from tests.harness.media import AudioSample
from tests.harness.waiting import wait_for
from tests.integration.conftest import started

pytestmark = pytest.mark.integration

MOUNT = {"name": "live.mp3", "source_password": "dj-secret"}


def wait_accepting(cluster: RadioCluster, name: str, timeout: float) -> float:
    """Seconds until node `name` takes a source on /_live/live.mp3."""
    return cluster.node(name).wait_accepting_source("/_live/live.mp3", "dj-secret", timeout)


def test_exactly_one_node_accepts_sources_and_it_is_the_leader(
    radio_cluster: RadioCluster,
) -> None:
    radio_cluster.store().create_mount(MOUNT)
    leader = radio_cluster.wait_leader()
    wait_accepting(radio_cluster, leader, timeout=5)

    assert radio_cluster.accepting_nodes("/_live/live.mp3", "dj-secret") == [leader]
    statuses = radio_cluster.statuses()
    assert [name for name, status in statuses.items() if status.role == "leader"] == [leader]
    epochs = {status.epoch for status in statuses.values()}
    assert len(epochs) == 1
    assert None not in epochs


def test_sigkill_of_the_leader_agent_a_new_leader_accepts_sources_within_ttl_plus_1s(
    radio_cluster: RadioCluster,
) -> None:
    radio_cluster.store().create_mount(MOUNT)
    old_leader = radio_cluster.wait_leader()
    wait_accepting(radio_cluster, old_leader, timeout=5)
    old_epoch = radio_cluster.statuses()[old_leader].epoch

    killed_at = time.monotonic()
    radio_cluster.node(old_leader).kill()
    new_leader = radio_cluster.wait_leader(timeout=TEST_TIMING["ttl"] + 5, other_than=old_leader)
    wait_accepting(radio_cluster, new_leader, timeout=TEST_TIMING["ttl"] + 5)
    failover_seconds = time.monotonic() - killed_at

    assert failover_seconds <= TEST_TIMING["ttl"] + 1
    new_epoch = radio_cluster.statuses()[new_leader].epoch
    assert old_epoch is not None
    assert new_epoch is not None
    assert new_epoch > old_epoch


def test_sigterm_of_the_leader_hands_over_within_a_second(radio_cluster: RadioCluster) -> None:
    radio_cluster.store().create_mount(MOUNT)
    old_leader = radio_cluster.wait_leader()
    wait_accepting(radio_cluster, old_leader, timeout=5)

    stopped_at = time.monotonic()
    radio_cluster.node(old_leader).stop()
    new_leader = radio_cluster.wait_leader(timeout=5, other_than=old_leader)
    wait_accepting(radio_cluster, new_leader, timeout=5)
    handover_seconds = time.monotonic() - stopped_at

    assert handover_seconds <= 1.0
    # The old leader fenced itself before letting go: its Icecast refuses sources.
    assert not radio_cluster.node(old_leader).accepts_source("/_live/live.mp3", "dj-secret")


def test_a_leader_whose_icecast_died_hands_over_and_does_not_campaign(
    radio_cluster: RadioCluster,
) -> None:
    """Its studios could not connect: after retry_timeout without an answer from its
    Icecast it steps down; another node leads and takes sources; it stays a replica."""
    radio_cluster.store().create_mount(MOUNT)
    old_leader = radio_cluster.wait_leader()
    wait_accepting(radio_cluster, old_leader, timeout=5)
    killed_at = time.monotonic()
    radio_cluster.node(old_leader).icecast.process.kill()
    new_leader = radio_cluster.wait_leader(
        timeout=TEST_TIMING["retry_timeout"] + 3 * TEST_TIMING["loop_wait"] + 5,
        other_than=old_leader,
    )
    wait_accepting(radio_cluster, new_leader, timeout=5)
    # Well before its lease could have expired: it let go.
    assert time.monotonic() - killed_at < TEST_TIMING["ttl"] + 3
    # Through a few of its loops it does not take the lead back.
    loops_later = time.monotonic() + 3 * TEST_TIMING["loop_wait"]
    while time.monotonic() < loops_later:
        assert radio_cluster.leader_name() == new_leader
        time.sleep(0.2)  # a polling period: the leadership must stay the whole time


def test_the_radio_leader_hands_etcds_raft_leadership_to_another_member(
    agent_icecasts: list[IcecastServer], etcd_cluster: EtcdCluster, holding_cache_dir: Path
) -> None:
    """One machine holding both would cost both elections at once when it dies. Only with
    `etcd.member_name` set (off by default)."""
    radio_cluster = RadioCluster(
        etcd_cluster,
        started(agent_icecasts),
        holding_cache_dir=holding_cache_dir,
        keep_raft_elsewhere=True,
    )
    with contextlib.ExitStack() as stack:
        stack.callback(radio_cluster.stop)
        radio_cluster.start()
        raft_moves_off_the_leaders_member(radio_cluster)


def raft_moves_off_the_leaders_member(radio_cluster: RadioCluster) -> None:
    leader = radio_cluster.node(radio_cluster.wait_leader())
    own = radio_cluster.nodes.index(leader)  # its "local" member
    etcd = radio_cluster.etcd
    # Each raft leadership change raises the term: ours (if needed), then the agent's.
    term_with_own_leading = raft_leadership_put_on(etcd, own)
    wait_for(
        lambda: etcd.leader_index() != own and etcd.raft_term(own) > term_with_own_leading,
        timeout=RAFT_CHECK_EVERY_S + 10,
        what=f"{leader.name} to hand etcd's raft leadership to another member",
        explain=radio_cluster.log_tails,
    )
    assert radio_cluster.leader_name() == leader.name  # the radio leadership stays


def raft_leadership_put_on(etcd: EtcdCluster, member: int, attempts: int = 3) -> int:
    """Make `member` etcd's raft leader; the raft term it led in (a lower bound). The agent
    under test may move it away again at once, which leaves etcd's MoveLeader waiting for a
    leader it never sees (CI: 5 s timeout): then the term has risen by two, and that is the
    agent's move already."""
    term_before = etcd.raft_term(member)
    for _ in range(attempts):
        if etcd.leader_index() == member:
            return etcd.raft_term(member)
        try:
            etcd.move_leader(to=member, timeout=3)
        except TimeoutError:
            if etcd.raft_term(member) >= term_before + 2:
                return term_before + 1
            continue  # etcd aborted the transfer: the term did not move, ask again
        return term_before + 1
    raise AssertionError(f"etcd member {member} never took the raft leadership in {attempts} tries")


def test_loss_of_one_etcd_member_changes_no_leadership(radio_cluster: RadioCluster) -> None:
    leader = radio_cluster.wait_leader()
    epoch = radio_cluster.statuses()[leader].epoch
    # Lose a member that no agent is attached to the leader through, or the raft leader:
    # whichever it is, two of three members keep a quorum.
    lost = radio_cluster.etcd.leader_index()
    radio_cluster.etcd.kill(lost)
    survivors = [index for index in range(3) if index != lost]
    radio_cluster.etcd.wait_leader(among=survivors)

    deadline = time.monotonic() + 2 * TEST_TIMING["ttl"]
    while time.monotonic() < deadline:  # bounded observation, not a wait for a condition
        assert radio_cluster.leader_name() in (leader, None) or pytest.fail(
            f"leadership moved from {leader} to {radio_cluster.leader_name()}"
        )
        time.sleep(0.2)
    assert radio_cluster.leader_name() == leader
    assert radio_cluster.statuses()[leader].epoch == epoch


def test_a_restarted_agent_that_no_longer_leads_drops_the_source_it_still_holds(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    radio_cluster.store().create_mount(MOUNT)
    old_leader = radio_cluster.node(radio_cluster.wait_leader())
    wait_accepting(radio_cluster, old_leader.name, timeout=5)
    source = start_live_source(source_client_factory, old_leader, mp3_audio)
    wait_for(
        lambda: "/_live/live.mp3" in old_leader.icecast.all_sources(),
        timeout=5,
        what="the source on the leader",
    )

    # The agent dies; its Icecast keeps the studio's connection while another node leads.
    old_leader.kill()
    radio_cluster.wait_leader(timeout=TEST_TIMING["ttl"] + 5, other_than=old_leader.name)
    assert "/_live/live.mp3" in old_leader.icecast.all_sources()

    old_leader.start()

    wait_for(
        lambda: "/_live/live.mp3" not in old_leader.icecast.live_mounts(),
        timeout=TEST_TIMING["loop_wait"] + 5,
        what="the stray source to be dropped",
        explain=radio_cluster.log_tails,
    )
    wait_for(
        lambda: source.stream_error is not None,
        timeout=10,
        what="the studio's connection to be closed",
    )


def test_a_leader_agent_restarted_at_once_resigns_its_previous_life_instead_of_waiting_the_ttl(
    agent_icecasts: list[IcecastServer], etcd_cluster: EtcdCluster, holding_cache_dir: Path
) -> None:
    """A long lease (30 s): the old leader key would hold every node off for that long;
    the restarted agent deletes it (by its epoch) and the cluster elects at once."""
    timing = {"ttl": 30.0, "loop_wait": 1.0, "retry_timeout": 2.0}
    cluster = RadioCluster(
        etcd_cluster, started(agent_icecasts), timing, holding_cache_dir=holding_cache_dir
    )
    try:
        cluster.start()
        cluster.store().create_mount(MOUNT)
        old_leader = cluster.wait_leader()
        wait_accepting(cluster, old_leader, timeout=5)
        old_epoch = cluster.statuses()[old_leader].epoch
        assert old_epoch is not None

        killed_at = time.monotonic()
        cluster.node(old_leader).kill()
        cluster.node(old_leader).start()

        def new_epoch() -> bool:
            leader = cluster.leader_name()
            epoch = None if leader is None else cluster.statuses()[leader].epoch
            return epoch is not None and epoch > old_epoch

        wait_for(new_epoch, timeout=12, what="a new election", explain=cluster.log_tails)
        new_leader = cluster.leader_name()
        assert new_leader is not None
        wait_accepting(cluster, new_leader, timeout=12 - (time.monotonic() - killed_at))
        assert time.monotonic() - killed_at < timing["ttl"] / 2
    finally:
        cluster.stop()
