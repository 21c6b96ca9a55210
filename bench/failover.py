"""Failover benchmark: real etcd (3 members), 3 Icecasts, 3 agents on loopback.

Each round builds a fresh cluster and measures:
- mount_propagation_s: mount created in etcd -> every node serves it (valid MP3);
- crash_failover_s: leader node killed (agent and Icecast) -> a new leader takes sources;
- graceful_failover_s: leader agent SIGTERMed -> a new leader takes sources;
- listener_gap_s / listeners_dropped: listeners on the other nodes across both changes
  (longest time without a byte; connections lost);
- raft_collocated_crash_failover_s: etcd's raft leadership moved onto the leader's own
  member, the leader's agent moves it to another member (raft_moved_away_s), then the
  leader's whole machine dies, etcd member included -> a new leader takes sources;
  raft_unprotected_crash_failover_s: the same machine death with agents that do not
  guard raft leadership (no `etcd.member_name`, the default), for comparison in the
  same run.
The last stdout line is one JSON object; bench/results/failover.json gets the same.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR / "agent"))

from benchlib import agent_pid, resident_mib, running_cluster  # noqa: E402

from tests.harness.agents import (  # noqa: E402
    TEST_TIMING,
    AgentNode,
    RadioCluster,
    start_live_source,
)
from tests.harness.audio import analyse_mp3  # noqa: E402
from tests.harness.clients import SourceClient, StreamRecorder, listen  # noqa: E402
from tests.harness.media import AudioSample, make_mp3  # noqa: E402
from tests.harness.processes import stop_all_started  # noqa: E402
from tests.harness.waiting import wait_for  # noqa: E402

RESULTS_FILE = REPO_DIR / "bench" / "results" / "failover.json"
DJ_CREDENTIAL = "dj-secret"
POLL = 0.02
LISTENERS_PER_NODE = 4


def serves_mp3(node: AgentNode, mount: str) -> bool:
    received = listen(f"{node.icecast.base_url}{mount}", 2048, timeout=0.5)
    return received.status == 200 and not analyse_mp3(received.body).problems(min_frames=2)


def time_until(condition: Callable[[], object], timeout: float, what: str) -> float:
    started = time.monotonic()
    wait_for(condition, timeout=timeout, what=what, interval=POLL)
    return time.monotonic() - started


def start_studio(node: AgentNode, audio: AudioSample) -> SourceClient:
    return start_live_source(SourceClient, node, audio, password=DJ_CREDENTIAL)


def wait_live(nodes: list[AgentNode], audio: AudioSample) -> None:
    for node in nodes:
        wait_for(
            partial(node.plays_source_audio, "/live.mp3", audio.data),
            timeout=15,
            what=f"live audio on {node.name}",
        )


def seconds_until_served(node: AgentNode, mount: str, since: float) -> float:
    wait_for(
        lambda: serves_mp3(node, mount), timeout=10, what=f"{mount} on {node.name}", interval=POLL
    )
    return time.monotonic() - since


def measure_propagation(cluster: RadioCluster, mounts: int) -> list[float]:
    """Seconds from creating each mount until the last node serves it (holding silence),
    every node polled at once."""
    propagation = []
    phases = random.Random(7)  # noqa: S311 - timing jitter, not security
    with ThreadPoolExecutor(max_workers=len(cluster.nodes)) as pool:
        for index in range(mounts):
            name = "live.mp3" if index == 0 else f"extra{index}.mp3"
            # Operators create mounts at any moment; without this, each creation would
            # follow the previous mount's arrival, just after an Icecast reload tick.
            time.sleep(phases.uniform(0, 1))
            created = time.monotonic()
            cluster.store().create_mount({"name": name, "source_password": DJ_CREDENTIAL})
            per_node = pool.map(
                partial(seconds_until_served, mount=f"/{name}", since=created), cluster.nodes
            )
            propagation.append(max(per_node))
    return propagation


def change_leader(
    cluster: RadioCluster,
    leader: AgentNode,
    sources: list[SourceClient],
    ttl: float,
    *,
    crash: bool,
) -> tuple[AgentNode, float]:
    """Crash the leader node (agent and Icecast) or SIGTERM its agent; the studio's
    connection drops with it. Returns the next leader and the seconds until it took a
    source."""
    started = time.monotonic()
    sources.pop().stop()  # the studio's connection dies with its leader
    if crash:
        new_leader = cluster.crash_leader(leader, timeout=ttl + 10)
    else:
        leader.stop()
        new_leader = cluster.node(cluster.wait_leader(timeout=ttl + 10, other_than=leader.name))
    wait_for(
        lambda: new_leader.accepts_source("/_live/live.mp3", DJ_CREDENTIAL),
        timeout=ttl + 10,
        what=f"{new_leader.name} to take sources",
        interval=POLL,
    )
    return new_leader, time.monotonic() - started


def three_nodes(
    timing: dict[str, float], *, keep_raft_elsewhere: bool = False
) -> contextlib.AbstractContextManager[RadioCluster]:
    """A fresh cluster: 3 etcd members, 3 Icecasts, 3 agents; all stopped at the end."""
    return running_cluster(
        3, etcd_members=3, timing=timing, keep_raft_elsewhere=keep_raft_elsewhere
    )


def one_round(audio: AudioSample, timing: dict[str, float], mounts: int) -> dict:
    sources: list[SourceClient] = []
    listeners: list[StreamRecorder] = []
    with three_nodes(timing) as cluster:
        try:
            return measured_round(
                cluster, audio, timing, mounts=mounts, sources=sources, listeners=listeners
            )
        finally:
            for listener in listeners:
                listener.stop()
            for source in sources:
                source.stop()


def measured_round(
    cluster: RadioCluster,
    audio: AudioSample,
    timing: dict[str, float],
    *,
    mounts: int,
    sources: list[SourceClient],
    listeners: list[StreamRecorder],
) -> dict:
    """The crash and graceful failovers; `sources` and `listeners` are the caller's to
    stop."""
    ttl = timing["ttl"]

    propagation = measure_propagation(cluster, mounts)
    agent_rss = [resident_mib(agent_pid(node)) for node in cluster.nodes]

    leader = cluster.node(cluster.wait_leader())
    sources.append(start_studio(leader, audio))
    others = [node for node in cluster.nodes if node is not leader]
    wait_live(others, audio)
    listeners.extend(
        StreamRecorder(f"{node.icecast.base_url}/live.mp3", max_seconds=120).start()
        for node in others
        for _ in range(LISTENERS_PER_NODE)
    )
    wait_for(
        lambda: all(listener.arrivals for listener in listeners),
        timeout=10,
        what="every listener to receive audio",
    )

    crashed = time.monotonic()
    new_leader, crash_failover = change_leader(cluster, leader, sources, ttl, crash=True)
    sources.append(start_studio(new_leader, audio))
    wait_live(others, audio)

    remaining = [node for node in others if node is not new_leader]
    graceful_leader, graceful_failover = change_leader(
        cluster, new_leader, sources, ttl, crash=False
    )
    sources.append(start_live_source(SourceClient, graceful_leader, audio, password=DJ_CREDENTIAL))
    wait_live(remaining, audio)
    settled = time.monotonic()

    # Listeners on the node whose agent stopped lose the relay for good (no agent to
    # redirect it); count the others, which must all stay.
    watched = [
        listener
        for listener in listeners
        if not listener.url.startswith(new_leader.icecast.base_url)
    ]
    return {
        "mount_propagation_s": propagation,
        "agent_rss_mib": agent_rss,
        "crash_failover_s": crash_failover,
        "graceful_failover_s": graceful_failover,
        "listener_gap_s": max(listener.longest_gap(crashed, settled) for listener in watched),
        "listeners_dropped": sum(not listener.connected for listener in watched),
        "listeners_watched": len(watched),
    }


def raft_round(audio: AudioSample, timing: dict[str, float], *, protected: bool) -> dict:
    """A fresh cluster whose leader's machine dies with its etcd member, raft leadership
    first moved onto that member: left there (`protected` False) or after its agent
    handed it on."""
    sources: list[SourceClient] = []
    with three_nodes(timing, keep_raft_elsewhere=protected) as cluster:
        try:
            etcd = cluster.etcd
            cluster.create_served_mount({"name": "live.mp3", "source_password": DJ_CREDENTIAL})
            leader = cluster.node(cluster.wait_leader())
            sources.append(start_studio(leader, audio))
            own = cluster.nodes.index(leader)  # its "local" etcd member
            if etcd.leader_index() != own:
                etcd.move_leader(to=own)
            moved_away = 0.0
            if protected:
                moved_away = time_until(
                    lambda: etcd.leader_index() != own, timeout=20, what="raft moved away"
                )
            started = time.monotonic()
            sources.pop().stop()  # the studio's connection dies with its leader
            etcd.kill(own)
            new_leader = cluster.crash_leader(leader, timeout=timing["ttl"] + 30)
            wait_for(
                lambda: new_leader.accepts_source("/_live/live.mp3", DJ_CREDENTIAL),
                timeout=timing["ttl"] + 30,
                what=f"{new_leader.name} to take sources",
                interval=POLL,
            )
            return {"failover_s": time.monotonic() - started, "moved_away_s": moved_away}
        finally:
            for source in sources:
                source.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mounts", type=int, default=3, help="mounts created per round")
    parser.add_argument("--ttl", type=float, default=TEST_TIMING["ttl"])
    parser.add_argument("--loop-wait", type=float, default=TEST_TIMING["loop_wait"])
    parser.add_argument("--retry-timeout", type=float, default=TEST_TIMING["retry_timeout"])
    arguments = parser.parse_args()
    if arguments.rounds < 1 or arguments.mounts < 1:
        parser.error("--rounds and --mounts must be at least 1")
    if os.geteuid() != 0:
        parser.error("run as root: Icecast and Liquidsoap run as their own users")
    timing = {
        "ttl": arguments.ttl,
        "loop_wait": arguments.loop_wait,
        "retry_timeout": arguments.retry_timeout,
    }
    media_dir = Path(tempfile.mkdtemp(prefix="radio-bench-"))
    rounds = []
    try:
        audio = make_mp3(media_dir / "noise.mp3", seconds=60)
        for number in range(arguments.rounds):
            rounds.append(one_round(audio, timing, arguments.mounts))
            protected = raft_round(audio, timing, protected=True)
            unprotected = raft_round(audio, timing, protected=False)
            rounds[-1] |= {
                "raft_collocated_crash_failover_s": protected["failover_s"],
                "raft_moved_away_s": protected["moved_away_s"],
                "raft_unprotected_crash_failover_s": unprotected["failover_s"],
            }
            print(f"round {number + 1}: {json.dumps(rounds[-1])}", flush=True)
    finally:
        stop_all_started()
        for file in media_dir.iterdir():
            file.unlink()
        media_dir.rmdir()
    propagation = [value for result in rounds for value in result["mount_propagation_s"]]
    summary = {
        "ttl_s": arguments.ttl,
        "loop_wait_s": arguments.loop_wait,
        "retry_timeout_s": arguments.retry_timeout,
        "rounds": arguments.rounds,
        "crash_failover_s": round(statistics.median(r["crash_failover_s"] for r in rounds), 3),
        "crash_failover_max_s": round(max(r["crash_failover_s"] for r in rounds), 3),
        "graceful_failover_s": round(
            statistics.median(r["graceful_failover_s"] for r in rounds), 3
        ),
        "graceful_failover_max_s": round(max(r["graceful_failover_s"] for r in rounds), 3),
        "listener_gap_s": round(max(r["listener_gap_s"] for r in rounds), 3),
        "listeners_dropped": sum(r["listeners_dropped"] for r in rounds),
        "listeners_watched": sum(r["listeners_watched"] for r in rounds),
        "mount_propagation_s": round(statistics.median(propagation), 3),
        "mount_propagation_max_s": round(max(propagation), 3),
        "agent_rss_mib": round(max(value for r in rounds for value in r["agent_rss_mib"]), 1),
    }
    for name in (
        "raft_collocated_crash_failover_s",
        "raft_moved_away_s",
        "raft_unprotected_crash_failover_s",
    ):
        summary[name] = round(statistics.median(r[name] for r in rounds), 3)
        summary[name.removesuffix("_s") + "_max_s"] = round(max(r[name] for r in rounds), 3)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
