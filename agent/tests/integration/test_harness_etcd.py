"""The etcd fixtures run real members that behave like a cluster."""

from __future__ import annotations

import pytest

from tests.harness.etcd import EtcdCluster
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration


def test_single_member_stores_and_returns_a_key(etcd: EtcdCluster) -> None:
    client = etcd.members[0].client()
    client.put("/radio-test/greeting", "hello")
    value, _ = client.get("/radio-test/greeting")
    assert value == b"hello"


def test_key_survives_the_loss_of_the_raft_leader(etcd_cluster: EtcdCluster) -> None:
    etcd_cluster.members[0].client().put("/radio-test/survivor", "still here")
    lost = etcd_cluster.leader_index()
    etcd_cluster.kill(lost)
    survivors = [index for index in range(3) if index != lost]

    # Still a quorum: the survivors elect a new leader, keep the key and take writes.
    etcd_cluster.wait_leader(among=survivors)
    assert etcd_cluster.leader_index(among=survivors) != lost
    client = etcd_cluster.members[survivors[0]].client()
    value, _ = client.get("/radio-test/survivor")
    assert value == b"still here"
    client.put("/radio-test/after", "written")
    assert client.get("/radio-test/after")[0] == b"written"


def test_killed_member_restarts_and_catches_up(etcd_cluster: EtcdCluster) -> None:
    etcd_cluster.kill(2)
    etcd_cluster.wait_leader(among=[0, 1])
    etcd_cluster.members[0].client().put("/radio-test/while-down", "missed it")

    etcd_cluster.restart(2)

    restarted = etcd_cluster.members[2].client()
    value = wait_for(
        lambda: restarted.get("/radio-test/while-down")[0],
        timeout=10,
        what="the restarted member to catch up",
    )
    assert value == b"missed it"


def test_paused_member_answers_nothing_until_resumed(etcd_cluster: EtcdCluster) -> None:
    etcd_cluster.pause(1)
    paused = etcd_cluster.members[1]
    with pytest.raises(TimeoutError):  # the kernel accepts; etcd never answers
        paused.is_healthy()

    etcd_cluster.resume(1)

    wait_for(paused.is_healthy, timeout=10, what="the resumed member to be healthy")
