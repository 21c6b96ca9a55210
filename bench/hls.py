"""HLS benchmark: three nodes on loopback, a studio streaming MP3 128 kbps into the
leader's front door; HLS read from the two other nodes.

- live_edge_delay_s: how far behind the wall clock a player at the live edge plays (now
  minus the newest segment's timestamp, median of samples; a node's timeline follows the
  audio's arrival there); live_edge_delay_3_back_s: for a player three segments back, as
  hls.js starts by default;
- node_switch_gap_s: a player following one node's playlist moves to another when that
  node's agent is killed (the other was not cutting the mount yet): the audio between the
  end of its last segment and the start of the next one it gets (negative: a repeat);
- CPU: the agent's CPU per listener-second with N HLS players (bench/hls_players.py) and
  with N progressive listeners (bench/listeners.py) on the same node in the same run,
  each minus an idle window;
- memory_per_mount_kb: the segments the node keeps for the mount (radio_hls_held_bytes);
- decode_errors: ffmpeg reading the node's HLS during the players' window.
The last stdout line is one JSON object; bench/results/hls.json gets the same.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
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

from radioagent.hls.id3 import TIMESTAMP_HZ, TIMESTAMP_MODULUS
from tests.harness.agents import AgentNode, start_live_source
from tests.harness.clients import SourceClient
from tests.harness.hls import MediaPlaylist, fetch, parse_media_playlist, segment_start
from tests.harness.media import make_mp3
from tests.harness.waiting import wait_for

PASSWORD = "dj-secret"  # noqa: S105 - a throw-away test cluster
TARGET = 4.0  # the default hls_target_seconds
WRAP = TIMESTAMP_MODULUS / TIMESTAMP_HZ  # the tags' clock wraps every 26.5 hours
FRAME = 1152 / 44100


def playlist(node: AgentNode, query: str = "") -> MediaPlaylist:
    _, _, body = fetch(f"{node.front_door_url}/hls/live.mp3/index.m3u8{query}")
    return parse_media_playlist(body.decode())


def start_of(node: AgentNode, sequence: int) -> float:
    return segment_start(f"{node.front_door_url}/hls/live.mp3/{sequence}.mp3")


def since(tag: float) -> float:
    """Seconds from a tag's time to now, on the tags' wrapping clock."""
    return (time.time() - tag) % WRAP


def live_edge(node: AgentNode, samples: int) -> tuple[float, float]:
    """Median delay of a player at the live edge, and of one three segments back."""
    edge, back = [], []
    for _ in range(samples):
        current = playlist(node)
        edge.append(since(start_of(node, current.sequences[-1])))
        back.append(since(start_of(node, current.sequences[-3])))
        time.sleep(TARGET / 3)  # samples spread over the segments' cycle
    return statistics.median(edge), statistics.median(back)


def switch_gap(from_node: AgentNode, to_node: AgentNode) -> float:
    """A player on `from_node` when its agent dies goes on at `to_node` by sequence."""
    current = playlist(from_node)
    last = current.sequences[-1]
    last_end = start_of(from_node, last) + current.segments[-1][1]
    from_node.kill()
    switched_at = time.monotonic()

    def next_on_target() -> int | None:
        there = playlist(to_node)
        later = [sequence for sequence in there.sequences if sequence > last]
        return later[0] if later else None

    following = wait_for(next_on_target, timeout=3 * TARGET + 5, what="a later segment")
    print(f"hls: switched in {time.monotonic() - switched_at:.2f} s", file=sys.stderr)
    return (start_of(to_node, following) - last_end + WRAP / 2) % WRAP - WRAP / 2


def ffmpeg_errors(url: str, seconds: float, found: list[str]) -> None:
    result = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", url),
            *("-t", str(seconds), "-f", "s16le", "pipe:1"),
        ],
        capture_output=True,
        timeout=seconds + 60,
        check=False,
    )
    found.extend(
        line
        for line in result.stderr.decode(errors="replace").splitlines()
        if "non monotonically increasing dts" not in line  # ffmpeg's own MP3 re-timing
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--samples", type=int, default=12)
    arguments = parser.parse_args()
    require_root(parser)
    raise_open_files_limit()
    # The agents' own keep-alive timeout (10 s): players polling every 4 s keep their
    # connection, as they do on a node built by the playbooks (the harness's is 2 s).
    with (
        tempfile.TemporaryDirectory() as media,
        running_cluster(3, front_door={"header_timeout": 10.0}) as cluster,
    ):
        audio = make_mp3(Path(media) / "noise.mp3", seconds=400)
        cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
        leader = cluster.leader_taking_sources("/_live/live.mp3", PASSWORD)
        first, second = [node for node in cluster.nodes if node is not leader]
        start_live_source(
            SourceClient,
            leader,
            audio,
            "/live.mp3",
            password=PASSWORD,
            port=leader.front_door_port,
        )
        playlist(first)  # the first request starts the node's cut
        wait_for(lambda: len(playlist(first).segments) >= 3, timeout=30, what="3 segments")
        edge, back = live_edge(first, arguments.samples)
        gap = switch_gap(first, second)
        pids = {"agent": agent_pid(second)}
        idle = cpu_over(pids, arguments.seconds)
        progressive = phase(
            f"{second.front_door_url}/_stream/live.mp3", arguments.players, arguments.seconds, pids
        )
        errors: list[str] = []
        reader = threading.Thread(
            target=ffmpeg_errors,
            args=(f"{second.front_door_url}/live.mp3.m3u8", arguments.seconds, errors),
        )
        reader.start()
        hls = phase(
            f"{second.front_door_url}/live.mp3",
            arguments.players,
            arguments.seconds,
            pids,
            client_script="hls_players.py",
        )
        reader.join()
        held = second.metric("radio_hls_held_bytes") or 0.0
        rss = hls["rss"]["agent"]
    listener_seconds = arguments.players * arguments.seconds
    hls_cost = (hls["cpu"]["agent"] - idle["agent"]) / listener_seconds * 1e6
    progressive_cost = (progressive["cpu"]["agent"] - idle["agent"]) / listener_seconds * 1e6
    report(
        "hls",
        {
            "target_duration_s": TARGET,
            "live_edge_delay_s": round(edge, 2),
            "live_edge_delay_3_back_s": round(back, 2),
            "node_switch_gap_s": round(gap, 3),
            "players": arguments.players,
            "seconds": arguments.seconds,
            "hls_cpu_per_listener_us": round(hls_cost, 1),
            "progressive_cpu_per_listener_us": round(progressive_cost, 1),
            "hls_vs_progressive_cpu": round(hls_cost / progressive_cost, 2),
            "hls_still_playing": hls["still_connected"],
            "hls_segments_per_player": hls["segments_per_player"],
            "progressive_still_connected": progressive["still_connected"],
            "memory_per_mount_kb": round(held / 1024),
            "agent_rss_mb": round(rss, 1),
            "decode_errors": len(errors),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
