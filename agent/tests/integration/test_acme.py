"""The cluster orders its own certificate from a real ACME CA (Debian's pebble, on
loopback): by DNS-01, answered by the agents' own DNS, and by HTTP-01, answered by every
front door from etcd. Checked on the wire: every node's HTTPS handshake, validated
against the CA's root, and a renewal on an operator's request."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.harness.agents import AgentNode, RadioCluster
from tests.harness.clients import Https, open_connection
from tests.harness.pebble import Pebble
from tests.harness.waiting import wait_for
from tests.integration.conftest import ZONE

pytestmark = pytest.mark.integration
ISSUE_TIMEOUT = 60.0  # pebble validates at once (PEBBLE_VA_NOSLEEP); the agents' loop is 1 s


def served(node: AgentNode, context: ssl.SSLContext) -> tuple[str, tuple[str, ...]]:
    """The serial and DNS names of the certificate `node` serves as its own name, checked
    by `context` (OSError or ssl.SSLError if it serves none that passes)."""
    url = urlparse(node.https_url)
    assert url.hostname is not None
    assert url.port is not None
    with (
        socket.create_connection((node.listen_address, url.port), timeout=3) as raw,
        context.wrap_socket(raw, server_hostname=url.hostname) as tls,
    ):
        peer = tls.getpeercert()
    assert peer is not None
    alternative_names: Any = peer.get("subjectAltName", ())
    names = tuple(str(value) for kind, value in alternative_names if kind == "DNS")
    return str(peer["serialNumber"]), names


def every_node_serves(
    cluster: RadioCluster, context: ssl.SSLContext
) -> dict[str, tuple[str, tuple[str, ...]]] | None:
    try:
        return {node.name: served(node, context) for node in cluster.nodes}
    except (OSError, ssl.SSLError):
        return None


def test_the_cluster_orders_serves_and_renews_its_certificate(
    acme_cluster: tuple[RadioCluster, Pebble], tmp_path: Path
) -> None:
    cluster, pebble = acme_cluster
    acme_config: Any = cluster.nodes[0].config["acme"]
    challenge = acme_config["challenge"]
    context = ssl.create_default_context(cafile=str(pebble.issuing_root(tmp_path)))

    def explain() -> str:
        return f"{cluster.log_tails()}\npebble:\n{pebble.log_tail()}"

    first = wait_for(
        lambda: every_node_serves(cluster, context),
        timeout=ISSUE_TIMEOUT,
        what="every node serving a certificate from the CA",
        explain=explain,
    )
    assert len({serial for serial, _ in first.values()}) == 1  # one for the whole cluster
    names = set(next(iter(first.values()))[1])
    if challenge == "dns-01":  # the zone and its wildcard: later nodes need nothing new
        assert names == {ZONE, f"*.{ZONE}"}
    else:  # HTTP-01 cannot prove a wildcard: the zone and each node's own name
        assert names == {ZONE, *(f"{node.name}.{ZONE}" for node in cluster.nodes)}

    acme = cluster.store().read_state().acme
    assert acme.certificate is not None
    assert acme.certificate.ordered_by in {node.name for node in cluster.nodes}
    assert acme.failure is None
    assert acme.dns_challenges == {}  # withdrawn once the CA had validated
    assert cluster.store().read_state().acme_challenges == {}

    # Listeners' clients get the status API over it, by each node's name.
    https = Https(context, {f"{node.name}.{ZONE}": node.listen_address for node in cluster.nodes})
    for node in cluster.nodes:
        connection = open_connection(urlparse(node.https_url), 5, https)
        try:
            connection.request("GET", "/api/v1/status")
            assert connection.getresponse().status == 200
        finally:
            connection.close()

    # An operator asks for a renewal: a new certificate reaches every node, the old
    # one's handshakes having gone on meanwhile.
    cluster.store().request_renewal(time.time())
    old_serial = next(iter(first.values()))[0]

    def renewed() -> dict[str, tuple[str, tuple[str, ...]]] | None:
        now = every_node_serves(cluster, context)
        if now is None or {serial for serial, _ in now.values()} & {old_serial}:
            return None
        return now

    second = wait_for(renewed, timeout=ISSUE_TIMEOUT, what="a renewed certificate", explain=explain)
    assert len({serial for serial, _ in second.values()}) == 1
    assert cluster.store().read_state().acme.renewal_requested is None
