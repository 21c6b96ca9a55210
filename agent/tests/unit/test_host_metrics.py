"""The agent's figures of its machine: free disk space, and the local etcd member's
families picked from its metrics page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from radioagent.diskspace import disk_space
from radioagent.etcd_member_metrics import STALE_AFTER_S, MemberMetrics, kept_families, labelled

# As etcd 3.4 writes it (an excerpt): families kept and families left out, side by side,
# names that share a prefix with a kept one included.
PAGE = """\
# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.
# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 3
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 5
etcd_disk_wal_fsync_duration_seconds_sum 0.25
etcd_disk_wal_fsync_duration_seconds_count 5
# HELP etcd_disk_wal_write_bytes_total Total number of bytes written in WAL.
# TYPE etcd_disk_wal_write_bytes_total gauge
etcd_disk_wal_write_bytes_total 4096
# HELP etcd_mvcc_db_total_size_in_bytes Total size of the underlying database.
# TYPE etcd_mvcc_db_total_size_in_bytes gauge
etcd_mvcc_db_total_size_in_bytes 20480
# HELP etcd_mvcc_db_total_size_in_use_in_bytes Total size of the database in use.
# TYPE etcd_mvcc_db_total_size_in_use_in_bytes gauge
etcd_mvcc_db_total_size_in_use_in_bytes 16384
# HELP etcd_server_leader_changes_seen_total The number of leader changes seen.
# TYPE etcd_server_leader_changes_seen_total counter
etcd_server_leader_changes_seen_total 2
# HELP etcd_network_peer_sent_bytes_total The total number of bytes sent to peers.
# TYPE etcd_network_peer_sent_bytes_total counter
etcd_network_peer_sent_bytes_total{To="8e9e05c52164694d"} 123
"""


def test_only_the_alert_rules_families_are_kept_whole() -> None:
    families = {family.name: family for family in kept_families(PAGE)}
    assert set(families) == {
        "etcd_disk_wal_fsync_duration_seconds",
        "etcd_mvcc_db_total_size_in_bytes",
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "etcd_server_leader_changes_seen",
    }
    assert len(families["etcd_disk_wal_fsync_duration_seconds"].samples) == 4
    assert kept_families("") == ()
    assert kept_families("not a metrics page\n") == ()


class Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def test_passed_on_families_carry_the_node_label_and_read_back_the_same() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families(list(labelled(kept_families(PAGE), "node2"))))
    again = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
    node = ("node", "node2")
    assert again[("etcd_mvcc_db_total_size_in_bytes", frozenset({node}))] == 20480
    assert again[("etcd_server_leader_changes_seen_total", frozenset({node}))] == 2
    bucket = frozenset({node, ("le", "0.001")})
    assert again[("etcd_disk_wal_fsync_duration_seconds_bucket", bucket)] == 3


def test_a_member_that_stopped_answering_is_left_out_not_frozen() -> None:
    metrics = MemberMetrics()
    assert metrics.fresh(now=100.0) == ()
    metrics.families, metrics.read_at = kept_families(PAGE), 100.0
    assert len(metrics.fresh(now=100.0 + STALE_AFTER_S)) == 4
    assert metrics.fresh(now=100.0 + STALE_AFTER_S + 1) == ()


def test_disk_space_reads_each_existing_path_and_skips_the_others(tmp_path: Path) -> None:
    (reading,) = disk_space([str(tmp_path), str(tmp_path / "absent")])
    assert reading.path == str(tmp_path)
    assert 0 <= reading.free_bytes <= reading.size_bytes
    assert reading.size_bytes > 0
