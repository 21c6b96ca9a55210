"""ACME benchmark: 3 agents of a zone on loopback order their certificate from Debian's
pebble by DNS-01 (their own DNS), then renew it on `radioctl cert renew`'s request; then
the same cluster without ACME, for the agents' memory side by side in one run.

- issue_s: from the agents' start to every node serving a certificate from pebble;
- renew_s: from the renewal request to every node serving the new one;
- acme_agent_rss_mb / zone_only_agent_rss_mb: each agent's resident memory at rest,
  5 s after the certificate is in place (the ACME library and cryptography run in
  children: they must not show here).
The last stdout line is one JSON object; bench/results/acme.json gets the same.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import agent_pid, report, require_root, resident_mib, running_cluster

from tests.harness.agents import AgentNode, RadioCluster
from tests.harness.pebble import Pebble
from tests.harness.waiting import wait_for

ZONE = "stream.test"
SETTLE_S = 5.0


def serials(cluster: RadioCluster, context: ssl.SSLContext) -> set[str] | None:
    """The serials every node's HTTPS serves, validated by `context`; None if one fails."""
    found = set()
    for node in cluster.nodes:
        name, port = node.https_url.removeprefix("https://").split(":")
        try:
            with (
                socket.create_connection((node.listen_address, int(port)), timeout=3) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                peer = tls.getpeercert() or {}
        except (OSError, ssl.SSLError):
            return None
        found.add(str(peer.get("serialNumber")))
    return found


def one_serial(
    cluster: RadioCluster, context: ssl.SSLContext, *, other_than: set[str]
) -> set[str] | None:
    """The one serial every node serves, if it is not among `other_than`."""
    found = serials(cluster, context)
    return found if found is not None and len(found) == 1 and not found & other_than else None


def memory(cluster: RadioCluster) -> list[float]:
    return [round(resident_mib(agent_pid(node)), 1) for node in cluster.nodes]


def acme_round(directory: Path) -> dict:
    acme: dict[str, object] = {"challenge": "dns-01", "retry_seconds": 3}
    pebble: Pebble | None = None

    def with_pebble(node: AgentNode) -> None:
        nonlocal pebble
        if pebble is None:  # node1: pebble resolves names with its DNS
            pebble = Pebble(f"{node.listen_address}:{node.dns_port}", node.front_door_port)
            pebble.start()
            acme.update(directory_url=pebble.directory_url, ca_file=str(pebble.ca_file))

    try:
        started = time.monotonic()
        with running_cluster(3, zone=ZONE, acme=acme, each_node=with_pebble) as cluster:
            if pebble is None:
                raise RuntimeError("pebble did not start")
            context = ssl.create_default_context(cafile=str(pebble.issuing_root(directory)))
            first = wait_for(
                lambda: one_serial(cluster, context, other_than=set()),
                timeout=120,
                what="every node serving the certificate",
            )
            issue_s = time.monotonic() - started
            time.sleep(SETTLE_S)  # at rest: the order's children are gone
            rss = memory(cluster)
            asked = time.monotonic()
            cluster.store().request_renewal(time.time())
            wait_for(
                lambda: (
                    (found := serials(cluster, context)) and len(found) == 1 and not found & first
                ),
                timeout=120,
                what="every node serving the renewed certificate",
            )
            renew_s = time.monotonic() - asked
    finally:
        if pebble is not None:
            pebble.stop()
    return {"issue_s": round(issue_s, 2), "renew_s": round(renew_s, 2), "rss": rss}


def zone_only_memory() -> list[float]:
    with running_cluster(3, zone=ZONE) as cluster:
        time.sleep(SETTLE_S)
        return memory(cluster)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    require_root(parser)
    rounds = []
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(args.rounds):
            rounds.append({**acme_round(Path(directory)), "zone_only_rss": zone_only_memory()})
    report(
        "acme",
        {
            "rounds": args.rounds,
            "issue_s": [r["issue_s"] for r in rounds],
            "renew_s": [r["renew_s"] for r in rounds],
            "acme_agent_rss_mb": [mb for r in rounds for mb in r["rss"]],
            "zone_only_agent_rss_mb": [mb for r in rounds for mb in r["zone_only_rss"]],
            "acme_rss_median_mb": round(
                statistics.median(mb for r in rounds for mb in r["rss"]), 1
            ),
            "zone_only_rss_median_mb": round(
                statistics.median(mb for r in rounds for mb in r["zone_only_rss"]), 1
            ),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
