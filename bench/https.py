"""HTTPS benchmark: N concurrent 128 kbps listeners served straight by Icecast, through
the agent's fan-out over plain HTTP, and through it over HTTPS, in one run on one node.

CPU per listener-second as in bench/passthrough (the idle window subtracted). Half-way
through the HTTPS window the certificate files are replaced (a renewal): listeners lost
then are `dropped_on_renewal`. Handshakes per second: `openssl s_time -new` against the
HTTPS port for `--seconds`, with no listeners. The last stdout line is one JSON object;
bench/results/https.json gets the same.
"""

from __future__ import annotations

import argparse
import re
import subprocess
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
    running_cluster,
)

from tests.harness.agents import start_live_source
from tests.harness.clients import SourceClient
from tests.harness.media import make_mp3
from tests.harness.pki import make_zone_certificate
from tests.harness.ports import LOOPBACK, free_port

PASSWORD = "dj-secret"  # noqa: S105 - a throw-away test cluster
ZONE = "stream.test"
NAME = f"node1.{ZONE}"


def handshakes_per_second(port: int, ca: Path, seconds: float) -> float:
    result = subprocess.run(
        [
            *("openssl", "s_time", "-connect", f"{LOOPBACK}:{port}", "-new"),
            *("-time", str(int(seconds)), "-CAfile", str(ca), "-verify", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    found = re.search(r"(\d+) connections in ([0-9.]+) real seconds", result.stdout)
    if found is None:
        raise RuntimeError(f"openssl s_time said: {result.stdout[-400:]}")
    return int(found.group(1)) / float(found.group(2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    arguments = parser.parse_args()
    require_root(parser)
    raise_open_files_limit()
    tls_port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        pki = Path(scratch) / "pki"
        pki.mkdir()
        certificate = make_zone_certificate(pki, ZONE)
        door = {
            "tls_ports": [tls_port],
            "tls_cert_file": str(certificate.cert),
            "tls_key_file": str(certificate.key),
            "https_name": NAME,
        }
        audio = make_mp3(Path(scratch) / "noise.mp3", seconds=240)
        with running_cluster(1, front_door=door) as cluster:
            node = cluster.nodes[0]
            cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
            cluster.wait_leader()
            node.wait_front_door_serving("/live.mp3")
            source = start_live_source(
                SourceClient, node, audio, "/live.mp3", password=PASSWORD, port=node.front_door_port
            )

            def renew() -> None:
                renewed = make_zone_certificate(pki, ZONE, name="renewed")
                renewed.key.replace(certificate.key)
                renewed.cert.replace(certificate.cert)

            try:
                pids = {"icecast": node.icecast.process.pid, "agent": agent_pid(node)}
                idle = cpu_over(pids, arguments.seconds)
                handshakes = handshakes_per_second(tls_port, certificate.ca, arguments.seconds)
                count, seconds = arguments.listeners, arguments.seconds
                direct = phase(f"{node.icecast.base_url}/live.mp3", count, seconds, pids)
                plain = phase(
                    f"http://{LOOPBACK}:{node.front_door_port}/_stream/live.mp3",
                    count,
                    seconds,
                    pids,
                )
                secure = phase(
                    f"https://{LOOPBACK}:{tls_port}/_stream/live.mp3",
                    count,
                    seconds,
                    pids,
                    tls=["--cafile", str(certificate.ca), "--server-name", NAME],
                    during=renew,
                )
            finally:
                source.stop()
    listener_seconds = arguments.listeners * arguments.seconds

    def cost(result: dict, process: str) -> float:
        return (result["cpu"][process] - idle[process]) / listener_seconds * 1e6

    icecast, fanout, tls = cost(direct, "icecast"), cost(plain, "agent"), cost(secure, "agent")
    report(
        "https",
        {
            "listeners": arguments.listeners,
            "seconds": arguments.seconds,
            "icecast_cpu_per_listener_us": round(icecast, 1),
            "plain_cpu_per_listener_us": round(fanout, 1),
            "https_cpu_per_listener_us": round(tls, 1),
            "https_cpu_ratio_vs_icecast": round(tls / icecast, 2),
            "https_cpu_ratio_vs_plain": round(tls / fanout, 2),
            "handshakes_per_s": round(handshakes),
            "dropped_on_renewal": cast(int, secure["connected"]) - secure["still_connected"],
            "agent_rss_mb_https": round(secure["rss"]["agent"], 1),
            "still_connected": {
                "icecast": direct["still_connected"],
                "plain": plain["still_connected"],
                "https": secure["still_connected"],
            },
            "bytes_per_listener_per_s_https": secure["bytes_per_listener_per_s"],
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
