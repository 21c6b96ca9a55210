"""Transcoder benchmark: the node running a transcoded mount's Liquidsoap is SIGKILLed,
and another node takes over.

Three nodes on loopback (ttl 4 s, as the tests). Each round kills the transcoder's owner
agent (if it led, the studio reconnects to the new leader, as an encoder does) and
measures the time until a listener on a surviving node hears transcoded sound again.
/proc is sampled every 0.1 s throughout for two Liquidsoap processes of the same mount.
Prints one JSON object as its last line: takeover_s (median and max), duplicates_seen,
liquidsoap_rss_mb; bench/results/transcoder.json gets the same.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

from benchlib import report, require_root, resident_mib, running_cluster

from tests.harness.agents import TEST_TIMING, RadioCluster, connect_source
from tests.harness.clients import SourceClient
from tests.harness.media import make_mp3
from tests.harness.transcoders import (
    live_on_leader,
    owner,
    plays_sound,
    transcoder_processes,
)
from tests.harness.waiting import wait_for

PASSWORD = "dj-secret"  # noqa: S105 - a throw-away test cluster
MOUNT = "low.mp3"


def transcoder_back(cluster: RadioCluster, dead: str) -> bool:
    """Another node than `dead` claims the transcoder, and its source is on the leader."""
    return owner(cluster, MOUNT) not in (None, dead) and live_on_leader(cluster, [MOUNT])


class DuplicateWatch:
    """Samples /proc in the background: how often two processes transcoded the mount,
    and the largest Liquidsoap seen."""

    def __init__(self, cluster: RadioCluster) -> None:
        self.cluster = cluster
        self.duplicates = 0
        self.samples = 0
        self.rss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):  # the sampling period
            running = transcoder_processes(MOUNT, self.cluster)
            self.samples += 1
            self.duplicates += len(running) > 1
            for pid in running:
                try:
                    self.rss_mb = max(self.rss_mb, resident_mib(pid))
                except (OSError, StopIteration):
                    continue

    def __enter__(self) -> DuplicateWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    require_root(parser)
    takeovers = []
    sources: list[SourceClient] = []
    with (
        tempfile.TemporaryDirectory() as media,
        running_cluster(3) as cluster,
        DuplicateWatch(cluster) as watch,
    ):
        audio = make_mp3(Path(media) / "noise.mp3", seconds=600)
        store = cluster.store()
        store.create_mount({"name": "live.mp3", "source_password": PASSWORD})
        transcode = {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 64}}
        store.create_mount(
            {"name": MOUNT, "source_password": "transcoder-secret", "transcode": transcode}
        )

        def studio() -> None:
            leader = cluster.node(cluster.wait_leader())
            sources.append(
                wait_for(
                    lambda: connect_source(leader, SourceClient, "/live.mp3", PASSWORD, audio),
                    timeout=15,
                    what="the studio connected",
                )
            )

        studio()
        try:
            for _ in range(arguments.rounds):
                victim = cluster.node(
                    wait_for(lambda: owner(cluster, MOUNT), timeout=20, what="owner")
                )
                listener = next(node for node in cluster.nodes if node is not victim)
                wait_for(
                    partial(plays_sound, listener, MOUNT, "mp3"),
                    timeout=20,
                    what="sound",
                )
                was_leader = cluster.leader_name() == victim.name
                killed_at = time.monotonic()
                victim.kill()
                if was_leader:
                    cluster.wait_leader(other_than=victim.name, timeout=TEST_TIMING["ttl"] + 5)
                    studio()
                # Audio back: the new Liquidsoap's source on the leader (the dead one's
                # vanished with it), then sound after the front door's burst.
                wait_for(
                    partial(transcoder_back, cluster, victim.name),
                    timeout=30,
                    what="the transcoder back on the leader",
                    interval=0.05,
                )
                takeovers.append(time.monotonic() - killed_at)
                wait_for(
                    partial(plays_sound, listener, MOUNT, "mp3", fresh=True),
                    timeout=20,
                    what="transcoded sound back",
                )
                print(f"round {len(takeovers)}: {takeovers[-1]:.2f} s", flush=True)
                victim.start()
                cluster.wait_all_present()
        finally:
            for source in sources:
                source.stop()
    report(
        "transcoder",
        {
            "rounds": arguments.rounds,
            "ttl_s": TEST_TIMING["ttl"],
            "takeover_s": round(statistics.median(takeovers), 2),
            "takeover_max_s": round(max(takeovers), 2),
            "duplicates_seen": watch.duplicates,
            "samples": watch.samples,
            "liquidsoap_rss_mb": round(watch.rss_mb, 1),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
