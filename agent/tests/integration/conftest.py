"""Fixtures that run real services on loopback and stop them by PID, also on failure."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.agents import RadioCluster, icecast_settings_for_agents
from tests.harness.clients import SourceClient
from tests.harness.etcd import EtcdCluster
from tests.harness.icecast import IcecastServer, IcecastSettings
from tests.harness.liquidsoap import LiquidsoapTone
from tests.harness.media import AudioSample, make_mp3, make_ogg_vorbis
from tests.harness.pebble import Pebble
from tests.harness.pki import ZoneCertificate, make_zone_certificate
from tests.harness.ports import free_port
from tests.harness.processes import ServiceDirectory

# The source password of the mounts the live_mount fixture and its tests create.
PASSWORD = "dj-secret"
# The zone of the clusters that answer DNS and serve HTTPS (zone_cluster, https_cluster):
# node N's front door is on 127.0.0.N and named nodeN.stream.test.
ZONE = "stream.test"


def require_root() -> None:
    # Services run as their own users (Icecast and Liquidsoap refuse root), which takes root.
    if os.geteuid() != 0:
        pytest.fail("the integration harness must run as root (see README)", pytrace=False)


def running_etcd(size: int) -> Iterator[EtcdCluster]:
    """A fresh etcd cluster of `size` members, stopped however the test ends."""
    require_root()
    cluster = EtcdCluster(size)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def etcd() -> Iterator[EtcdCluster]:
    """A fresh single-member etcd."""
    yield from running_etcd(1)


@pytest.fixture
def etcd_cluster() -> Iterator[EtcdCluster]:
    """A fresh 3-member etcd cluster; members can be killed, paused and restarted."""
    yield from running_etcd(3)


@pytest.fixture
def icecast_factory() -> Iterator[Callable[..., IcecastServer]]:
    """Start Icecast servers with given IcecastSettings; all stop at teardown."""
    require_root()
    servers: list[IcecastServer] = []

    def start(settings: IcecastSettings | None = None) -> IcecastServer:
        server = IcecastServer(settings)
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def agent_icecasts() -> Iterator[list[IcecastServer]]:
    """Three Icecasts for a cluster's agents, launched side by side and not yet waited
    for: a cluster fixture asks for them before etcd, so both start together (a second
    off every cluster's start), and waits for them once etcd is up."""
    require_root()
    servers = [IcecastServer(icecast_settings_for_agents()) for _ in range(3)]
    try:
        for server in servers:
            server.launch()
        yield servers
    finally:
        for server in servers:
            server.stop()


def started(icecasts: list[IcecastServer]) -> list[IcecastServer]:
    for server in icecasts:
        server.wait_started()
    return icecasts


@pytest.fixture
def icecast(icecast_factory: Callable[..., IcecastServer]) -> IcecastServer:
    """Icecast with default settings: any mount accepts the global source password."""
    return icecast_factory()


@pytest.fixture
def liquidsoap_tone_factory() -> Iterator[Callable[..., LiquidsoapTone]]:
    """Start Liquidsoap test tones into an Icecast mount; all stop at teardown."""
    require_root()
    tones: list[LiquidsoapTone] = []

    # The options go to LiquidsoapTone as they come: the fixture is a Callable[..., ...].
    def start(icecast: IcecastServer, mount: str, **options: Any) -> LiquidsoapTone:
        tone = LiquidsoapTone(icecast, mount, **options)
        tones.append(tone)
        tone.start()
        return tone

    try:
        yield start
    finally:
        for tone in tones:
            tone.stop()


@pytest.fixture
def source_client_factory() -> Iterator[Callable[..., SourceClient]]:
    """Make SourceClients (not yet connected); all are closed at teardown."""
    clients: list[SourceClient] = []

    # The arguments go to SourceClient as they come: the fixture is a Callable[..., ...].
    def make(*args: Any, **kwargs: Any) -> SourceClient:
        client = SourceClient(*args, **kwargs)
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.stop()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def mp3_audio(media_dir: Path) -> AudioSample:
    """20 s of pink noise, MP3 128 kbps 44.1 kHz stereo, encoded by ffmpeg."""
    return make_mp3(media_dir / "noise.mp3")


@pytest.fixture(scope="session")
def long_mp3_audio(media_dir: Path) -> AudioSample:
    """120 s of the same kind: a studio that outlasts a takeover (ttl, then Liquidsoap's
    start-up and buffering), which a 20 s file does not."""
    return make_mp3(media_dir / "long-noise.mp3", seconds=120.0)


@pytest.fixture(scope="session")
def ogg_audio(media_dir: Path) -> AudioSample:
    """20 s of pink noise, Ogg Vorbis 44.1 kHz stereo, encoded by ffmpeg."""
    return make_ogg_vorbis(media_dir / "noise.ogg")


@pytest.fixture(scope="session")
def holding_cache_dir() -> Iterator[Path]:
    """Shared by every test cluster: Liquidsoap encodes each format's silence once."""
    directory = ServiceDirectory("holding-cache")
    try:
        yield directory.path
    finally:
        directory.remove()


@pytest.fixture
def radio_cluster(
    agent_icecasts: list[IcecastServer], etcd_cluster: EtcdCluster, holding_cache_dir: Path
) -> Iterator[RadioCluster]:
    """Three radio-agent processes, each with its own Icecast and etcd member; one leads."""
    cluster = RadioCluster(
        etcd_cluster, started(agent_icecasts), holding_cache_dir=holding_cache_dir
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def named_cluster(
    etcd: EtcdCluster,
    icecasts: list[IcecastServer],
    holding_cache_dir: Path,
    certificate: ZoneCertificate | None = None,
) -> Iterator[RadioCluster]:
    cluster = RadioCluster(
        etcd,
        started(icecasts),
        holding_cache_dir=holding_cache_dir,
        zone=ZONE,
        certificate=certificate,
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def zone_cluster(
    agent_icecasts: list[IcecastServer], etcd_cluster: EtcdCluster, holding_cache_dir: Path
) -> Iterator[RadioCluster]:
    """Three agents that answer ZONE over DNS, each on its own DNS port."""
    yield from named_cluster(etcd_cluster, agent_icecasts, holding_cache_dir)


@pytest.fixture
def certificate(tmp_path: Path) -> ZoneCertificate:
    """A test CA's certificate for ZONE and *.ZONE."""
    directory = tmp_path / "pki"
    directory.mkdir()
    return make_zone_certificate(directory, ZONE)


@pytest.fixture
def https_cluster(
    agent_icecasts: list[IcecastServer],
    etcd_cluster: EtcdCluster,
    holding_cache_dir: Path,
    certificate: ZoneCertificate,
) -> Iterator[RadioCluster]:
    """zone_cluster's three agents, each also serving HTTPS as nodeN.ZONE."""
    yield from named_cluster(etcd_cluster, agent_icecasts, holding_cache_dir, certificate)


@pytest.fixture
def live_mount(radio_cluster: RadioCluster) -> str:
    """/live.mp3 with source password PASSWORD, served on every node."""
    radio_cluster.create_served_mount({"name": "live.mp3", "source_password": PASSWORD})
    return "live.mp3"


@pytest.fixture
def acme_cluster(
    request: pytest.FixtureRequest,
    agent_icecasts: list[IcecastServer],
    etcd_cluster: EtcdCluster,
    holding_cache_dir: Path,
) -> Iterator[tuple[RadioCluster, Pebble]]:
    """Three agents of ZONE that order their certificate from pebble, which resolves
    names with node1's DNS. The (indirect) parameter names the challenge; "unreachable"
    is HTTP-01 with pebble asking a port where no front door listens."""
    unreachable = request.param == "unreachable"
    challenge = "http-01" if unreachable else request.param
    acme: dict[str, Any] = {"challenge": challenge, "retry_seconds": 3}
    cluster = RadioCluster(
        etcd_cluster,
        started(agent_icecasts),
        holding_cache_dir=holding_cache_dir,
        zone=ZONE,
        acme=acme,
    )
    node1 = cluster.nodes[0]
    http_port = free_port() if unreachable else node1.front_door_port
    pebble = Pebble(f"{node1.listen_address}:{node1.dns_port}", http_port)
    try:
        pebble.start()
        acme.update(directory_url=pebble.directory_url, ca_file=str(pebble.ca_file))
        cluster.start()
        yield cluster, pebble
    finally:
        cluster.stop()
        pebble.stop()
