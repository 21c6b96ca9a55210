"""Redirect benchmark: wrk against one agent that answers every listener with a 302, and
against nginx `return 302` on the same machine in the same run.

Two nodes; node1 is drained, so each GET of /live.mp3 on node1 is redirected to node2.
Prints one JSON object as its last line: agent_rps, nginx_rps, ratio, p99_ms (agent),
nginx_p99_ms, agent_rss_mb; bench/results/redirect.json gets the same.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

from benchlib import agent_pid, report, require_root, resident_mib, running_cluster

from tests.harness.clients import listen
from tests.harness.ports import LOOPBACK, free_port
from tests.harness.processes import ManagedProcess
from tests.harness.waiting import wait_for

NGINX_CONFIG = """
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server {{
        listen {host}:{port};
        location / {{ return 302 http://{host}:1/_stream/live.mp3; }}
    }}
}}
"""


def search(pattern: str, output: str) -> re.Match[str]:
    match = re.search(pattern, output)
    if match is None:
        raise RuntimeError(f"no {pattern!r} in wrk's output:\n{output}")
    return match


def wrk(url: str, seconds: int, connections: int) -> tuple[float, float]:
    """Requests per second and the 99th percentile latency in ms."""
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    rps = float(search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))
    value, unit = search(r"\s99%\s+([\d.]+)(us|ms|s)\b", result.stdout).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    if "Non-2xx or 3xx responses" in result.stdout:
        raise RuntimeError(f"errors during the run:\n{result.stdout}")
    return rps, p99_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=100)
    arguments = parser.parse_args()
    require_root(parser)
    with running_cluster(2) as cluster, tempfile.TemporaryDirectory() as directory:
        cluster.store().create_mount({"name": "live.mp3", "source_password": "dj-secret"})
        node1 = cluster.nodes[0]
        cluster.drain(node1.name)
        url = f"{node1.front_door_url}/live.mp3"
        wait_for(
            lambda: listen(url, 0, timeout=2).status == 302,
            timeout=15,
            what="node1 to redirect",
        )
        agent_rps, agent_p99 = wrk(url, arguments.seconds, arguments.connections)
        agent_rss = resident_mib(agent_pid(node1))

        port = free_port()
        config = Path(directory, "nginx.conf")
        config.write_text(NGINX_CONFIG.format(directory=directory, host=LOOPBACK, port=port))
        nginx = ManagedProcess(
            "nginx", ["nginx", "-c", str(config), "-p", directory], Path(directory, "out.log")
        )
        nginx.start()
        try:
            nginx_url = f"http://{LOOPBACK}:{port}/live.mp3"
            wait_for(
                lambda: listen(nginx_url, 0, timeout=2).status == 302, timeout=10, what="nginx"
            )
            nginx_rps, nginx_p99 = wrk(nginx_url, arguments.seconds, arguments.connections)
        finally:
            nginx.stop()
    report(
        "redirect",
        {
            "seconds": arguments.seconds,
            "connections": arguments.connections,
            "agent_rps": round(agent_rps),
            "nginx_rps": round(nginx_rps),
            "ratio": round(agent_rps / nginx_rps, 3),
            "p99_ms": round(agent_p99, 2),
            "nginx_p99_ms": round(nginx_p99, 2),
            "agent_rss_mb": round(agent_rss, 1),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
