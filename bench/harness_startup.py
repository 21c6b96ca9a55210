"""How long the test harness takes to bring each real service up, and its memory.

Run on demand as root: `.venv/bin/python bench/harness_startup.py [--rounds N]`.
Writes bench/results/harness_startup.json. Each round starts and stops every service once;
the report gives the median and the worst round, seconds from spawn to "serving", and the
resident memory of each service once serving.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR / "agent"))

from tests.harness.etcd import EtcdCluster  # noqa: E402
from tests.harness.icecast import IcecastServer  # noqa: E402
from tests.harness.liquidsoap import LiquidsoapTone  # noqa: E402
from tests.harness.processes import ManagedProcess, stop_all_started  # noqa: E402

RESULTS_FILE = REPO_DIR / "bench" / "results" / "harness_startup.json"


def resident_mib(process: ManagedProcess) -> float:
    status = Path(f"/proc/{process.pid}/status").read_text()
    rss_kib = next(
        int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
    )
    return rss_kib / 1024


def timed(start: Callable[[], None]) -> float:
    began = time.monotonic()
    start()
    return time.monotonic() - began


def one_round() -> dict[str, dict[str, float]]:
    measured: dict[str, dict[str, float]] = {}
    single = EtcdCluster(1)
    trio = EtcdCluster(3)
    icecast = IcecastServer()
    try:
        measured["etcd_single_member"] = {"seconds": timed(single.start)}
        measured["etcd_single_member"]["rss_mib"] = resident_mib(single.members[0].started_process)
        measured["etcd_three_members"] = {"seconds": timed(trio.start)}
        measured["etcd_three_members"]["rss_mib"] = sum(
            resident_mib(member.started_process) for member in trio.members
        )
        measured["icecast"] = {"seconds": timed(icecast.start)}
        measured["icecast"]["rss_mib"] = resident_mib(icecast.process)
        tone = LiquidsoapTone(icecast, "/bench.mp3")
        try:
            measured["liquidsoap_tone_live"] = {"seconds": timed(tone.start)}
            measured["liquidsoap_tone_live"]["rss_mib"] = resident_mib(tone.process)
        finally:
            tone.stop()
    finally:
        single.stop()
        trio.stop()
        icecast.stop()
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    if arguments.rounds < 1:
        parser.error("--rounds must be at least 1")
    if os.geteuid() != 0:
        parser.error("run as root: Icecast and Liquidsoap run as their own users")
    rounds = []
    try:
        for _ in range(arguments.rounds):
            rounds.append(one_round())
    finally:
        stop_all_started()
    summary = {
        service: {
            "median_seconds": round(statistics.median(r[service]["seconds"] for r in rounds), 3),
            "worst_seconds": round(max(r[service]["seconds"] for r in rounds), 3),
            "median_rss_mib": round(statistics.median(r[service]["rss_mib"] for r in rounds), 1),
        }
        for service in rounds[0]
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps({"rounds": arguments.rounds, "services": summary}, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
