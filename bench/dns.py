"""DNS benchmark: 3 agents answering the cluster's zone on loopback (node N's front door
on 127.0.0.N), real etcd and Icecasts.

Each round builds a fresh cluster and measures, at node1's DNS port:
- qps: queries per second for the zone's name, dnsperf (Debian's) with 20 outstanding,
  for `--seconds`; the agent is one asyncio loop, so this is one core;
- p50_ms / p99_ms: latency of queries sent one at a time (a bounded client of our own:
  dnsperf gives no percentiles);
- drained_node_gone_s: node3 drained (as radioctl does) -> the zone's answer lacks it;
- killed_node_gone_s: node2's machine killed (agent and Icecast) -> the answer lacks it.
The last stdout line is one JSON object; bench/results/dns.json gets the same.
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import tempfile
import time

from benchlib import (
    TEST_TIMING,
    agent_pid,
    report,
    require_root,
    resident_mib,
    running_cluster,
)
from dnslib import DNSRecord

from tests.harness.agents import AgentNode, RadioCluster

ZONE = "stream.test"
POLL_S = 0.02
LATENCY_QUERIES = 2000


def answer(node: AgentNode, sock: socket.socket) -> tuple[list[str], float]:
    """The zone's addresses from `node`, and how long the answer took (seconds)."""
    query = DNSRecord.question(ZONE, "A")
    sent = time.perf_counter()
    sock.sendto(query.pack(), (node.listen_address, node.dns_port))
    while True:
        data = sock.recv(4096)
        reply = DNSRecord.parse(data)
        if reply.header.id == query.header.id:
            return sorted(str(rr.rdata) for rr in reply.rr), time.perf_counter() - sent


def wait_answer(node: AgentNode, sock: socket.socket, expected: list[str], timeout: float) -> float:
    """Seconds until `node` answers `expected`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if answer(node, sock)[0] == expected:
            return time.monotonic() - started
        time.sleep(POLL_S)
    raise RuntimeError(f"{node.name} never answered {expected} within {timeout} s")


def dnsperf_qps(node: AgentNode, seconds: float) -> tuple[float, int]:
    """Queries per second, and queries lost."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as queries:
        queries.write(f"{ZONE} A\n")
        queries.flush()
        result = subprocess.run(
            [
                "dnsperf",
                "-s",
                node.listen_address,
                "-p",
                str(node.dns_port),
                "-d",
                queries.name,
                "-l",
                str(seconds),
                "-q",
                "20",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        )
    found = re.search(r"Queries per second:\s+([0-9.]+)", result.stdout)
    lost = re.search(r"Queries lost:\s+([0-9]+)", result.stdout)
    if found is None or lost is None:
        raise RuntimeError(f"dnsperf said: {result.stdout[-500:]}")
    return float(found.group(1)), int(lost.group(1))


def one_round(cluster: RadioCluster, seconds: float) -> dict[str, float]:
    node1, node2, node3 = cluster.nodes
    everyone = sorted(node.listen_address for node in cluster.nodes)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        wait_answer(node1, sock, everyone, timeout=15)
        qps, lost = dnsperf_qps(node1, seconds)
        latencies = [answer(node1, sock)[1] * 1000 for _ in range(LATENCY_QUERIES)]
        percentiles = statistics.quantiles(latencies, n=100)
        rss = resident_mib(agent_pid(node1))
        cluster.drain(node3.name)
        drained = wait_answer(node1, sock, sorted([node1.listen_address, node2.listen_address]), 10)
        node2.crash()
        killed = wait_answer(node1, sock, [node1.listen_address], 30)
    return {
        "qps": round(qps),
        "queries_lost": lost,
        "p50_ms": round(percentiles[49], 3),
        "p99_ms": round(percentiles[98], 3),
        "drained_node_gone_s": round(drained, 3),
        "killed_node_gone_s": round(killed, 3),
        "agent_rss_mib": round(rss, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10, help="dnsperf's run per round")
    arguments = parser.parse_args()
    if arguments.rounds < 1 or not 1 <= arguments.seconds <= 120:
        parser.error("--rounds at least 1, --seconds 1-120")
    require_root(parser)
    rounds = []
    for number in range(arguments.rounds):
        with running_cluster(3, zone=ZONE) as cluster:
            rounds.append(one_round(cluster, arguments.seconds))
        print(f"round {number + 1}: {rounds[-1]}", flush=True)

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in rounds), 3)

    report(
        "dns",
        {
            "rounds": arguments.rounds,
            "qps": median("qps"),
            "qps_min": min(r["qps"] for r in rounds),
            "queries_lost": sum(r["queries_lost"] for r in rounds),
            "p50_ms": median("p50_ms"),
            "p99_ms": median("p99_ms"),
            "ttl_s": 20,  # the cluster's dns_ttl_seconds, default
            "lease_ttl_s": TEST_TIMING["ttl"],
            "loop_wait_s": TEST_TIMING["loop_wait"],
            "drained_node_gone_s": median("drained_node_gone_s"),
            "drained_node_gone_max_s": max(r["drained_node_gone_s"] for r in rounds),
            "killed_node_gone_s": median("killed_node_gone_s"),
            "killed_node_gone_max_s": max(r["killed_node_gone_s"] for r in rounds),
            "agent_rss_mib": median("agent_rss_mib"),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
