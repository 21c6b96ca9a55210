"""bench/chaos's pure part: the fault schedule, the percentile and the summary."""

from __future__ import annotations

import random
import sys

from tests.paths import REPOSITORY

sys.path.insert(0, str(REPOSITORY / "bench"))
from campaign import (
    FaultRecord,
    Stretch,
    Violation,
    doc_with_section,
    percentile,
    schedule,
    summarise,
    table,
)

KINDS = ["agent_kill", "icecast_kill", "machine_kill"]


def test_a_schedule_meets_every_kind_first_and_replays_from_its_seed() -> None:
    planned = schedule(KINDS, 8, random.Random(7))
    assert sorted(planned[:3]) == sorted(KINDS)
    assert len(planned) == 8
    assert set(planned) <= set(KINDS)
    assert planned == schedule(KINDS, 8, random.Random(7))
    assert schedule(KINDS, 2, random.Random(7)) == planned[:2]


def test_the_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 0.95) is None
    assert percentile([3.0], 0.95) == 3.0
    values = [float(value) for value in range(1, 21)]  # 1 .. 20
    assert percentile(values, 0.95) == 19.0
    assert percentile(values, 0.5) == 10.0
    assert percentile(list(reversed(values)), 1.0) == 20.0


def test_the_summary_counts_faults_and_violations_per_kind_and_leaves_out_the_unrecovered() -> None:
    records = [
        FaultRecord(1, "agent_kill", "node1", 0.0, 1.0, 4.0, listener_gap_s=0.5, leaderless_s=7.5),
        FaultRecord(2, "agent_kill", "node2", 10.0, 11.0, 6.0, listener_gap_s=2.5),
        FaultRecord(
            3, "machine_kill", "node3", 20.0, 25.0, None, [Violation(30.0, "not_heard", "x")]
        ),
    ]
    between = FaultRecord(0, "none", "", 0.0, violations=[Violation(9.0, "two_leaders", "y")])
    summary = summarise(records, between, seed=5, nodes=3)
    assert summary["seed"] == 5
    assert summary["nodes"] == 3
    assert summary["faults"] == 3
    assert summary["faults_by_kind"] == {"agent_kill": 2, "machine_kill": 1}
    assert summary["violations"] == 2
    assert summary["violations_by_kind"] == {"not_heard": 1, "two_leaders": 1}
    assert summary["recovery_p50_s"] == 5.0
    assert summary["recovery_p95_s"] == 6.0
    assert summary["unrecovered"] == 1
    assert summary["per_kind"]["machine_kill"]["recovery_p95_s"] is None
    rows = table(summary).splitlines()
    assert rows[2] == "| agent_kill | 2 | 0 | 5.0 | 6.0 | 6.0 | 0 | 2.5 | 7.5 |"
    assert rows[3] == "| machine_kill | 1 | 1 | - | - | - | 1 | 0.0 | 0.0 |"


def test_a_stretch_runs_from_its_first_sample_and_ends_at_the_first_break() -> None:
    leaderless = Stretch()
    assert leaderless.observe(False, 1.0) == 0.0
    assert leaderless.observe(True, 2.0) == 0.0
    assert leaderless.observe(True, 2.5) == 0.5
    assert leaderless.observe(True, 9.75) == 7.75
    assert leaderless.observe(False, 10.0) == 8.0  # ended by this sample
    assert leaderless.observe(False, 10.5) == 0.0
    assert leaderless.observe(True, 12.0) == 0.0  # a new stretch, not 10 s
    assert leaderless.observe(False, 12.5) == 0.5  # one sample long


def test_the_document_keeps_one_section_per_cluster_size_and_replaces_its_own() -> None:
    first = doc_with_section("# Old\n\nA campaign without sections.\n", 5, "five, first")
    assert first == "# Reliability: the fault campaign\n\n## 5 machines\n\nfive, first\n"
    both = doc_with_section(first, 3, "three\n\n| table |")
    assert both.index("## 3 machines") < both.index("## 5 machines")
    again = doc_with_section(both, 5, "five, second")
    assert "five, first" not in again
    assert again.count("## 5 machines") == 1
    assert "three\n\n| table |\n" in again
