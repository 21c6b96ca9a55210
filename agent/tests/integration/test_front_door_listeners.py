"""Listeners through the front door: redirects by policy, clients that do not follow
redirects, predictive spreading, ICY metadata, Ogg streams, playlists and the status page."""

from __future__ import annotations

import contextlib
import functools
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from radioagent.settings import ClusterSettings
from tests.harness.agents import AgentNode, RadioCluster, icecast_settings_for_agents
from tests.harness.audio import analyse_ogg
from tests.harness.clients import (
    SourceClient,
    StreamRecorder,
    connect_and_stream,
    is_slice_of,
    listen,
)
from tests.harness.etcd import EtcdCluster
from tests.harness.icecast import IcecastServer
from tests.harness.media import AudioSample
from tests.harness.ports import LOOPBACK
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

PASSWORD = "dj-secret"


def live_source(
    cluster: RadioCluster,
    make: Callable[..., SourceClient],
    audio: AudioSample,
    mount: str = "live.mp3",
    codec: str = "mp3",
) -> None:
    """Create `mount`, stream `audio` into it through a node's front door, and wait until
    every node plays it."""
    cluster.store().create_mount(
        {"name": mount, "source_password": PASSWORD, "format": {"codec": codec}}
    )
    cluster.wait_leader()
    for node in cluster.nodes:
        node.wait_serving(f"/{mount}")
    source = cluster.nodes[0].front_door_source(
        make, f"/{mount}", PASSWORD, content_type=audio.content_type
    )
    connect_and_stream(source, audio)
    for node in cluster.nodes:
        wait_for(
            functools.partial(node.plays_source_audio, f"/{mount}", audio.data),
            timeout=10,
            what=f"the source on {node.name}",
        )


def port_of(url: str) -> int:
    return urlparse(url).port or 80


def node_by_port(cluster: RadioCluster) -> dict[int, str]:
    return {node.front_door_port: node.name for node in cluster.nodes}


class HeldListeners:
    """Listeners on raw sockets that stay connected until closed; one thread reads them
    all (a listener that stops reading is cut off by the front door, as it should be)."""

    def __init__(self, max_seconds: float = 120.0) -> None:
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(max_seconds,), daemon=True)
        self._reader.start()

    def _read(self, max_seconds: float) -> None:
        deadline = time.monotonic() + max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            sockets = [connection for connection in list(self.sockets) if connection.fileno() >= 0]
            if not sockets:
                self._stop.wait(0.05)  # nothing to read yet; re-check the list
                continue
            readable, _, _ = select.select(sockets, [], [], 0.1)
            for connection in readable:
                with contextlib.suppress(OSError):
                    connection.recv(65536)

    def open(self, url: str, user_agent: str = "held-listener") -> int:
        """GET `url`, following redirects; the final status (the socket stays open on 200)."""
        for _ in range(3):
            parsed = urlparse(url)
            connection = socket.create_connection((parsed.hostname, parsed.port), timeout=5)
            connection.sendall(
                f"GET {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
                f"User-Agent: {user_agent}\r\n\r\n".encode()
            )
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                head += chunk
            status = int(head.split(b" ", 2)[1])
            if status != 302:
                if status == 200:
                    self.sockets.append(connection)
                else:
                    connection.close()
                return status
            connection.close()
            location = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"location:")
            )
            url = location.decode()
        raise AssertionError("too many redirects")

    def close(self) -> None:
        self._stop.set()
        self._reader.join(timeout=5)
        for connection in self.sockets:
            connection.close()
        self.sockets.clear()


@pytest.fixture
def held() -> Iterator[HeldListeners]:
    listeners = HeldListeners()
    yield listeners
    listeners.close()


def test_a_listener_that_follows_redirects_gets_audio_from_another_node(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    live_source(radio_cluster, source_client_factory, mp3_audio)
    drained = radio_cluster.nodes[0]
    radio_cluster.drain(drained.name)
    ports = node_by_port(radio_cluster)

    def redirected_elsewhere() -> bool:
        received = listen(f"{drained.front_door_url}/live.mp3", 16384, follow_redirects=True)
        assert received.status == 200, received
        return len(received.redirects) == 1 and is_slice_of(received.body[-4096:], mp3_audio.data)

    wait_for(redirected_elsewhere, timeout=10, what="a redirect away from the drained node")
    received = listen(f"{drained.front_door_url}/live.mp3", 4096, follow_redirects=True)
    target = received.redirects[0]
    assert ports[port_of(target)] != drained.name
    assert urlparse(target).path == "/_stream/live.mp3"
    assert received.headers["content-type"] == "audio/mpeg"
    assert received.headers["access-control-allow-origin"] == "*"
    assert "transfer-encoding" not in received.headers


def test_clients_that_do_not_follow_redirects_are_served_without_one(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    live_source(radio_cluster, source_client_factory, mp3_audio)
    radio_cluster.set_settings(
        ClusterSettings(policy="random", no_redirect_user_agents=("OldPlayer",))
    )
    node = radio_cluster.nodes[0]
    wait_for(
        lambda: node.head_requests("/live.mp3", 30, "OldPlayer/2.0 (car radio)").keys() == {"200"},
        timeout=5,
        what="the no-redirect list to reach the front door",
    )
    others = node.head_requests("/live.mp3", 60, "Mozilla/5.0")
    assert sum(count for key, count in others.items() if key != "200") > 10, others
    received = listen(
        f"{node.front_door_url}/live.mp3", 16384, headers={"User-Agent": "OldPlayer/2.0"}
    )
    assert received.status == 200
    assert is_slice_of(received.body[-4096:], mp3_audio.data)

    radio_cluster.set_settings(ClusterSettings(policy="random", proxy_everything=True))
    wait_for(
        lambda: node.head_requests("/live.mp3", 30, "Mozilla/5.0").keys() == {"200"},
        timeout=5,
        what="proxy-everything to reach the front door",
    )


@pytest.fixture
def limited_cluster(
    etcd_cluster: EtcdCluster,
    icecast_factory: Callable[..., IcecastServer],
    holding_cache_dir: Path,
    request: pytest.FixtureRequest,
) -> Iterator[RadioCluster]:
    icecasts = [icecast_factory(icecast_settings_for_agents()) for _ in range(3)]
    cluster = RadioCluster(
        etcd_cluster,
        icecasts,
        holding_cache_dir=holding_cache_dir,
        limits={"max_listeners": request.param},
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def wait_listeners(seen_by: AgentNode, expected: dict[str, int]) -> None:
    """Until `seen_by`'s agent has read these listener counts from the nodes' reports."""

    def counts() -> dict[str, int]:
        document = json.loads(listen(f"{seen_by.front_door_url}/api/v1/status", 1 << 20).body)
        return {name: sum(node["listeners"].values()) for name, node in document["nodes"].items()}

    wait_for(lambda: counts() == expected, timeout=10, what=f"node reports of {expected}")


@pytest.mark.parametrize("limited_cluster", [40], indirect=True)
def test_weighted_redirects_follow_the_free_capacity_of_each_node(
    limited_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
    held: HeldListeners,
) -> None:
    """Loads 0, 10 and 30 of 40: listeners_score gives 1, 0.75 and 0.25, so 1,000
    redirects split 50 % / 37.5 % / 12.5 %."""
    cluster = limited_cluster
    live_source(cluster, source_client_factory, mp3_audio)
    cluster.set_settings(ClusterSettings(policy="listeners_score,weighted"))
    node1, node2, node3 = cluster.nodes
    for node, count in ((node2, 10), (node3, 30)):
        for _ in range(count):
            assert held.open(f"{node.front_door_url}/_stream/live.mp3") == 200
    wait_listeners(node1, {"node1": 0, "node2": 10, "node3": 30})
    outcomes = node1.head_requests("/live.mp3", 1000, "Mozilla/5.0")
    shares = {
        "node1": outcomes["200"] / 1000,
        "node2": outcomes[str(node2.front_door_port)] / 1000,
        "node3": outcomes[str(node3.front_door_port)] / 1000,
    }
    assert abs(shares["node1"] - 0.5) < 0.05, shares
    assert abs(shares["node2"] - 0.375) < 0.05, shares
    assert abs(shares["node3"] - 0.125) < 0.04, shares


@pytest.mark.parametrize("limited_cluster", [10], indirect=True)
def test_a_burst_inside_one_report_interval_respects_listener_limits(
    limited_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
    held: HeldListeners,
) -> None:
    """30 listeners arrive at one node faster than nodes report. `best` alone would send
    them all to the emptiest node (which refuses past 10); counting the ones already sent
    spreads them 10/10/10, and the 31st is told to retry."""
    cluster = limited_cluster
    live_source(cluster, source_client_factory, mp3_audio)
    cluster.set_settings(ClusterSettings(policy="listeners_available,listeners_score,best"))
    entry = cluster.nodes[0]
    wait_for(
        lambda: entry.head_requests("/live.mp3", 3, "probe").keys() == {"200"},
        timeout=5,
        what="the best policy (node1 wins ties by name)",
    )
    statuses = [held.open(f"{entry.front_door_url}/live.mp3") for _ in range(30)]
    assert statuses == [200] * 30
    refused = listen(f"{entry.front_door_url}/live.mp3", 0)
    assert refused.status == 503
    assert refused.headers["retry-after"].isdigit()
    wait_listeners(entry, {"node1": 10, "node2": 10, "node3": 10})


def strip_icy(body: bytes, metaint: int) -> tuple[bytes, list[bytes]]:
    """Audio and metadata blocks of an ICY stream read from its first byte; AssertionError
    if a length byte is not where it must be (a listener started out of step)."""
    audio, blocks, position = bytearray(), [], 0
    while position + metaint < len(body):
        audio += body[position : position + metaint]
        length = body[position + metaint] * 16
        block = body[position + metaint + 1 : position + metaint + 1 + length]
        assert length == 0 or block.startswith(b"StreamTitle="), (position, block[:40])
        blocks.append(block)
        position += metaint + 1 + length
    return bytes(audio), blocks


def test_icy_metadata_passes_through_in_step(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    live_source(radio_cluster, source_client_factory, mp3_audio)
    node = radio_cluster.nodes[2]
    url = f"{node.front_door_url}/_stream/live.mp3"
    first = listen(url, 60000, headers={"Icy-MetaData": "1"})
    # The second joins the same upstream mid-stream: it must start in step too.
    second = listen(url, 60000, headers={"Icy-MetaData": "1"})
    for received in (first, second):
        metaint = int(received.headers["icy-metaint"])
        audio, blocks = strip_icy(received.body, metaint)
        assert len(blocks) >= 2
        assert is_slice_of(audio[-8192:], mp3_audio.data)
    plain = listen(url, 8192)
    assert "icy-metaint" not in plain.headers
    assert is_slice_of(plain.body[-4096:], mp3_audio.data)


def test_an_ogg_listener_joining_mid_stream_gets_the_headers_first(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    ogg_audio: AudioSample,
) -> None:
    live_source(radio_cluster, source_client_factory, ogg_audio, "live.ogg", "vorbis")
    node = radio_cluster.nodes[1]
    url = f"{node.front_door_url}/_stream/live.ogg"
    for _ in range(2):  # the second joins an upstream already running
        received = listen(url, 60000, timeout=6)
        assert received.status == 200
        assert received.body.startswith(b"OggS")
        assert received.body[5] & 0x02, "the first page must begin a logical stream"
        report = analyse_ogg(received.body)
        assert report.problems(min_pages=5) == []
        assert report.codecs == {"vorbis"}


def test_playlists_point_at_the_cluster_name_and_the_status_page_lists_the_cluster(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    live_source(radio_cluster, source_client_factory, mp3_audio)
    node = radio_cluster.nodes[0]
    host = {"Host": "radio.example.org"}
    m3u = listen(f"{node.front_door_url}/live.mp3.m3u", 4096, headers=host)
    assert m3u.headers["content-type"] == "audio/x-mpegurl"
    lines = m3u.body.decode().splitlines()
    # The stream, then its HLS master playlist for a player to fall back on.
    assert lines.index("http://radio.example.org/live.mp3") < lines.index(
        "http://radio.example.org/live.mp3.m3u8"
    )
    pls = listen(f"{node.front_door_url}/live.mp3.pls", 4096, headers=host)
    assert "File1=http://radio.example.org/live.mp3" in pls.body.decode()
    xspf = listen(f"{node.front_door_url}/live.mp3.xspf", 4096, headers=host)
    assert "<location>http://radio.example.org/live.mp3</location>" in xspf.body.decode()
    assert listen(f"{node.front_door_url}/missing.mp3.m3u", 4096).status == 404
    page = listen(f"{node.front_door_url}/", 65536)
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.body.decode()
    for name in ("node1", "node2", "node3", "live.mp3", '<meta name="viewport"'):
        assert name in text


def test_a_listener_that_stops_reading_is_cut_off_and_the_others_keep_playing(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    """The source sends eight times faster than real time, so a listener that reads
    nothing passes the front door's per-listener bound within seconds."""
    radio_cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
    node = radio_cluster.nodes[1]
    node.wait_front_door_serving("/live.mp3")
    url = f"{node.front_door_url}/_stream/live.mp3"
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect((LOOPBACK, node.front_door_port))
    slow.sendall(b"GET /_stream/live.mp3 HTTP/1.1\r\nHost: x\r\n\r\n")
    reader = StreamRecorder(url, max_seconds=60).start()
    try:
        source = radio_cluster.nodes[0].front_door_source(
            source_client_factory, "/live.mp3", PASSWORD
        )
        assert source.connect().status == 200
        source.start_streaming(mp3_audio.data * 4, mp3_audio.bytes_per_second * 8)

        def slow_listener_dropped() -> bool:
            metrics = listen(f"{node.front_door_url}/metrics", 1 << 20).body.decode()
            return f'radio_slow_listeners_dropped_total{{node="{node.name}"}} 1.0' in metrics

        wait_for(
            slow_listener_dropped, timeout=20, what="the listener that stopped reading to be cut"
        )
        since = time.monotonic()
        wait_for(lambda: reader.bytes_since(since) > 0, timeout=5, what="bytes for the reader")
        assert reader.connected
    finally:
        reader.stop()
        slow.close()
