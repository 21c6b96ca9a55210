"""Connection flood benchmark: one node (etcd, Icecast, the agent with the product's
timing and front door bounds) playing a live mount, and from loopback: idle connections,
slow request heads (a byte a second) and listeners that never read, first from one
address, then spread over many (bench/flood_clients.py, a process of its own).

Per phase: the agent's resident memory (peak of samples every 0.5 s) and open
connections (peak), whether an unrelated listener (127.0.0.1, as the harness's probes)
kept playing (no gap over 2 s, bytes at the stream's rate), the event loop's lag p99
(the upper bound of its histogram bucket, radio_event_loop_lag_seconds), lease
keepalives missed, and whether the node kept its leadership (same epoch). The last stdout
line is the JSON; bench/results/flood.json gets the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO_DIR, agent_pid, report, require_root, resident_mib, running_cluster

from radioagent.config import Timing
from tests.harness.agents import AgentNode, start_live_source
from tests.harness.clients import SourceClient, StreamRecorder
from tests.harness.media import make_mp3

PASSWORD = "dj-secret"  # noqa: S105 - a throw-away test cluster
BOUNDS = {
    # The harness's own probes and the unrelated listener come from 127.0.0.1.
    "unlimited_networks": ["127.0.0.1/32"],
    "internal_networks": ["127.0.0.1/32"],
    "header_timeout": 10.0,  # the product's default (the harness uses 2 s)
}
MAX_LISTENER_GAP_S = 2.0


def metric_sum(node: AgentNode, name: str, **labels: str) -> float:
    """The sum of a family's samples with these labels (every node label is this node)."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample, sample_labels), value in node.metrics().items()
        if sample == name and wanted <= set(sample_labels)
    )


def lag_buckets(node: AgentNode) -> dict[float, float]:
    return {
        float(dict(labels)["le"]): value
        for (sample, labels), value in node.metrics().items()
        if sample == "radio_event_loop_lag_seconds_bucket"
    }


def p99_upper_bound(before: dict[float, float], after: dict[float, float]) -> float:
    """The upper bound of the bucket holding the 99th percentile of what was observed
    between the two readings (cumulative buckets)."""
    delta = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = delta[float("inf")]
    if total <= 0:
        return 0.0
    return next(bound for bound, count in delta.items() if count >= 0.99 * total)


def run_phase(
    name: str,
    node: AgentNode,
    arguments: argparse.Namespace,
    addresses: int,
    flood: bool,
) -> dict[str, object]:
    pid = agent_pid(node)
    listener = StreamRecorder(
        f"{node.front_door_url}/live.mp3", max_seconds=arguments.seconds + 30
    ).start()
    lag_before = lag_buckets(node)
    missed_before = metric_sum(node, "radio_lease_keepalives_missed_total")
    epoch_before = metric_sum(node, "radio_leader_epoch")
    started = time.monotonic()
    client = None
    if flood:
        client = subprocess.Popen(
            [
                *(sys.executable, str(REPO_DIR / "bench" / "flood_clients.py")),
                *(str(node.front_door_port), "--seconds", str(arguments.seconds)),
                *("--addresses", str(addresses), "--idle", str(arguments.idle)),
                *("--slow", str(arguments.slow), "--listeners", str(arguments.listeners)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
    rss_peak, connections_peak = 0.0, 0.0
    sampling_until = started + arguments.seconds
    for _ in range(int(arguments.seconds / 0.5) + 1):  # bounded by the phase's length too
        if time.monotonic() >= sampling_until:
            break
        rss_peak = max(rss_peak, resident_mib(pid))
        connections_peak = max(connections_peak, metric_sum(node, "radio_front_door_connections"))
        time.sleep(0.5)  # the sampling period
    ended = time.monotonic()
    clients: dict[str, object] = {}
    if client is not None:
        output, _ = client.communicate(timeout=arguments.seconds + 60)
        lines = output.splitlines()
        clients = json.loads(lines[-1]) if lines else {}
    listener.stop()
    received = listener.bytes_since(started + 2)  # past its start
    expected = arguments.bytes_per_second * (ended - started - 2)
    gap = listener.longest_gap(started + 2, ended)
    result = {
        "addresses": addresses if flood else 0,
        "connections": int(connections_peak),
        "rss_mb": round(rss_peak, 1),
        "other_listener_ok": listener.status == 200
        and gap <= MAX_LISTENER_GAP_S
        and received >= 0.9 * expected,
        "other_listener_longest_gap_s": round(gap, 2),
        "other_listener_bytes_ratio": round(received / expected, 3) if expected else None,
        "loop_lag_p99_ms": round(1000 * p99_upper_bound(lag_before, lag_buckets(node)), 1),
        "keepalives_missed": int(
            metric_sum(node, "radio_lease_keepalives_missed_total") - missed_before
        ),
        "kept_leadership": metric_sum(node, "radio_node_leader") == 1
        and metric_sum(node, "radio_leader_epoch") == epoch_before,
        "clients": clients,
    }
    print(f"{name}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30, help="each phase")
    parser.add_argument("--idle", type=int, default=3000, help="idle connections")
    parser.add_argument("--slow", type=int, default=1000, help="slow request heads")
    parser.add_argument("--listeners", type=int, default=1000, help="listeners that never read")
    parser.add_argument("--many", type=int, default=250, help="addresses of the spread flood")
    arguments = parser.parse_args()
    require_root(parser)
    timing = dataclasses.asdict(Timing())
    with tempfile.TemporaryDirectory(prefix="flood-") as scratch:
        audio = make_mp3(Path(scratch) / "live.mp3", seconds=600)
        arguments.bytes_per_second = audio.bytes_per_second
        with running_cluster(1, timing=timing, front_door=BOUNDS) as cluster:
            (node,) = cluster.nodes
            cluster.wait_leader(timeout=30)
            cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
            node.wait_front_door_serving("/live.mp3")
            source = start_live_source(
                SourceClient, node, audio, "/live.mp3", password=PASSWORD, port=node.front_door_port
            )
            try:
                phases = {
                    "quiet": run_phase("quiet", node, arguments, 0, flood=False),
                    "one_address": run_phase("one_address", node, arguments, 1, flood=True),
                    "many_addresses": run_phase(
                        "many_addresses", node, arguments, arguments.many, flood=True
                    ),
                }
            finally:
                source.stop()
    flooded = [phases["one_address"], phases["many_addresses"]]
    report(
        "flood",
        {
            "phases": phases,
            "connections": max(int(str(phase["connections"])) for phase in flooded),
            "rss_mb": max(float(str(phase["rss_mb"])) for phase in flooded),
            "rss_quiet_mb": phases["quiet"]["rss_mb"],
            "other_listener_ok": all(phase["other_listener_ok"] for phase in flooded),
            "loop_lag_p99_ms": max(float(str(phase["loop_lag_p99_ms"])) for phase in flooded),
            "keepalives_missed": sum(int(str(phase["keepalives_missed"])) for phase in flooded),
            "kept_leadership": all(phase["kept_leadership"] for phase in flooded),
            "flood": {
                "idle": arguments.idle,
                "slow_heads": arguments.slow,
                "listeners_never_reading": arguments.listeners,
                "seconds_per_phase": arguments.seconds,
                "many_addresses": arguments.many,
            },
        },
    )


if __name__ == "__main__":
    main()
