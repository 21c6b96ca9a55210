"""What the benchmarks share: a throw-away cluster on loopback, process CPU and memory
from /proc, and the JSON result (last stdout line, and a copy in bench/results/)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import cast

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR / "agent"))

from tests.harness.agents import (  # noqa: E402
    TEST_TIMING,
    AgentNode,
    RadioCluster,
    icecast_settings_for_agents,
)
from tests.harness.etcd import EtcdCluster  # noqa: E402
from tests.harness.icecast import IcecastServer  # noqa: E402
from tests.harness.processes import record_failure, stop_all_started  # noqa: E402

RESULTS_DIR = REPO_DIR / "bench" / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def resident_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return kib / 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def agent_pid(node: AgentNode) -> int:
    """The PID of a started node's agent."""
    if node.process is None:
        raise RuntimeError(f"the agent of {node.name} was never started")
    return node.process.pid


def require_root(parser: argparse.ArgumentParser) -> None:
    if os.geteuid() != 0:
        parser.error("run as root: Icecast and Liquidsoap run as their own users")


def raise_open_files_limit() -> None:
    """Many listeners are many sockets, here and in the servers this process starts."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def running_cluster(
    nodes: int,
    *,
    etcd_members: int = 1,
    timing: Mapping[str, float] = TEST_TIMING,
    keep_raft_elsewhere: bool = False,
    limits: dict[str, int] | None = None,
    front_door: Mapping[str, object] | None = None,
    zone: str | None = None,
    each_node: Callable[[AgentNode], None] | None = None,
    acme: dict[str, object] | None = None,
) -> Iterator[RadioCluster]:
    """etcd, one Icecast per node and the agents (`front_door`: settings added to each
    agent's own; `zone`, `keep_raft_elsewhere`: see RadioCluster; `each_node`: changes
    each node's config before it starts); all stopped on the way out, and their logs
    kept if the block failed."""
    etcd = EtcdCluster(etcd_members)
    icecasts: list[IcecastServer] = []
    cluster: RadioCluster | None = None
    try:
        etcd.start()
        for _ in range(nodes):
            icecast = IcecastServer(icecast_settings_for_agents())
            icecast.start()
            icecasts.append(icecast)
        cluster = RadioCluster(
            etcd,
            icecasts,
            dict(timing),
            limits=limits,
            zone=zone,
            acme=acme,
            keep_raft_elsewhere=keep_raft_elsewhere,
        )
        for node in cluster.nodes:
            cast(dict, node.config["front_door"]).update(front_door or {})
            if each_node is not None:
                each_node(node)
        cluster.start()
        yield cluster
    except BaseException as error:  # the servers' logs outlive the teardown
        record_failure(f"{Path(sys.argv[0]).stem}-{type(error).__name__}")
        raise
    finally:
        if cluster is not None:
            cluster.stop()
        for icecast in icecasts:
            icecast.stop()
        etcd.stop()
        stop_all_started()


def report(name: str, summary: dict) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)


def cpu_over(pids: dict[str, int], seconds: float) -> dict[str, float]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)  # the measuring window
    return {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}


def phase(  # noqa: PLR0917 - the phase's whole setting
    url: str,
    count: int,
    seconds: float,
    pids: dict[str, int],
    tls: list[str] | None = None,
    during: Callable[[], None] | None = None,
    client_script: str = "listeners.py",
) -> dict:
    """Start the listeners, measure CPU over `seconds` once all are in, collect their report.
    `tls`: listeners.py's https options; `during`: done half-way through the window;
    `client_script`: the load client in bench/ (hls_players.py: HLS players)."""
    client = subprocess.Popen(
        [
            *(sys.executable, str(REPO_DIR / "bench" / client_script), url),
            *("--count", str(count), "--seconds", str(seconds + 2)),
            *(tls or []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if client.stdout is None:  # never: stdout=PIPE
            raise RuntimeError("listeners.py started without a pipe for its output")
        ready = json.loads(client.stdout.readline())
        if during is None:
            cpu = cpu_over(pids, seconds)
        else:
            first = cpu_over(pids, seconds / 2)
            during()
            second = cpu_over(pids, seconds / 2)
            cpu = {name: first[name] + second[name] for name in pids}
        rss = {name: resident_mib(pid) for name, pid in pids.items()}
        received = json.loads(client.stdout.readline())
        client.wait(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    return {"ready": ready["ready"], "cpu": cpu, "rss": rss, **received}
