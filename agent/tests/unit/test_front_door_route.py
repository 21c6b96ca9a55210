"""Front door routing: a request head and the agent's view in, a decision out (no sockets).

The director is the real one over fabricated node reports, with a fixed clock and seed;
what it counts (listeners sent, outcomes) is asserted where routing relies on it.
"""

from __future__ import annotations

import base64
import random
from dataclasses import replace

import pytest

from radioagent.config import Timing
from radioagent.coordination.state import ClusterState
from radioagent.frontdoor.http import RequestHead, parse_request_head
from radioagent.frontdoor.route import (
    Arrival,
    Decision,
    HlsPlaylist,
    HlsSegment,
    Page,
    PipeSource,
    Redirect,
    Refuse,
    Reply,
    Routing,
    Serve,
    route,
)
from radioagent.frontdoor.view import AgentSnapshot
from radioagent.hls.playlists import HlsSession
from radioagent.model import NodeStatus, parse_mount
from radioagent.settings import ClusterSettings
from radioagent.traffic.director import Director
from tests.unit.builders import node_status

LIVE = parse_mount({"name": "live.mp3", "source_password": "dj-secret-1", "radio": "radio-one"})
CAPPED = parse_mount({"name": "capped.mp3", "source_password": "dj-secret-2", "max_listeners": 2})
MOUNTS = {mount.name: mount for mount in (LIVE, CAPPED)}
ON_8000 = Arrival(port=8000, family=4)
ON_80 = Arrival(port=80, family=4)
ON_8000_V6 = Arrival(port=8000, family=6)


def node(name: str, **fields: object) -> NodeStatus:
    defaults: dict = {"front_door_ports": (80, 8000), "mounts": tuple(MOUNTS)}
    return node_status(name, **{**defaults, **fields})


def view_of(state: ClusterState | None, **fields: object) -> AgentSnapshot:
    """This node ("here") as the front door sees it after a loop."""
    values: dict = {
        "node_name": "here",
        "version": "test",
        "leading": False,
        "epoch": 7,
        "etcd_reachable": True,
        "state": state,
        "stats": None,
        "seconds_since_cycle": 0.5,
        "timing": Timing(),
        "cycles": 1,
        "last_cycle_seconds": 0.01,
        "etcd_errors": 0,
        "icecast_errors": 0,
        "icecast_reloads": 0,
        "unexpected_errors": 0,
        "sources_allowed": 0,
        "sources_refused": 0,
        "leader": None,
        "listener_limit": None,
        "public_address": "192.0.2.10",
        "transcoders": {},
    }
    values.update(fields)
    return AgentSnapshot(**values)


class Door:
    """A view and the routing over it, as FrontDoor.update leaves them."""

    def __init__(
        self,
        *nodes: NodeStatus,
        draining: frozenset[str] = frozenset(),
        settings: ClusterSettings | None = None,
        listeners_here: dict[str, int] | None = None,
        public_name: str | None = None,
        acme_challenges: dict[str, str] | None = None,
        **view_fields: object,
    ) -> None:
        state = ClusterState(
            revision=1,
            leader=None,
            nodes={status.name: status for status in nodes},
            mounts=MOUNTS,
            draining=draining,
            settings=settings or ClusterSettings(),
            acme_challenges=acme_challenges or {},
        )
        self.view = view_of(state, **view_fields)
        self.director = Director("here", 5, clock=lambda: 0.0, rng=random.Random(7))
        self.director.update(state.nodes, state.draining, state.settings)
        here = listeners_here or {}
        self.routing = Routing(self.director, lambda: here, public_name)

    def route(self, request: bytes, arrival: Arrival = ON_8000) -> Decision:
        return route(head(request), self.view, arrival, self.routing)


def head(request: bytes) -> RequestHead:
    """The head as a real client sends it: an HTTP/1.1 request carries Host (the parser
    refuses one without), here a name no route depends on unless the test gives its own."""
    line, _, fields = request.partition(b"\n")
    if (
        line.endswith(b"HTTP/1.1")
        and not fields.lower().startswith(b"host:")
        and (b"\nhost:" not in fields.lower())
    ):
        fields = b"Host: door.test\n" + fields
    return parse_request_head((line + b"\n" + fields).replace(b"\n", b"\r\n") + b"\r\n")


def refused(decision: Decision) -> tuple[int, int | None]:
    assert isinstance(decision, Refuse), decision
    return decision.error.status, decision.retry_after


def reply(decision: Decision) -> tuple[bytes, bytes]:
    """The response's head and body."""
    assert isinstance(decision, Reply), decision
    response_head, _, body = decision.data.partition(b"\r\n\r\n")
    return response_head, body


# --- listeners --------------------------------------------------------------------------


def test_a_listener_sent_to_an_ipv6_node_gets_its_address_in_brackets() -> None:
    door = Door(node("here"), node("far", public_address="::1"), draining=frozenset({"here"}))
    decision = door.route(b"GET /live.mp3 HTTP/1.1\n", ON_8000_V6)
    assert decision == Redirect("http://[::1]:8000/_stream/live.mp3", keep_alive=True)
    assert door.director.sent.sent("far") == 1  # predicted there until its next report
    assert door.director.directed["redirect"] == 1


def test_a_redirect_keeps_the_query_port_and_connection_choice() -> None:
    door = Door(node("here"), node("far", address="192.0.2.20"), draining=frozenset({"here"}))
    decision = door.route(b"GET /live.mp3?player=web HTTP/1.0\n", ON_80)
    assert decision == Redirect("http://192.0.2.20:80/_stream/live.mp3?player=web", False)


def test_a_redirect_goes_to_a_port_the_node_listens_on() -> None:
    far = node("far", address="192.0.2.20", front_door_ports=(8000,))
    door = Door(node("here"), far, draining=frozenset({"here"}))
    decision = door.route(b"GET /live.mp3 HTTP/1.1\n", ON_80)
    assert isinstance(decision, Redirect)
    assert decision.location == "http://192.0.2.20:8000/_stream/live.mp3"


ON_443 = Arrival(port=443, family=4, tls=True)


def test_an_https_redirect_goes_to_the_nodes_name_over_https() -> None:
    far = node("far", address="192.0.2.20", tls_ports=(443,), https_name="far.stream.example.org")
    door = Door(node("here"), far, draining=frozenset({"here"}))
    decision = door.route(b"GET /live.mp3 HTTP/1.1\nHost: stream.example.org\n", ON_443)
    assert decision == Redirect("https://far.stream.example.org:443/_stream/live.mp3", True)
    # Over plain HTTP the same node is still reached by its address.
    plain = door.route(b"GET /live.mp3 HTTP/1.1\nHost: stream.example.org\n", ON_80)
    assert plain == Redirect("http://192.0.2.20:80/_stream/live.mp3", True)


def test_an_https_listener_goes_only_where_https_is() -> None:
    here = node("here", tls_ports=(443,), https_name="here.stream.example.org")
    far = node("far", address="192.0.2.20")  # no HTTPS there
    door = Door(here, far)
    for _ in range(5):  # never redirected to far, whatever the draw
        assert door.route(b"GET /live.mp3 HTTP/1.1\n", ON_443) == Serve(LIVE, icy=False)
    drained = Door(here, far, draining=frozenset({"here"}))
    assert refused(drained.route(b"GET /live.mp3 HTTP/1.1\n", ON_443))[0] == 503
    assert isinstance(drained.route(b"GET /live.mp3 HTTP/1.1\n", ON_80), Redirect)


def test_a_playlist_fetched_over_https_points_at_https() -> None:
    door = Door(node("here"))
    body = reply(door.route(b"GET /live.mp3.m3u HTTP/1.1\nHost: stream.example.org\n", ON_443))[1]
    assert b"https://stream.example.org/live.mp3" in body


def test_an_acme_challenge_is_answered_by_any_node_and_an_unknown_one_is_not_found() -> None:
    token, answer = "T" * 43, "T" * 43 + "." + "k" * 43
    door = Door(node("here"), acme_challenges={token: answer})
    response_head, body = reply(
        door.route(f"GET /.well-known/acme-challenge/{token} HTTP/1.1\n".encode(), ON_80)
    )
    assert response_head.startswith(b"HTTP/1.1 200")
    assert body == answer.encode()
    missing = door.route(b"GET /.well-known/acme-challenge/" + b"U" * 43 + b" HTTP/1.1\n")
    assert refused(missing) == (404, None)
    assert door.director.directed == {}  # not a listener


def test_a_listener_the_director_keeps_here_is_served_with_its_icy_choice() -> None:
    door = Door(node("here"), node("far"), settings=ClusterSettings(proxy_everything=True))
    assert door.route(b"GET /live.mp3 HTTP/1.1\nIcy-MetaData: 1\n") == Serve(LIVE, icy=True)
    assert door.route(b"GET /live.mp3 HTTP/1.1\n") == Serve(LIVE, icy=False)
    assert door.director.directed["here"] == 2


def test_head_of_a_mount_served_here_answers_its_type_and_is_not_counted_as_sent() -> None:
    door = Door(node("here"), settings=ClusterSettings(proxy_everything=True))
    decision = door.route(b"HEAD /live.mp3 HTTP/1.1\n")
    response_head, body = reply(decision)
    assert response_head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Type: audio/mpeg" in response_head
    assert body == b""
    assert door.director.sent.sent("here") == 0


def test_the_passthrough_path_serves_here_without_asking_the_director() -> None:
    door = Door(node("here"), node("far"), draining=frozenset({"here"}))
    assert door.route(b"GET /_stream/live.mp3 HTTP/1.1\n") == Serve(LIVE, icy=False)
    assert door.director.directed == {}


@pytest.mark.parametrize(
    "path", [b"/nothing.mp3", b"/_stream/nothing.mp3", b"/nothing.mp3.m3u", b"/live"]
)
def test_an_unknown_mount_is_not_found(path: bytes) -> None:
    door = Door(node("here"))
    assert refused(door.route(b"GET " + path + b" HTTP/1.1\n")) == (404, None)


def test_no_node_able_to_take_a_listener_answers_503_with_retry_after() -> None:
    door = Door(node("here"), node("far"), draining=frozenset({"here", "far"}))
    assert refused(door.route(b"GET /live.mp3 HTTP/1.1\n")) == (503, 2)
    assert door.director.directed["unavailable"] == 1


@pytest.mark.parametrize(
    ("here", "limit", "status"),
    [
        ({"capped.mp3": 1}, None, None),
        ({"capped.mp3": 2}, None, 503),  # the mount's max_listeners
        ({"live.mp3": 3}, 4, None),
        ({"live.mp3": 3, "capped.mp3": 1}, 4, 503),  # this node's listener limit
    ],
)
def test_a_listener_over_a_limit_here_is_refused(
    here: dict[str, int], limit: int | None, status: int | None
) -> None:
    door = Door(node("here"), listeners_here=here, listener_limit=limit)
    decision = door.route(b"GET /_stream/capped.mp3 HTTP/1.1\n")
    if status is None:
        assert decision == Serve(CAPPED, icy=False)
    else:
        assert refused(decision) == (status, 2)


# --- playlists ----------------------------------------------------------------------------


def test_a_playlist_points_at_the_host_the_client_used() -> None:
    door = Door(node("here"))
    response_head, body = reply(
        door.route(b"GET /live.mp3.m3u HTTP/1.1\nHost: radio.example:8000\n")
    )
    assert b"Content-Type: audio/x-mpegurl" in response_head
    assert body == (
        b"#EXTM3U\n#EXTINF:-1,radio-one\nhttp://radio.example:8000/live.mp3\n"
        b"#EXTINF:-1,radio-one (HLS)\nhttp://radio.example:8000/live.mp3.m3u8\n"
    )


def test_a_playlist_without_a_usable_host_points_at_the_public_address() -> None:
    door = Door(node("here"), public_address="2001:db8::10")
    _, body = reply(door.route(b"GET /live.mp3.pls HTTP/1.1\nHost: bad/host\n"))
    assert b"File1=http://[2001:db8::10]:8000/live.mp3\n" in body
    _, body = reply(door.route(b"GET /live.mp3.pls HTTP/1.0\n", ON_80))
    assert b"File1=http://[2001:db8::10]/live.mp3\n" in body


def test_the_public_name_wins_over_the_host_header() -> None:
    door = Door(node("here"), public_name="radio.example")
    _, body = reply(door.route(b"GET /live.mp3.xspf HTTP/1.1\nHost: 192.0.2.10\n"))
    assert b"<location>http://radio.example/live.mp3</location>" in body


def test_head_of_a_playlist_has_its_length_but_no_body() -> None:
    door = Door(node("here"))
    _, full = reply(door.route(b"GET /live.mp3.m3u HTTP/1.1\nHost: radio.example\n"))
    response_head, body = reply(door.route(b"HEAD /live.mp3.m3u HTTP/1.1\nHost: radio.example\n"))
    assert body == b""
    assert f"Content-Length: {len(full)}".encode() in response_head


# --- sources ------------------------------------------------------------------------------


LIVE_LOGIN = b"Authorization: Basic " + base64.b64encode(b"source:dj-secret-1") + b"\n"


def test_a_source_is_piped_to_the_leader_of_the_current_epoch() -> None:
    leader = node("boss", address="192.0.2.30", role="leader")
    door = Door(node("here"), leader=leader, epoch=9)
    for method in (b"SOURCE", b"PUT"):
        decision = door.route(method + b" /live.mp3 HTTP/1.0\n" + LIVE_LOGIN)
        assert decision == PipeSource(LIVE, leader, 9)


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (b"", "authentication required"),
        (b"Authorization: Basic " + base64.b64encode(b"source:wrong") + b"\n", "wrong"),
        (b"Authorization: Basic " + base64.b64encode(b"dj:dj-secret-1") + b"\n", "wrong"),
        (b"Authorization: Bearer dj-secret-1\n", "authentication required"),
        (b"Authorization: Basic not-base64!\n", "authentication required"),
    ],
)
def test_a_source_without_the_mount_s_credentials_is_refused_here(
    authorization: bytes, reason: str
) -> None:
    """Before anything goes to the leader: its Icecast never sees the head."""
    leader = node("boss", address="192.0.2.30", role="leader")
    door = Door(node("here"), leader=leader, epoch=9)
    decision = door.route(b"SOURCE /live.mp3 HTTP/1.0\n" + authorization)
    assert isinstance(decision, Refuse)
    assert decision.error.status == 401
    assert reason in decision.error.reason
    assert ("WWW-Authenticate", 'Basic realm="Icecast2 Server"') in decision.error.headers


def test_a_source_with_no_leader_is_told_to_come_back_soon() -> None:
    door = Door(node("here"), leader=None)
    assert refused(door.route(b"SOURCE /live.mp3 HTTP/1.0\n" + LIVE_LOGIN)) == (503, 1)
    door = Door(node("here"), leader=node("boss", role="leader"), epoch=None)
    assert refused(door.route(b"SOURCE /live.mp3 HTTP/1.0\n" + LIVE_LOGIN)) == (503, 1)


def test_a_source_is_told_to_come_back_while_the_named_leader_does_not_say_it_leads() -> None:
    """A leader key left by the node's previous life, or a winner not yet ready: its
    Icecast would refuse with a 401 that encoders take for a wrong password."""
    for role in ("replica", "detached"):
        door = Door(node("here"), leader=node("boss", role=role), epoch=9)
        assert refused(door.route(b"PUT /live.mp3 HTTP/1.1\n" + LIVE_LOGIN)) == (503, 1)


def test_a_source_for_an_unknown_mount_or_before_any_state_is_not_found() -> None:
    door = Door(node("here"), leader=node("boss"))
    assert refused(door.route(b"SOURCE /nothing.mp3 HTTP/1.0\n")) == (404, None)
    door.view = replace(door.view, state=None)
    assert refused(door.route(b"SOURCE /live.mp3 HTTP/1.0\n")) == (404, None)


# --- methods, bodies, pages ------------------------------------------------------------------


@pytest.mark.parametrize(("method", "status"), [(b"POST", 405), (b"DELETE", 405), (b"BREW", 501)])
def test_methods_other_than_listening_and_sources_are_refused(method: bytes, status: int) -> None:
    door = Door(node("here"))
    assert refused(door.route(method + b" /live.mp3 HTTP/1.1\n")) == (status, None)


def test_options_answers_the_cors_preflight_and_keeps_the_connection() -> None:
    door = Door(node("here"))
    decision = door.route(b"OPTIONS /live.mp3 HTTP/1.1\n")
    assert isinstance(decision, Reply)
    assert decision.keep_alive
    assert decision.data.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b"Access-Control-Allow-Methods: GET, HEAD, OPTIONS" in decision.data
    closing = door.route(b"OPTIONS /live.mp3 HTTP/1.1\nConnection: close\n")
    assert isinstance(closing, Reply)
    assert not closing.keep_alive


@pytest.mark.parametrize("header", [b"Content-Length: 5", b"Transfer-Encoding: chunked"])
def test_a_get_with_a_body_is_a_bad_request(header: bytes) -> None:
    door = Door(node("here"))
    assert refused(door.route(b"GET /live.mp3 HTTP/1.1\n" + header + b"\n")) == (400, None)
    assert door.director.directed == {}


@pytest.mark.parametrize(
    "path", ["/health", "/ready", "/leader", "/api/v1/status", "/metrics", "/", "/status"]
)
def test_pages_are_routed_to_before_mounts(path: str) -> None:
    door = Door(node("here"))
    assert door.route(b"GET " + path.encode() + b" HTTP/1.1\n") == Page(path)


def test_a_listener_routed_with_no_state_read_yet_finds_no_mount() -> None:
    door = Door(node("here"))
    door.view = replace(door.view, state=None)
    assert refused(door.route(b"GET /live.mp3 HTTP/1.1\n")) == (404, None)


AAC_CHILD = parse_mount(
    {
        "name": "live.aac",
        "source_password": "dj-secret-3",
        "transcode": {"parent": "live.mp3", "format": {"codec": "aac", "bitrate_kbps": 48}},
    }
)
OGG = parse_mount(
    {"name": "live.ogg", "source_password": "dj-secret-4", "format": {"codec": "vorbis"}}
)


def hls_door() -> Door:
    door = Door(node("here"))
    assert door.view.state is not None
    mounts = {**door.view.state.mounts, "live.aac": AAC_CHILD, "live.ogg": OGG}
    door.view = replace(door.view, state=replace(door.view.state, mounts=mounts))
    return door


def test_an_ogg_mounts_playlist_lists_no_hls() -> None:
    _, body = reply(hls_door().route(b"GET /live.ogg.m3u HTTP/1.1\nHost: radio.example\n"))
    assert body == b"#EXTM3U\n#EXTINF:-1,live.ogg\nhttp://radio.example/live.ogg\n"


def test_the_hls_master_playlist_lists_the_mount_and_its_transcoded_variants() -> None:
    decision = hls_door().route(b"GET /live.mp3.m3u8 HTTP/1.1\n")
    assert isinstance(decision, Reply)
    head, _, body = decision.data.partition(b"\r\n\r\n")
    assert b"Content-Type: application/vnd.apple.mpegurl" in head
    assert b"Access-Control-Allow-Origin: *" in head
    lines = body.decode().splitlines()[2:]
    token = lines[1].rpartition("=")[2]
    assert len(token) == 16
    assert lines == [
        '#EXT-X-STREAM-INF:BANDWIDTH=140800,CODECS="mp4a.40.34"',
        f"hls/live.mp3/index.m3u8?session={token}",
        '#EXT-X-STREAM-INF:BANDWIDTH=52800,CODECS="mp4a.40.2"',
        f"hls/live.aac/index.m3u8?session={token}",
    ]
    again = hls_door().route(b"GET /live.mp3.m3u8 HTTP/1.1\n")
    assert isinstance(again, Reply)
    assert token.encode() not in again.data  # each fetch, a player: a session of its own


def test_hls_media_playlists_and_segments_are_served_here_never_redirected() -> None:
    door = hls_door()
    from_player = Arrival(port=8000, family=4, address="198.51.100.7")
    token = HlsSession("0123456789abcdef", in_uris=True)
    assert door.route(
        b"GET /hls/live.mp3/index.m3u8?session=0123456789abcdef HTTP/1.1\n", from_player
    ) == HlsPlaylist(LIVE, token, keep_alive=True, head_only=False)
    # Without a token (or with one that is not ours): the address and the user agent.
    assert door.route(
        b"HEAD /hls/live.aac/425000017.aac?session=x HTTP/1.0\nUser-Agent: VLC/3\n", from_player
    ) == HlsSegment(
        AAC_CHILD,
        425000017,
        HlsSession("198.51.100.7 VLC/3", in_uris=False),
        keep_alive=False,
        head_only=True,
    )
    assert door.director.directed == {}


@pytest.mark.parametrize(
    ("request_line", "reason"),
    [
        (b"GET /hls/live.mp3/12.aac HTTP/1.1\n", "no such HLS file"),
        (b"GET /hls/live.mp3/index.m3u HTTP/1.1\n", "no such HLS file"),
        (b"GET /hls/live.mp3/-1.mp3 HTTP/1.1\n", "no such HLS file"),
        (b"GET /hls/live.mp3/12345678901234567890.mp3 HTTP/1.1\n", "no such HLS file"),
        (b"GET /hls/nothing.mp3/index.m3u8 HTTP/1.1\n", "no such mount"),
        (b"GET /hls/live.ogg/index.m3u8 HTTP/1.1\n", "not vorbis"),
        (b"GET /live.ogg.m3u8 HTTP/1.1\n", "not vorbis"),
        (b"GET /nothing.mp3.m3u8 HTTP/1.1\n", "no such mount"),
    ],
)
def test_hls_paths_that_name_nothing_servable_get_404_with_a_reason(
    request_line: bytes, reason: str
) -> None:
    decision = hls_door().route(request_line)
    assert isinstance(decision, Refuse)
    assert decision.error.status == 404
    assert reason in decision.error.reason
