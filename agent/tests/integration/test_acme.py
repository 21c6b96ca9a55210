"""The cluster orders its own certificate from a real ACME CA (Debian's pebble, on
loopback): by DNS-01, answered by the agents' own DNS, and by HTTP-01, answered by every
front door from etcd. Checked on the wire: every node's HTTPS handshake, validated
against the CA's root, and a renewal on an operator's request."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from radioagent.acme.state import AcmeFailure
from tests.harness.agents import AgentNode, RadioCluster
from tests.harness.clients import Https, SourceClient, StreamRecorder, listen, open_connection
from tests.harness.media import AudioSample
from tests.harness.pebble import Pebble
from tests.harness.waiting import wait_for
from tests.integration.conftest import ZONE
from tests.integration.test_front_door_listeners import live_source
from tests.integration.test_radioctl import RADIOCTL

pytestmark = pytest.mark.integration
ISSUE_TIMEOUT = 60.0
LISTENERS = 50  # pebble validates at once (PEBBLE_VA_NOSLEEP); the agents' loop is 1 s


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


def every_node_serves_one(
    cluster: RadioCluster, context: ssl.SSLContext
) -> dict[str, tuple[str, tuple[str, ...]]] | None:
    """Every node serves the same certificate. An HTTP-01 order made before a node's
    status was in etcd leaves that node's name out; the cluster orders again once it is
    there, and for a moment the nodes serve two."""
    served_now = every_node_serves(cluster, context)
    if served_now is None or len({serial for serial, _ in served_now.values()}) != 1:
        return None
    return served_now


@pytest.mark.parametrize("acme_cluster", ["dns-01", "http-01"], indirect=True)
def test_the_cluster_orders_serves_and_renews_its_certificate(
    acme_cluster: tuple[RadioCluster, Pebble],
    tmp_path: Path,
    source_client_factory: Callable[..., SourceClient],
    long_mp3_audio: AudioSample,
) -> None:
    cluster, pebble = acme_cluster
    acme_config: Any = cluster.nodes[0].config["acme"]
    challenge = acme_config["challenge"]
    context = ssl.create_default_context(cafile=str(pebble.issuing_root(tmp_path)))

    def explain() -> str:
        return f"{cluster.log_tails()}\npebble:\n{pebble.log_tail()}"

    first = wait_for(  # one for the whole cluster
        lambda: every_node_serves_one(cluster, context),
        timeout=ISSUE_TIMEOUT,
        what="every node serving one certificate from the CA",
        explain=explain,
    )
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
    status = radioctl(cluster, "cert", "status", "--json")
    assert set(status["certificate"]["names"]) == names
    assert 0 < status["certificate"]["days_left"] <= 5 * 366  # pebble's certificates: 5 years
    # Each node says it takes HTTPS once it serves the certificate (its next status).
    wait_for(
        lambda: (
            radioctl(cluster, "cert", "status", "--json")["https_nodes"]
            == ["node1", "node2", "node3"]
        ),
        timeout=10,
        what="every node telling the cluster it serves HTTPS",
    )
    assert "PRIVATE KEY" not in json.dumps(status)

    # Listeners' clients get the status API over it, by each node's name.
    https = Https(context, {f"{node.name}.{ZONE}": node.listen_address for node in cluster.nodes})
    for node in cluster.nodes:
        connection = open_connection(urlparse(node.https_url), 5, https)
        try:
            connection.request("GET", "/api/v1/status")
            assert connection.getresponse().status == 200
        finally:
            connection.close()

    # An operator asks for a renewal while 50 listeners play over HTTPS: a new
    # certificate reaches every node, and every listener keeps receiving. How a front
    # door loads a renewal does not depend on the challenge: the 50 ride one of the two.
    live_source(cluster, source_client_factory, long_mp3_audio)
    count = LISTENERS if challenge == "dns-01" else 1
    old_serial = next(iter(first.values()))[0]
    second = renew_under_listeners(cluster, https, context, count, old_serial, explain=explain)
    assert len({serial for serial, _ in second.values()}) == 1
    assert cluster.store().read_state().acme.renewal_requested is None

    # What Prometheus sees: the expiry each node serves, the reload, the orders (HTTP-01
    # may need one more at the start: a node that registers after the first order is
    # not on that certificate).
    renewed_certificate = cluster.store().read_state().acme.certificate
    assert renewed_certificate is not None
    for node in cluster.nodes:
        expiry = node.metric("radio_tls_certificate_expiry_timestamp_seconds", node=node.name)
        assert expiry == renewed_certificate.not_after
        assert (node.metric("radio_tls_certificate_reloads_total", node=node.name) or 0) >= 1
    issued = sum(n.metric("radio_acme_orders_total", result="issued") or 0 for n in cluster.nodes)
    assert issued == 2 if challenge == "dns-01" else issued >= 2

    # The key is in etcd and in each node's file, and nowhere an operator or a scraper
    # reads: not in any node's log, status API, status page or metrics.
    key_lines = renewed_certificate.key_pem.strip().splitlines()[1:-1]
    assert len(key_lines) >= 2
    for node in cluster.nodes:
        for what, text in [
            ("log", node.log_tail(1_000_000)),
            *(
                (path, listen(node.front_door_url + path, 1 << 22, timeout=5).body.decode())
                for path in ("/api/v1/status", "/status", "/metrics")
            ),
        ]:
            assert "PRIVATE KEY" not in text, f"{node.name}'s {what}"
            assert not any(line in text for line in key_lines), f"{node.name}'s {what}"


def renew_under_listeners(
    cluster: RadioCluster,
    https: Https,
    context: ssl.SSLContext,
    count: int,
    old_serial: str,
    *,
    explain: Callable[[], str],
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """`radioctl cert renew` while `count` listeners play over HTTPS: what every node
    serves once none serves `old_serial`; every listener still receiving after it."""
    listeners = [
        StreamRecorder(
            f"{cluster.nodes[index % 3].https_url}/_stream/live.mp3", max_seconds=90, https=https
        ).start()
        for index in range(count)
    ]
    try:
        wait_for(
            lambda: all(len(listener.body) > 16 * 1024 for listener in listeners),
            timeout=30,
            what="the listeners over HTTPS",
        )
        assert "renewal requested" in radioctl_text(cluster, "cert", "renew")

        def renewed() -> dict[str, tuple[str, tuple[str, ...]]] | None:
            now = every_node_serves(cluster, context)
            if now is None or {serial for serial, _ in now.values()} & {old_serial}:
                return None
            return now

        second = wait_for(
            renewed, timeout=ISSUE_TIMEOUT, what="a renewed certificate", explain=explain
        )
        after_renewal = {listener: len(listener.body) + 16 * 1024 for listener in listeners}
        wait_for(
            lambda: all(len(one.body) > past for one, past in after_renewal.items()),
            timeout=15,
            what="every listener still receiving after the renewal",
            explain=lambda: "; ".join(
                f"{one.url}: {len(one.body)} bytes, error {one.error!r}" for one in listeners
            ),
        )
        assert all(listener.connected and listener.error is None for listener in listeners)
        return second
    finally:
        for listener in listeners:
            listener.stop()


@pytest.mark.parametrize("acme_cluster", ["unreachable"], indirect=True)
def test_an_order_the_ca_cannot_validate_is_recorded_retried_later_and_opens_nothing(
    acme_cluster: tuple[RadioCluster, Pebble],
) -> None:
    cluster, pebble = acme_cluster

    def failed() -> AcmeFailure | None:
        return cluster.store().read_state().acme.failure

    first = wait_for(failed, timeout=ISSUE_TIMEOUT, what="a failed order", explain=pebble.log_tail)
    assert "the CA could not validate" in first.error
    assert first.retry_at == pytest.approx(first.at + 3, abs=0.01)  # acme.retry_seconds
    text = radioctl_text(cluster, "cert", "status")
    assert "certificate: none yet" in text
    assert "last failure: " in text
    assert "nodes with HTTPS: none" in text

    # Tried again only after the wait, by whichever node wins the claim then.
    def failed_again() -> AcmeFailure | None:
        now = failed()
        return now if now is not None and now.at > first.at else None

    second = wait_for(failed_again, timeout=ISSUE_TIMEOUT, what="a second failed order")
    assert second.at >= first.retry_at
    failed_orders = [n.metric("radio_acme_orders_total", result="failed") for n in cluster.nodes]
    assert sum(value or 0 for value in failed_orders) >= 2
    state = cluster.store().read_state()
    assert state.acme.certificate is None
    assert state.acme_challenges == {}  # withdrawn after each failure
    for node in cluster.nodes:  # no certificate: no HTTPS port opened
        with pytest.raises(ConnectionRefusedError):
            served(node, ssl.create_default_context())
        assert node.is_running()


def radioctl_text(cluster: RadioCluster, *arguments: str) -> str:
    result = subprocess.run(
        [RADIOCTL, "--config", str(cluster.nodes[0].config_path), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def radioctl(cluster: RadioCluster, *arguments: str) -> Any:
    return json.loads(radioctl_text(cluster, *arguments))
