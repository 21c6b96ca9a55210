"""Passthrough benchmark: N concurrent 128 kbps listeners served straight by Icecast, then
through the agent's fan-out, in the same run on the same node.

CPU is read from /proc for the Icecast and agent processes over a fixed window once every
listener is in, minus the same window with no listeners (the source is piped through the
agent in every phase). Prints one JSON object as its last line: listeners,
icecast_cpu_per_listener and agent_cpu_per_listener (microseconds of CPU per
listener-second), cpu_ratio, agent_rss_mb, and what the listeners received;
bench/results/passthrough.json gets the same.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchlib import (
    agent_pid,
    cpu_over,
    phase,
    raise_open_files_limit,
    report,
    require_root,
    running_cluster,
)

from tests.harness.agents import start_live_source
from tests.harness.clients import SourceClient
from tests.harness.media import make_mp3
from tests.harness.ports import LOOPBACK

PASSWORD = "dj-secret"  # noqa: S105 - a throw-away test cluster


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    arguments = parser.parse_args()
    require_root(parser)
    raise_open_files_limit()
    with tempfile.TemporaryDirectory() as media, running_cluster(1) as cluster:
        audio = make_mp3(Path(media) / "noise.mp3", seconds=240)
        cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
        node = cluster.nodes[0]
        cluster.wait_leader()
        node.wait_front_door_serving("/live.mp3")
        source = start_live_source(
            SourceClient, node, audio, "/live.mp3", password=PASSWORD, port=node.front_door_port
        )
        try:
            pids = {"icecast": node.icecast.process.pid, "agent": agent_pid(node)}
            idle = cpu_over(pids, arguments.seconds)
            direct = phase(
                f"{node.icecast.base_url}/live.mp3", arguments.listeners, arguments.seconds, pids
            )
            fanned = phase(
                f"http://{LOOPBACK}:{node.front_door_port}/_stream/live.mp3",
                arguments.listeners,
                arguments.seconds,
                pids,
            )
        finally:
            source.stop()
    listener_seconds = arguments.listeners * arguments.seconds
    icecast_cost = (direct["cpu"]["icecast"] - idle["icecast"]) / listener_seconds * 1e6
    agent_cost = (fanned["cpu"]["agent"] - idle["agent"]) / listener_seconds * 1e6
    report(
        "passthrough",
        {
            "listeners": arguments.listeners,
            "seconds": arguments.seconds,
            "icecast_cpu_per_listener": round(icecast_cost, 1),
            "agent_cpu_per_listener": round(agent_cost, 1),
            "cpu_ratio": round(agent_cost / icecast_cost, 2),
            "agent_rss_mb": round(fanned["rss"]["agent"], 1),
            "icecast_cpu_s_during_fanout": round(fanned["cpu"]["icecast"], 2),
            "direct_still_connected": direct["still_connected"],
            "fanout_still_connected": fanned["still_connected"],
            "direct_bytes_per_listener_per_s": direct["bytes_per_listener_per_s"],
            "fanout_bytes_per_listener_per_s": fanned["bytes_per_listener_per_s"],
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
