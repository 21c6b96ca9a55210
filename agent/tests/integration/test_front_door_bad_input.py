"""Bad input on the public ports gets a clear refusal, and the agent keeps serving others."""

from __future__ import annotations

import base64
import contextlib
import http.client
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.agents import (
    FRONT_DOOR_HEADER_TIMEOUT,
    AgentNode,
    RadioCluster,
    start_radio_cluster,
)
from tests.harness.clients import listen
from tests.harness.ports import LOOPBACK
from tests.harness.waiting import wait_for

from .conftest import require_root

pytestmark = pytest.mark.integration

PASSWORD = "dj-secret"


@pytest.fixture(scope="module")
def radio_cluster(holding_cache_dir: Path) -> Iterator[RadioCluster]:
    """One cluster for the module: no test here changes what the others rely on (each
    refusal changes nothing, which is the point), and starting one takes longer than
    most tests here."""
    require_root()
    with contextlib.ExitStack() as stack:  # stops what started, in reverse, however it ends
        cluster = start_radio_cluster(stack, holding_cache_dir)
        cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
        cluster.nodes[1].wait_front_door_serving("/live.mp3")
        yield cluster


@pytest.fixture
def node(radio_cluster: RadioCluster) -> Iterator[AgentNode]:
    entry = radio_cluster.nodes[1]
    yield entry
    assert healthy(entry)


def healthy(node: AgentNode) -> bool:
    return listen(f"{node.front_door_url}/health", 100, timeout=3).status == 200


def exchange(node: AgentNode, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data`, then read until the agent closes the connection."""
    with socket.create_connection((LOOPBACK, node.front_door_port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        return received


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer.split(b" ", 2)[1])


# Every HTTP/1.1 case has its Host, so that each is refused for its own fault.
H = b"Host: radio.example.org\r\n"

BAD_REQUESTS = [
    (b"GET /live.mp3\r\n\r\n", 400),  # no version
    (b"GET  /live.mp3 HTTP/1.1\r\n" + H + b"\r\n", 400),  # two spaces
    (b"get /live.mp3 HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET live.mp3 HTTP/1.1\r\n" + H + b"\r\n", 400),  # not origin-form
    (b"GET /live.mp3 HTTP/2.0\r\n" + H + b"\r\n", 505),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    (b"GET /live.mp3 HTTP/1.1\r\n" + H + b"No colon here\r\n\r\n", 400),
    (b"GET /live.mp3 HTTP/1.1\r\n" + H + b"X: a\r\n folded\r\n\r\n", 400),
    (b"GET /live.mp3 HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400),
    (b"GET /live.mp3 HTTP/1.1\r\nHost : radio.example.org\r\n\r\n", 400),  # space, colon
    (b"GET /live.mp3 HTTP/1.1\r\n" + H + H + b"\r\n", 400),  # two Hosts
    (b"GET /../../etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET /live.mp3%00 HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET /%ff%fe HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"BREW /live.mp3 HTTP/1.1\r\n" + H + b"\r\n", 501),
    (b"POST /live.mp3 HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n", 405),
    (b"DELETE /live.mp3 HTTP/1.1\r\n" + H + b"\r\n", 405),
    (b"GET /live.mp3 HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello", 400),
    (b"GET /live.mp3 HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (
        b"PUT /live.mp3 HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400,
    ),
    (b"PUT /live.mp3 HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"PUT /live.mp3 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET /nothing.mp3 HTTP/1.1\r\n" + H + b"\r\n", 404),
    (b"GET /_stream/nothing.mp3 HTTP/1.1\r\n" + H + b"\r\n", 404),
    (b"GET /_live/live.mp3 HTTP/1.1\r\n" + H + b"\r\n", 404),  # internal mounts are not public
    (b"SOURCE /nothing.mp3 HTTP/1.0\r\n\r\n", 404),
]


def test_malformed_or_refused_requests_get_a_status_and_a_reason(node: AgentNode) -> None:
    """One cluster for every case (each would otherwise start its own)."""
    for request_bytes, status in BAD_REQUESTS:
        answer = exchange(node, request_bytes)
        assert status_of(answer) == status, request_bytes
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"Connection: close" in head, request_bytes
        assert body.strip(), f"the refusal of {request_bytes!r} says why"


def source_head(*fields: bytes) -> bytes:
    """A PUT source for live.mp3 with the right password, as ffmpeg sends it, plus `fields`."""
    credentials = base64.b64encode(f"source:{PASSWORD}".encode())
    return (
        b"PUT /live.mp3 HTTP/1.1\r\nAuthorization: Basic " + credentials + b"\r\n"
        b"Content-Type: audio/mpeg\r\nExpect: 100-continue\r\n" + b"".join(fields) + b"\r\n"
    )


def source_answer(node: AgentNode, head: bytes, timeout: float = 5.0) -> bytes:
    """Send a source's head; read until the agent closes, or up to the leader's 100
    Continue (then it waits for audio)."""
    with socket.create_connection((LOOPBACK, node.front_door_port), timeout=timeout) as sock:
        sock.sendall(head)
        received = b""
        while not (received.startswith(b"HTTP/1.1 100 ") and b"\r\n\r\n" in received):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def assert_refused_and_not_piped(
    radio_cluster: RadioCluster, node: AgentNode, head: bytes, reason: bytes
) -> None:
    leader = radio_cluster.node(radio_cluster.wait_leader())
    wait_for(
        lambda: "/_live/live.mp3" not in leader.icecast.all_sources(),
        timeout=5,
        what="no source on the leader (another test's has left)",
    )
    connections = node.metric("radio_source_connections_total")
    answer = source_answer(node, head)
    assert status_of(answer) == 400, answer
    assert reason in answer.partition(b"\r\n\r\n")[2], answer
    assert "/_live/live.mp3" not in leader.icecast.all_sources()
    assert node.metric("radio_source_connections_total") == connections


def test_a_source_with_differing_content_lengths_is_refused_and_not_piped(
    radio_cluster: RadioCluster, node: AgentNode
) -> None:
    """RFC 9112 section 6.3. Before, the last Content-Length won while Icecast, behind,
    might read the first: two readers framing one request differently."""
    head = source_head(
        b"Host: radio.example.org\r\n", b"Content-Length: 0\r\n", b"Content-Length: 5\r\n"
    )
    assert_refused_and_not_piped(radio_cluster, node, head, b"Content-Length")
    # With one length it reaches the leader's Icecast (its 100 Continue): the refusal was
    # for the lengths.
    sane = source_answer(node, source_head(b"Host: radio.example.org\r\n"))
    assert status_of(sane) == 100, sane


def test_an_http_1_1_source_without_host_is_refused_and_not_piped(
    radio_cluster: RadioCluster, node: AgentNode
) -> None:
    """RFC 9112 section 3.2 (a SOURCE without Host stays accepted: legacy clients)."""
    assert_refused_and_not_piped(radio_cluster, node, source_head(), b"Host")


def test_oversized_heads_are_refused(node: AgentNode) -> None:
    huge_header = b"GET /live.mp3 HTTP/1.1\r\nX-Filler: " + b"a" * 20000 + b"\r\n\r\n"
    assert status_of(exchange(node, huge_header)) == 431
    many_headers = b"GET /live.mp3 HTTP/1.1\r\n" + b"X-A: b\r\n" * 100 + b"\r\n"
    assert status_of(exchange(node, many_headers)) == 431


def test_bytes_that_are_not_http_are_refused_at_once(node: AgentNode) -> None:
    tls_client_hello = bytes.fromhex("16030100a5010000a10303") + bytes(range(32)) + b"\r\n"
    started = time.monotonic()
    assert status_of(exchange(node, tls_client_hello)) == 400
    assert time.monotonic() - started < FRONT_DOOR_HEADER_TIMEOUT  # not left to time out


def test_a_client_sending_its_head_one_byte_at_a_time_is_cut_off(node: AgentNode) -> None:
    request = b"GET /live.mp3 HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\n\r\n"
    with socket.create_connection((LOOPBACK, node.front_door_port), timeout=5) as sock:
        started = time.monotonic()
        for byte in request:
            # One byte per half second: the slow client's pace, not a wait for a condition.
            readable, _, _ = select.select([sock], [], [], 0.5)
            if readable:
                break
            sock.sendall(bytes([byte]))
        answer = sock.recv(4096)
        elapsed = time.monotonic() - started
    assert status_of(answer) == 408
    assert elapsed < FRONT_DOOR_HEADER_TIMEOUT + 1


def test_a_keep_alive_connection_is_closed_a_head_timeout_after_its_last_request(
    node: AgentNode,
) -> None:
    """Each request moves the idle deadline: requests 0.6 of the timeout apart keep the
    connection for longer than one timeout, and it closes one timeout after the last."""
    connection = http.client.HTTPConnection(LOOPBACK, node.front_door_port, timeout=5)
    try:
        connection.connect()
        sock = connection.sock
        for _ in range(3):
            # The client's pace between requests, not a wait for a condition.
            readable, _, _ = select.select([sock], [], [], FRONT_DOOR_HEADER_TIMEOUT * 0.6)
            assert not readable, "the connection was closed before its deadline"
            connection.request("GET", "/health")
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200
            assert connection.sock is sock  # the same connection, kept alive
        last_request = time.monotonic()
        readable, _, _ = select.select([sock], [], [], FRONT_DOOR_HEADER_TIMEOUT + 2)
        closed_after = time.monotonic() - last_request
        assert readable, "the idle connection was never closed"
        assert sock.recv(1) == b""
    finally:
        connection.close()
    assert FRONT_DOOR_HEADER_TIMEOUT * 0.9 < closed_after < FRONT_DOOR_HEADER_TIMEOUT + 1


def test_many_idle_connections_do_not_stop_the_front_door(node: AgentNode) -> None:
    idle = [socket.create_connection((LOOPBACK, node.front_door_port)) for _ in range(300)]
    try:
        assert healthy(node)
        assert listen(f"{node.front_door_url}/live.mp3", 1024, follow_redirects=True).status == 200

        def all_closed_by_the_agent() -> bool:
            for sock in idle:
                sock.settimeout(0.01)
                try:
                    if sock.recv(1) != b"":
                        return False
                except TimeoutError:
                    return False
                except OSError:
                    continue
            return True

        wait_for(
            all_closed_by_the_agent,
            timeout=FRONT_DOOR_HEADER_TIMEOUT + 5,
            what="the idle connections to be closed after the head timeout",
        )
    finally:
        for sock in idle:
            sock.close()


request_lines = st.builds(
    lambda method, path, version, headers, tail: (
        f"{method} {path} {version}\r\n".encode("latin-1", "replace")
        + b"".join(headers)
        + b"\r\n"
        + tail
    ),
    st.sampled_from(["GET", "HEAD", "SOURCE", "PUT", "OPTIONS", "X", "", "G\x00T"]),
    st.one_of(
        st.sampled_from(["/", "/live.mp3", "/_stream/live.mp3", "/live.mp3.m3u", "/health"]),
        st.text(min_size=0, max_size=40),
    ),
    st.sampled_from(["HTTP/1.0", "HTTP/1.1", "HTTP/9", ""]),
    st.lists(st.binary(max_size=60).map(lambda value: value + b"\r\n"), max_size=5),
    st.binary(max_size=100),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.one_of(request_lines, st.binary(min_size=1, max_size=300)))
def test_fuzzed_requests_get_an_answer_or_a_close_and_nothing_breaks(
    node: AgentNode, data: bytes
) -> None:
    with socket.create_connection((LOOPBACK, node.front_door_port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the client is done: the agent must not wait for more
        sock.settimeout(FRONT_DOOR_HEADER_TIMEOUT + 3)
        try:
            answer = sock.recv(64)
        except ConnectionResetError:
            answer = b""
    # HTTP/1.0 when a source's request reached the leader's Icecast (its 401).
    assert answer == b"" or answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), answer
