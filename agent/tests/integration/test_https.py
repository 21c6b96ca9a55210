"""HTTPS on every node's front door: listeners over TLS (Python's ssl, curl, openssl),
redirects and playlists that keep the scheme and send HTTPS listeners to a node's own
name, a renewed certificate loaded without dropping a listener, a foreign key refused.
Node N's front door is on 127.0.0.N, named nodeN.stream.test by a certificate for the
zone and *.zone from a test CA."""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from radioagent.frontdoor.certificate import Certificate
from radioagent.hls.id3 import read_timestamp, tag_length
from tests.harness.agents import AGENT_COMMAND, AGENT_ENVIRONMENT, AgentNode, RadioCluster
from tests.harness.audio import analyse_mp3
from tests.harness.clients import Https, SourceClient, StreamRecorder, is_slice_of, listen
from tests.harness.media import AudioSample
from tests.harness.pki import ZoneCertificate, make_dated_certificate, make_zone_certificate
from tests.harness.waiting import wait_for
from tests.integration.conftest import ZONE
from tests.integration.test_front_door_listeners import live_source

pytestmark = pytest.mark.integration


def client(cluster: RadioCluster, certificate: ZoneCertificate) -> Https:
    context = ssl.create_default_context(cafile=str(certificate.ca))
    return Https(context, {f"{node.name}.{ZONE}": node.listen_address for node in cluster.nodes})


@pytest.fixture
def live_https(
    https_cluster: RadioCluster,
    certificate: ZoneCertificate,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> Https:
    """A studio streams live.mp3 into the HTTPS cluster; a client that trusts its CA."""
    live_source(https_cluster, source_client_factory, mp3_audio)
    return client(https_cluster, certificate)


def peer_serial(node: AgentNode, https: Https) -> str:
    """The serial number of the certificate a new handshake with `node` gets."""
    name, port = node.https_url.removeprefix("https://").split(":")
    with https.context.wrap_socket(
        socket.create_connection((node.listen_address, int(port)), 5), server_hostname=name
    ) as tls:
        certificate = tls.getpeercert()
        assert certificate is not None
        return str(certificate["serialNumber"])


def test_listeners_play_over_https_and_are_sent_on_over_https(
    https_cluster: RadioCluster,
    certificate: ZoneCertificate,
    live_https: Https,
    mp3_audio: AudioSample,
) -> None:
    https = live_https
    node1, node2, _ = https_cluster.nodes
    served = listen(f"{node1.https_url}/_stream/live.mp3", 64 * 1024, https=https, timeout=15)
    assert served.status == 200
    assert is_slice_of(served.body[-16 * 1024 :], mp3_audio.data)
    assert analyse_mp3(served.body).problems(min_frames=50) == []

    https_cluster.drain("node1")  # node1 sends every listener elsewhere, by its name

    def redirected() -> str | None:
        answer = listen(f"{node1.https_url}/live.mp3", 0, https=https, timeout=5)
        return answer.headers.get("location") if answer.status == 302 else None

    location = wait_for(redirected, timeout=10, what="a redirect from the drained node")
    assert location.startswith("https://node")
    assert f".{ZONE}:" in location
    assert location.endswith("/_stream/live.mp3")
    followed = listen(location, 32 * 1024, https=https, timeout=15)
    assert followed.status == 200
    assert len(followed.body) == 32 * 1024

    playlist = listen(f"{node2.https_url}/live.mp3.m3u", 4096, https=https, headers={"Host": ZONE})
    assert f"https://{ZONE}/live.mp3".encode() in playlist.body
    plain = listen(f"{node2.front_door_url}/live.mp3.m3u", 4096, headers={"Host": ZONE})
    assert f"http://{ZONE}/live.mp3".encode() in plain.body

    name, port = node2.https_url.removeprefix("https://").split(":")
    curl = subprocess.run(
        [
            *("curl", "--silent", "--show-error", "--max-time", "5", "--output", "/dev/null"),
            *("--write-out", "%{http_code} %{ssl_verify_result}", "--range", "0-1023"),
            *(
                "--cacert",
                str(certificate.ca),
                "--resolve",
                f"{name}:{port}:{node2.listen_address}",
            ),
            f"https://{name}:{port}/api/v1/status",
        ],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert curl.stdout == "200 0", curl.stderr
    handshake = subprocess.run(
        [
            *("openssl", "s_client", "-connect", f"{node2.listen_address}:{port}"),
            *("-servername", name, "-verify_return_error", "-CAfile", str(certificate.ca)),
            *("-verify_hostname", name, "-brief"),
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert handshake.returncode == 0, handshake.stderr
    assert "Verification: OK" in handshake.stderr


def grew(listener: StreamRecorder, past: int) -> bool:
    return len(listener.body) > past


def test_a_renewed_certificate_is_loaded_without_dropping_a_listener(
    https_cluster: RadioCluster, certificate: ZoneCertificate, live_https: Https
) -> None:
    https = live_https
    node = https_cluster.nodes[1]
    listeners = [
        StreamRecorder(f"{node.https_url}/_stream/live.mp3", max_seconds=60, https=https).start()
        for _ in range(5)
    ]
    try:
        wait_for(
            lambda: all(len(listener.body) > 32 * 1024 for listener in listeners),
            timeout=15,
            what="5 listeners over HTTPS",
        )
        old = peer_serial(node, https)
        renewed = make_zone_certificate(certificate.cert.parent, ZONE, name="renewed")
        # As a renewal writes them: new files moved over the old ones.
        renewed.key.replace(certificate.key)
        renewed.cert.replace(certificate.cert)
        new = wait_for(
            lambda: (serial := peer_serial(node, https)) != old and serial,
            timeout=10,
            what="the renewed certificate on new handshakes",
        )
        assert new != old
        for listener in listeners:
            wait_for(
                functools.partial(grew, listener, len(listener.body) + 16 * 1024),
                timeout=10,
                what="the listener still receiving after the renewal",
            )
            assert listener.connected
            assert listener.error is None
    finally:
        for listener in listeners:
            listener.stop()


@pytest.mark.parametrize("case", ["foreign key", "expired", "another name", "not yet valid"])
def test_a_certificate_the_node_cannot_serve_is_refused_with_a_clear_error(
    tmp_path: Path, certificate: ZoneCertificate, case: str
) -> None:
    """Refused by --check-config and at start, before any port opens: a listener's
    handshake would otherwise be the first to find out."""
    now, day = time.time(), 86400
    directory = certificate.cert.parent
    cert_file, key_file, expected = {
        "foreign key": (
            certificate.cert,
            make_zone_certificate(directory, ZONE, name="other").key,
            "key values mismatch",
        ),
        "expired": (
            *make_dated_certificate(directory, "old", [f"*.{ZONE}"], now - 90 * day, now - day),
            "it expired at",
        ),
        "another name": (
            *make_dated_certificate(directory, "foreign", ["*.other.test"], now - day, now + day),
            f"it is for *.other.test, not for https_name node1.{ZONE}",
        ),
        "not yet valid": (
            *make_dated_certificate(directory, "early", [f"*.{ZONE}"], now + day, now + 9 * day),
            "it is valid only from",
        ),
    }[case]
    config = {
        "node": {"name": "node1", "address": "127.0.0.1"},
        "etcd": {"endpoints": ["127.0.0.1:2379"], "prefix": "/radio"},
        "icecast": {
            "port": 8001,
            "admin_password": "admin-secret",
            "source_password": "source-secret",
            "config_path": "/etc/icecast2/icecast.xml",
            "reload_command": ["systemctl", "reload", "icecast2"],
        },
        "front_door": {
            "tls_ports": [8443],
            "tls_cert_file": str(cert_file),
            "tls_key_file": str(key_file),
            "https_name": f"node1.{ZONE}",
        },
        "templates_dir": str(Path(__file__).resolve().parents[3] / "templates"),
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    for extra in (["--check-config"], []):
        result = subprocess.run(
            [*AGENT_COMMAND, "--config", str(path), *extra],
            env=AGENT_ENVIRONMENT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 2
        assert "front_door.tls_cert_file" in result.stderr
        assert expected in result.stderr.replace("KEY_VALUES_MISMATCH", "key values mismatch")
        assert "Traceback" not in result.stderr


def handshake_serial(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> str:
    """A TLS handshake between the two contexts in memory: the server certificate's serial."""
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server_side = server.wrap_bio(server_in, server_out, server_side=True)
    client_side = client.wrap_bio(client_in, client_out, server_hostname=name)
    done: set[ssl.SSLObject] = set()
    for _ in range(10):  # a TLS 1.3 handshake takes two round trips
        for side, outgoing, incoming in (
            (client_side, client_out, server_in),
            (server_side, server_out, client_in),
        ):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
                done.add(side)
            incoming.write(outgoing.read())
        if client_side in done:
            peer = client_side.getpeercert()
            assert peer is not None
            return str(peer["serialNumber"])
    raise AssertionError("no handshake after 10 exchanges")


def test_a_renewal_half_written_keeps_the_certificate_in_use(
    certificate: ZoneCertificate,
) -> None:
    """A new certificate beside the old key (a renewal that wrote the certificate first,
    or a wrong key): the reload is refused and handshakes go on with the old pair."""
    in_use = Certificate(str(certificate.cert), str(certificate.key), f"node1.{ZONE}")
    client = ssl.create_default_context(cafile=str(certificate.ca))
    before = handshake_serial(in_use.context, client, f"node1.{ZONE}")
    renewed = make_zone_certificate(certificate.cert.parent, ZONE, name="half")
    renewed.cert.replace(certificate.cert)  # the key is still the old one
    assert in_use.reload_if_changed() is False
    assert in_use.reload_failures == 1
    assert handshake_serial(in_use.context, client, f"node1.{ZONE}") == before
    renewed.key.replace(certificate.key)  # the renewal finishes
    assert in_use.reload_if_changed() is True
    assert handshake_serial(in_use.context, client, f"node1.{ZONE}") != before


def test_hls_is_served_over_https_with_uris_that_keep_the_scheme(
    https_cluster: RadioCluster, live_https: Https
) -> None:
    https = live_https
    node = https_cluster.nodes[1]
    master = listen(f"{node.https_url}/live.mp3.m3u8", 4096, https=https, timeout=5)
    assert master.status == 200
    assert master.headers["access-control-allow-origin"] == "*"
    media = master.body.decode().splitlines()[-1]
    # Relative: a player that fetched the master over HTTPS stays on HTTPS.
    assert media.startswith("hls/live.mp3/index.m3u8?session=")

    def newest_segment() -> str | None:
        answer = listen(f"{node.https_url}/{media}", 8192, https=https, timeout=5)
        uris = [line for line in answer.body.decode().splitlines() if not line.startswith("#")]
        # The first segment of a cut starts wherever the stream did; the next is whole.
        return uris[-1] if answer.status == 200 and len(uris) >= 2 else None

    uri = wait_for(newest_segment, timeout=20, what="a whole HLS segment over HTTPS")
    segment = listen(f"{node.https_url}/hls/live.mp3/{uri}", 1 << 20, https=https, timeout=5)
    assert segment.status == 200
    assert segment.headers["content-type"] == "audio/mpeg"
    assert read_timestamp(segment.body) is not None
    assert analyse_mp3(segment.body[tag_length(segment.body) :]).problems(min_frames=100) == []
