"""The front door's bounds per client address, its internal pages and its access log, on
the wire: one agent with its Icecast and etcd, clients connecting from loopback
addresses of their own (127.0.0.x), which the door counts as distinct clients. Only
127.0.0.1 (the harness's own probes) is unbounded and internal here."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.agents import AgentNode, RadioCluster, icecast_settings_for_agents
from tests.harness.clients import SourceClient, connect_and_stream, listen
from tests.harness.etcd import EtcdCluster
from tests.harness.icecast import IcecastServer
from tests.harness.media import AudioSample
from tests.harness.ports import LOOPBACK
from tests.harness.waiting import wait_for

from .conftest import require_root

pytestmark = pytest.mark.integration

PASSWORD = "bounds-secret"
BOUNDS = {
    "unlimited_networks": ["127.0.0.1/32"],
    "internal_networks": ["127.0.0.1/32"],
    "per_address_connections": 6,
    "per_address_listeners": 2,
    "per_address_sources": 1,
    "failed_logins": 3,
    "failed_login_window": 60,
}


@pytest.fixture(scope="module")
def node(holding_cache_dir: Path) -> Iterator[AgentNode]:
    require_root()
    with contextlib.ExitStack() as stack:
        icecast = IcecastServer(icecast_settings_for_agents())
        stack.callback(icecast.stop)
        icecast.launch()
        etcd = EtcdCluster(1)
        stack.callback(etcd.stop)
        etcd.start()
        icecast.wait_started()
        cluster = RadioCluster(etcd, [icecast], holding_cache_dir=holding_cache_dir)
        (agent,) = cluster.nodes
        door = agent.config["front_door"]
        assert isinstance(door, dict)
        door.update(BOUNDS)
        stack.callback(cluster.stop)
        cluster.start()
        cluster.wait_leader()
        for mount in ("live.mp3", "other.mp3"):
            cluster.store().create_mount({"name": mount, "source_password": PASSWORD})
            agent.wait_front_door_serving(f"/{mount}")
        yield agent


def connect_from(node: AgentNode, address: str) -> socket.socket:
    return socket.create_connection(
        (LOOPBACK, node.front_door_port), timeout=5, source_address=(address, 0)
    )


def answer_status(sock: socket.socket) -> int:
    """The status of the first response head on `sock`."""
    received = b""
    deadline = time.monotonic() + 5
    while b"\r\n" not in received and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    assert received.startswith(b"HTTP/1."), received[:80]
    return int(received.split(b" ", 2)[1])


def ask(node: AgentNode, address: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request from `address`: status, headers, body (read until the door closes)."""
    with connect_from(node, address) as sock:
        sock.sendall(request)
        received = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ", 2)[1]), {k.lower(): v for k, v in headers.items()}, body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.0\r\nUser-Agent: bounds-test/1\r\n\r\n".encode()


def start_listening(node: AgentNode, address: str, mount: str) -> socket.socket:
    """A listener that stays connected (the caller reads or closes)."""
    sock = connect_from(node, address)
    sock.sendall(get(f"/_stream/{mount}"))
    return sock


def access_lines(node: AgentNode) -> list[dict[str, object]]:
    """The access log's lines in the agent's output (stderr outside systemd)."""
    text = (node.directory.path / "agent.log").read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"time"')]


def test_idle_connections_from_one_address_are_bounded_and_others_still_served(
    node: AgentNode,
) -> None:
    with contextlib.ExitStack() as stack:
        idle = [stack.enter_context(connect_from(node, "127.0.0.2")) for _ in range(6)]
        over = stack.enter_context(connect_from(node, "127.0.0.2"))
        assert answer_status(over) == 429
        assert ask(node, "127.0.0.3", get("/health"))[0] == 200
        idle.pop().close()
        wait_for(
            lambda: ask(node, "127.0.0.2", get("/health"))[0] == 200,
            timeout=5,
            what="a connection from 127.0.0.2 once one of its idle ones closed",
        )


def test_listeners_from_one_address_are_bounded(node: AgentNode) -> None:
    with contextlib.ExitStack() as stack:
        for _ in range(2):
            listener = stack.enter_context(start_listening(node, "127.0.0.4", "live.mp3"))
            assert answer_status(listener) == 200
        status, headers, body = ask(node, "127.0.0.4", get("/_stream/live.mp3"))
        assert status == 429
        assert b"too many listeners from your address" in body
        assert headers["retry-after"].isdigit()
        other = stack.enter_context(start_listening(node, "127.0.0.5", "live.mp3"))
        assert answer_status(other) == 200


def test_wrong_credentials_never_reach_icecast_and_lock_the_address_out(
    node: AgentNode, mp3_audio: AudioSample
) -> None:
    def refused_by_icecast() -> float:
        samples = node.metrics()
        return sum(
            value
            for (name, _), value in samples.items()
            if name.startswith("radio_sources_refused")
        )

    before = refused_by_icecast()
    for _ in range(3):
        wrong = SourceClient(
            LOOPBACK,
            node.front_door_port,
            "/live.mp3",
            password="wrong",
            source_address="127.0.0.6",
        )
        assert wrong.connect().status == 401
        wrong.stop()
    right = SourceClient(
        LOOPBACK, node.front_door_port, "/live.mp3", password=PASSWORD, source_address="127.0.0.6"
    )
    locked = right.connect()
    right.stop()
    assert locked.status == 429
    assert 50 <= int(locked.headers["retry-after"]) <= 60
    # The leader's own check (Icecast asking the agent) never saw one of them.
    assert refused_by_icecast() == before
    # Another address is not locked out, and takes the mount.
    source = SourceClient(
        LOOPBACK, node.front_door_port, "/live.mp3", password=PASSWORD, source_address="127.0.0.7"
    )
    try:
        connect_and_stream(source, mp3_audio)
        second = SourceClient(
            LOOPBACK,
            node.front_door_port,
            "/other.mp3",
            password=PASSWORD,
            source_address="127.0.0.7",
        )
        assert second.connect().status == 429  # one source per address here
        second.stop()
    finally:
        source.stop()


def test_metrics_and_node_addresses_are_for_internal_networks_only(node: AgentNode) -> None:
    status, _, body = ask(node, "127.0.0.8", get("/metrics"))
    assert status == 403
    assert b"radio_" not in body
    assert listen(f"{node.front_door_url}/metrics", 1 << 20, timeout=3).status == 200  # internal
    status, headers, body = ask(node, "127.0.0.8", get("/api/v1/status"))
    public = json.loads(body)["nodes"][node.name]
    assert status == 200
    assert headers["access-control-allow-origin"] == "*"  # web players read the API
    for page in ("/health", "/", "/metrics"):
        assert "access-control-allow-origin" not in ask(node, "127.0.0.8", get(page))[1]
    assert "address" not in public
    assert "icecast_port" not in public
    internal = json.loads(listen(f"{node.front_door_url}/api/v1/status", 1 << 20, timeout=3).body)
    assert internal["nodes"][node.name]["address"] == LOOPBACK


def test_the_access_log_has_a_json_line_per_listener_and_source(
    node: AgentNode, mp3_audio: AudioSample
) -> None:
    source = SourceClient(
        LOOPBACK, node.front_door_port, "/other.mp3", password=PASSWORD, source_address="127.0.0.9"
    )
    try:
        connect_and_stream(source, mp3_audio)
        with start_listening(node, "127.0.0.10", "other.mp3") as listener:
            assert answer_status(listener) == 200
            received = 0
            while received < 32768:
                received += len(listener.recv(65536))
        wait_for(
            lambda: any(line["client"] == "127.0.0.10" for line in access_lines(node)),
            timeout=5,
            what="the listener's line in the access log",
        )
    finally:
        source.stop()
    wait_for(
        lambda: any(line["client"] == "127.0.0.9" for line in access_lines(node)),
        timeout=5,
        what="the source's line in the access log",
    )
    lines = access_lines(node)
    (heard,) = [line for line in lines if line["client"] == "127.0.0.10"]
    assert heard["kind"] == "listener"
    assert heard["method"] == "GET"
    assert heard["mount"] == "/_stream/other.mp3"
    assert heard["status"] == 200
    assert isinstance(heard["bytes"], int)
    assert heard["bytes"] >= 32768
    assert heard["user_agent"] == "bounds-test/1"
    (streamed,) = [line for line in lines if line["client"] == "127.0.0.9"]
    assert streamed["kind"] == "source"
    assert streamed["method"] == "SOURCE"
    assert streamed["status"] == 200
    assert isinstance(streamed["bytes"], int)
    assert 0 < streamed["bytes"] <= source.bytes_sent
    assert streamed["user_agent"] == "radio-test-source/1"

    wrong = SourceClient(
        LOOPBACK, node.front_door_port, "/other.mp3", password="not-it", source_address="127.0.0.11"
    )
    assert wrong.connect().status == 401
    wrong.stop()
    wait_for(
        lambda: any(line["client"] == "127.0.0.11" for line in access_lines(node)),
        timeout=5,
        what="the refused source's line in the access log",
    )
    (refused,) = [line for line in access_lines(node) if line["client"] == "127.0.0.11"]
    assert (refused["kind"], refused["status"], refused["mount"]) == ("source", 401, "/other.mp3")
    assert not any("secret" in json.dumps(line) for line in access_lines(node))
