"""Event loop benchmark: the agent on asyncio's own loop and on uvloop (Debian's
python3-uvloop), in one run: redirects per second (wrk, as bench/redirect), and the
agent's CPU per listener-second for N listeners through the fan-out over HTTP and over
HTTPS (as bench/passthrough and bench/https), with its resident memory.

Two nodes per loop: node1 drained (it redirects every listener to node2), node2 serving
the listeners. The last stdout line is one JSON object, each figure per loop and the
uvloop/asyncio ratios; bench/results/eventloop.json gets the same.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import cast

from benchlib import (
    agent_pid,
    cpu_over,
    phase,
    raise_open_files_limit,
    report,
    require_root,
    resident_mib,
    running_cluster,
)
from redirect import wrk

from tests.harness.agents import AgentNode, start_live_source
from tests.harness.clients import SourceClient, listen
from tests.harness.media import make_mp3
from tests.harness.pki import ZoneCertificate, make_zone_certificate
from tests.harness.ports import LOOPBACK, free_port
from tests.harness.waiting import wait_for

PASSWORD = "dj-secret"  # noqa: S105 - a throw-away test cluster
ZONE = "stream.test"
LOOPS = ("asyncio", "uvloop")


def one_loop(
    loop: str, certificate: ZoneCertificate, audio_dir: Path, arguments: argparse.Namespace
) -> dict[str, float]:
    def configure(node: AgentNode) -> None:
        node.config["event_loop"] = loop
        cast(dict, node.config["front_door"]).update(
            {
                "tls_ports": [free_port()],
                "tls_cert_file": str(certificate.cert),
                "tls_key_file": str(certificate.key),
                "https_name": f"{node.name}.{ZONE}",
            }
        )

    audio = make_mp3(audio_dir / f"noise-{loop}.mp3", seconds=240)
    with running_cluster(2, each_node=configure) as cluster:
        node1, node2 = cluster.nodes
        cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
        cluster.drain(node1.name)
        url = f"{node1.front_door_url}/live.mp3"
        wait_for(lambda: listen(url, 0, timeout=2).status == 302, timeout=15, what="redirects")
        node2.wait_front_door_serving("/live.mp3")
        rps, p99 = wrk(url, arguments.seconds, 100)
        source = start_live_source(
            SourceClient, node2, audio, "/live.mp3", password=PASSWORD, port=node2.front_door_port
        )
        try:
            pids = {"agent": agent_pid(node2)}
            idle = cpu_over(pids, arguments.seconds)
            count, seconds = arguments.listeners, arguments.seconds
            plain = phase(
                f"http://{LOOPBACK}:{node2.front_door_port}/_stream/live.mp3", count, seconds, pids
            )
            door = cast(dict, node2.config["front_door"])
            secure = phase(
                f"https://{LOOPBACK}:{door['tls_ports'][0]}/_stream/live.mp3",
                count,
                seconds,
                pids,
                tls=["--cafile", str(certificate.ca), "--server-name", door["https_name"]],
            )
            rss = resident_mib(agent_pid(node2))
        finally:
            source.stop()
    listener_seconds = arguments.listeners * arguments.seconds
    return {
        "redirect_rps": round(rps),
        "redirect_p99_ms": round(p99, 2),
        "plain_cpu_per_listener_us": round(
            (plain["cpu"]["agent"] - idle["agent"]) / listener_seconds * 1e6, 1
        ),
        "https_cpu_per_listener_us": round(
            (secure["cpu"]["agent"] - idle["agent"]) / listener_seconds * 1e6, 1
        ),
        "plain_still_connected": plain["still_connected"],
        "https_still_connected": secure["still_connected"],
        "agent_rss_mb": round(rss, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    arguments = parser.parse_args()
    require_root(parser)
    raise_open_files_limit()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        pki = Path(scratch) / "pki"
        pki.mkdir()
        certificate = make_zone_certificate(pki, ZONE)
        for loop in LOOPS:
            results[loop] = one_loop(loop, certificate, Path(scratch), arguments)
            print(f"{loop}: {results[loop]}", flush=True)
    ratios = {
        f"uvloop_vs_asyncio_{key}": round(results["uvloop"][key] / results["asyncio"][key], 2)
        for key in ("redirect_rps", "plain_cpu_per_listener_us", "https_cpu_per_listener_us")
    }
    report(
        "eventloop",
        {
            "listeners": arguments.listeners,
            "seconds": arguments.seconds,
            **{f"{loop}_{key}": value for loop in LOOPS for key, value in results[loop].items()},
            **ratios,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
