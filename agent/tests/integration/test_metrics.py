"""What the agents' /metrics and status say about a mount's audio, read on the wire while
a real studio connects and leaves."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable

import pytest

from radioagent.settings import ClusterSettings
from tests.harness.agents import AgentNode, RadioCluster, connect_source
from tests.harness.clients import SourceClient, listen
from tests.harness.media import AudioSample
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

PASSWORD = "dj-secret"
DEAD_AIR_SECONDS = 3


def mount_status(cluster: RadioCluster) -> dict:
    body = listen(f"{cluster.nodes[0].front_door_url}/api/v1/status", 1 << 20).body
    return json.loads(body)["mounts"]["live.mp3"]


def reports(node: AgentNode, metric: str, value: float) -> bool:
    """`node` reports `value` for live.mp3's `metric`."""
    return node.metric(metric, mount="live.mp3") == value


def mount_metrics(node: AgentNode) -> str:
    """What `node` reports of live.mp3, for a failure message."""
    return "\n".join(
        f"{name} {value}"
        for (name, labels), value in sorted(node.metrics().items())
        if ("mount", "live.mp3") in labels
    )


def test_a_studio_that_leaves_is_dead_air_in_every_nodes_metrics_within_the_set_time(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    long_mp3_audio: AudioSample,
) -> None:
    radio_cluster.set_settings(ClusterSettings(dead_air_seconds=DEAD_AIR_SECONDS))
    radio_cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
    nodes = radio_cluster.nodes
    for node in nodes:  # never heard since the agent looked: dead air already
        wait_for(
            functools.partial(reports, node, "radio_mount_dead_air", 1),
            timeout=DEAD_AIR_SECONDS + 5,
            what=f"dead air before any source on {node.name}",
            explain=functools.partial(mount_metrics, node),
        )
    radio_cluster.wait_leader()
    source = wait_for(
        lambda: connect_source(
            nodes[1], source_client_factory, "/live.mp3", PASSWORD, long_mp3_audio
        ),
        timeout=10,
        what="the studio connected",
    )
    for node in nodes:
        wait_for(
            functools.partial(reports, node, "radio_mount_source_connected", 1),
            timeout=10,
            what=f"the live audio on {node.name}",
            explain=radio_cluster.log_tails,
        )
        assert node.metric("radio_mount_dead_air", mount="live.mp3") == 0
        assert node.metric("radio_mount_dead_air_seconds", mount="live.mp3") == 0
    wait_for(
        lambda: (
            (nodes[2].metric("radio_mount_source_connected_seconds", mount="live.mp3") or 0) >= 1
        ),
        timeout=5,
        what="connected seconds counting",
    )
    wait_for(  # Icecast updates its byte counts every few seconds
        lambda: (
            (nodes[2].metric("radio_mount_received_bytes_total", mount="live.mp3") or 0) > 10_000
        ),
        timeout=15,
        what="received bytes counted",
    )
    wait_for(
        lambda: mount_status(radio_cluster)["live_on"] == ["node1", "node2", "node3"],
        timeout=5,
        what="every node live in the status",
    )
    assert mount_status(radio_cluster)["on_air"] is True

    source.stop()
    left_at = time.monotonic()
    seen_connected_gone: set[str] = set()
    too_early: list[str] = []

    def dead_air_everywhere() -> bool:
        for node in nodes:
            if node.name in seen_connected_gone:
                continue
            if node.metric("radio_mount_source_connected", mount="live.mp3") == 0:
                # The first look without audio, before the set time: not dead air yet.
                early = time.monotonic() - left_at < DEAD_AIR_SECONDS - 1
                if early and node.metric("radio_mount_dead_air", mount="live.mp3") != 0:
                    too_early.append(node.name)
                seen_connected_gone.add(node.name)
        return all(node.metric("radio_mount_dead_air", mount="live.mp3") == 1 for node in nodes)

    # Icecast notices the source is gone, relays drop, the agents look once a loop_wait.
    wait_for(
        dead_air_everywhere,
        timeout=DEAD_AIR_SECONDS + 4,
        what="dead air on every node",
        explain=radio_cluster.log_tails,
    )
    took = time.monotonic() - left_at
    assert took >= DEAD_AIR_SECONDS - 1  # each node counts from its own look
    assert seen_connected_gone == {"node1", "node2", "node3"}
    assert too_early == []
    for node in nodes:
        dead_air_seconds = node.metric("radio_mount_dead_air_seconds", mount="live.mp3")
        assert dead_air_seconds is not None
        assert dead_air_seconds >= DEAD_AIR_SECONDS
        assert node.metric("radio_mount_source_connected_seconds", mount="live.mp3") == 0
    wait_for(
        lambda: mount_status(radio_cluster)["on_air"] is False,
        timeout=5,
        what="off air in the status",
    )
    assert mount_status(radio_cluster)["live_on"] == []


def test_the_agent_passes_on_its_etcd_members_health_and_its_disks_free_space(
    radio_cluster: RadioCluster,
) -> None:
    """From a real etcd member's own metrics page (the alert rules' etcd families, with the
    node's label) and statvfs of the configured paths."""
    node = radio_cluster.nodes[0]
    db_size = wait_for(
        lambda: node.metric("etcd_mvcc_db_total_size_in_bytes"),
        timeout=10,
        what=f"etcd's database size in {node.name}'s metrics",
    )
    assert db_size > 0
    metrics = node.metrics()
    fsync_count = metrics[
        ("etcd_disk_wal_fsync_duration_seconds_count", frozenset({("node", node.name)}))
    ]
    assert fsync_count > 0  # the cluster's writes so far were each fsynced
    assert metrics[("etcd_server_has_leader", frozenset({("node", node.name)}))] == 1
    assert node.metric("etcd_server_quota_backend_bytes") == 2 * 1024**3  # etcd's default
    kept = {name.split("_bucket")[0] for name, _ in metrics if name.startswith("etcd_")}
    assert "etcd_network_peer_sent_bytes_total" not in kept  # only the alerts' families
    directory = str(node.directory.path)
    stats = os.statvfs(directory)
    assert node.metric("radio_disk_size_bytes", path=directory) == stats.f_blocks * stats.f_frsize
    free = node.metric("radio_disk_free_bytes", path=directory)
    assert free is not None
    assert abs(free - stats.f_bavail * stats.f_frsize) < 256 * 1024**2  # others write too
    assert node.metric("radio_disk_free_bytes", path="/var/log") is not None
