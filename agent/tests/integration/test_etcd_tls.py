"""etcd over TLS with client certificates, as the etcd role sets it up: the agent and
radioctl get in with the node's client certificate; without one, or with a certificate
of another CA, etcd refuses and radioctl says so in one line (exit 1)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import etcd3
import grpc
import pytest
import yaml
from cryptography import x509

from tests.harness.agents import RadioCluster, etcd_tls_config, icecast_settings_for_agents
from tests.harness.etcd import EtcdCluster
from tests.harness.icecast import IcecastServer
from tests.harness.pki import TlsFiles, make_test_pki
from tests.harness.ports import LOOPBACK
from tests.harness.waiting import wait_for
from tests.integration.test_radioctl import RADIOCTL

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    directory = tmp_path / "pki"
    directory.mkdir()
    return make_test_pki(directory)


@pytest.fixture
def tls_etcd(tls_files: TlsFiles) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(1, tls=tls_files)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def radioctl_config(path: Path, etcd: EtcdCluster, prefix: str, tls: dict[str, str]) -> Path:
    endpoint = f"{LOOPBACK}:{etcd.members[0].client_port}"
    path.write_text(yaml.safe_dump({"etcd": {"endpoints": [endpoint], "prefix": prefix, **tls}}))
    return path


def radioctl(config: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RADIOCTL, "--config", str(config), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_agent_and_radioctl_use_the_nodes_client_certificate(
    tls_etcd: EtcdCluster,
    tls_files: TlsFiles,
    icecast_factory: Callable[..., IcecastServer],
    holding_cache_dir: Path,
    tmp_path: Path,
) -> None:
    cluster = RadioCluster(
        tls_etcd,
        [icecast_factory(icecast_settings_for_agents())],
        holding_cache_dir=holding_cache_dir,
    )
    try:
        cluster.start()
        assert cluster.wait_leader() == "node1"
        # Its identity's expiry, for the alerts: the certificate's own notAfter.
        not_after = x509.load_pem_x509_certificate(
            tls_files.client_cert.read_bytes()
        ).not_valid_after_utc.timestamp()
        wait_for(
            lambda: (
                cluster.nodes[0].metric("radio_etcd_certificate_expiry_timestamp_seconds")
                == not_after
            ),
            timeout=10,
            what="the client certificate's expiry in /metrics",
        )
        config = radioctl_config(
            tmp_path / "radioctl.yml", tls_etcd, cluster.prefix, etcd_tls_config(tls_files)
        )
        created = radioctl(config, "mount", "create", "live.mp3")
        assert created.returncode == 0, created.stderr
        status = radioctl(config, "status", "--json")
        assert status.returncode == 0, status.stderr
        document = json.loads(status.stdout)
        assert document["leader"]["name"] == "node1"
        assert "live.mp3" in document["mounts"]
    finally:
        cluster.stop()


def test_etcd_refuses_clients_without_the_clusters_certificate(
    tls_etcd: EtcdCluster, tls_files: TlsFiles, tmp_path: Path
) -> None:
    port = tls_etcd.members[0].client_port
    anonymous = etcd3.client(host=LOOPBACK, port=port, timeout=3, ca_cert=str(tls_files.ca))
    try:
        with pytest.raises((etcd3.exceptions.Etcd3Exception, grpc.RpcError)):
            anonymous.get("/anything")
    finally:
        anonymous.close()

    stranger = {
        "ca_file": str(tls_files.ca),
        "cert_file": str(tls_files.stranger_cert),
        "key_file": str(tls_files.stranger_key),
    }
    for name, tls in (("no-cert", {"ca_file": str(tls_files.ca)}), ("stranger", stranger)):
        config = radioctl_config(tmp_path / f"{name}.yml", tls_etcd, "/tls-test", tls)
        refused = radioctl(config, "status")
        assert refused.returncode == 1, (name, refused.stdout, refused.stderr)
        assert len(refused.stderr.strip().splitlines()) == 1, (name, refused.stderr)
        assert "Traceback" not in refused.stderr
