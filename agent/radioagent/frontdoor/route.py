"""Where a request goes: the front door's routing, from the request head and the agent's
view to a decision. The protocol (connection.py) and the door (server.py) carry it out.

Pure but for one thing: a listener's node is the director's choice, and the director
counts what it directs (a listener sent to a node is predicted there until that node's
next report). Routing the same head twice therefore counts two listeners, as two
requests would.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qs

from radioagent.acme.http01 import CHALLENGE_PREFIX, challenge_answer
from radioagent.coordination.failsafe import PATH as FAILSAFE_PATH
from radioagent.frontdoor.http import (
    AUTHENTICATE,
    CORS_HEADERS,
    RETRY_AFTER_SECONDS,
    SOURCE_RETRY_AFTER_SECONDS,
    HttpError,
    RequestHead,
    basic_credentials,
    response,
)
from radioagent.frontdoor.metadata import TITLE_PATHS, TitleUpdate, title_update
from radioagent.frontdoor.pages import page_for
from radioagent.frontdoor.playlists import PLAYLIST_TYPES, render_playlist, split_playlist_path
from radioagent.frontdoor.view import AgentSnapshot
from radioagent.hls.playlists import (
    HLS_PREFIX,
    PLAYLIST_TYPE,
    SEGMENT_SUFFIXES,
    SESSION_PARAMETER,
    HlsSession,
    master_playlist,
    packs,
    variants_of,
)
from radioagent.hosts import host_port, url_host, valid_host
from radioagent.model import MountSpec, NodeStatus, credentials_match
from radioagent.traffic.director import Director, Outcome

STREAM_PREFIX = "/_stream/"
SOURCE_METHODS = frozenset({"SOURCE", "PUT"})
LISTENER_METHODS = frozenset({"GET", "HEAD"})
KNOWN_METHODS = frozenset({"POST", "DELETE", "PATCH", "CONNECT", "TRACE", "OPTIONS"})
_SEQUENCE = re.compile(r"[0-9]{1,19}")  # a media sequence number: below 2**63
_TOKEN = re.compile(r"[0-9a-f]{16}")  # an HLS session's, as Routing.new_session makes them


# --- what routing reads besides the request -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """Facts about the connection a request came on, read once when it opened."""

    port: int  # the front door port it reached
    family: int  # the client's IP family, 4 or 6 (an IPv4-mapped IPv6 address is 4)
    tls: bool = False  # it came over HTTPS
    address: str = ""  # the client's address (an IPv4-mapped IPv6 one as IPv4)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


@dataclass(frozen=True)
class Routing:
    """What routing consults that lives as long as the door."""

    director: Director  # picks a listener's node (and counts it there)
    # Listeners on this node by mount; read only when a limit applies (it walks the hubs).
    listeners_here: Callable[[], Mapping[str, int]]
    public_name: str | None  # the cluster's name in playlists; None: the Host header
    # A new HLS session's token, for the URIs of the master playlist it fetched.
    new_session: Callable[[], str] = lambda: secrets.token_hex(8)


# --- decisions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete response, written as it is."""

    data: bytes
    keep_alive: bool


@dataclass(frozen=True, slots=True)
class Refuse:
    """An error response; the connection is closed after it."""

    error: HttpError
    retry_after: int | None = None


@dataclass(frozen=True, slots=True)
class Redirect:
    """302 to a listener's node."""

    location: str
    keep_alive: bool


@dataclass(frozen=True, slots=True)
class Serve:
    """Stream the mount from this node's Icecast through the fan-out."""

    mount: MountSpec
    icy: bool  # the client asked for ICY metadata


@dataclass(frozen=True, slots=True)
class PipeSource:
    """Pipe a source client to the leader's Icecast."""

    mount: MountSpec
    leader: NodeStatus
    epoch: int  # the leadership the pipe belongs to: cut when it ends


@dataclass(frozen=True, slots=True)
class SetTitle:
    """Store an encoder's title update, then answer it."""

    update: TitleUpdate


@dataclass(frozen=True, slots=True)
class FailsafePing:
    """A leader cut off from etcd asks whether this node acknowledges it (failsafe)."""

    query: str
    keep_alive: bool


@dataclass(frozen=True, slots=True)
class Page:
    """One of the pages (pages.py), rendered from a fresh snapshot."""

    path: str


@dataclass(frozen=True, slots=True)
class HlsPlaylist:
    """The mount's HLS media playlist (its cut starts if it was not running)."""

    mount: MountSpec
    session: HlsSession
    keep_alive: bool
    head_only: bool


@dataclass(frozen=True, slots=True)
class HlsSegment:
    """One HLS segment of the mount, if this node still keeps it."""

    mount: MountSpec
    sequence: int
    session: HlsSession
    keep_alive: bool
    head_only: bool


Decision = (
    Reply
    | Refuse
    | Redirect
    | Serve
    | PipeSource
    | SetTitle
    | Page
    | HlsPlaylist
    | HlsSegment
    | FailsafePing
)


# --- routing -------------------------------------------------------------------------------


def route(head: RequestHead, view: AgentSnapshot, arrival: Arrival, routing: Routing) -> Decision:
    """The decision for one request head. `view` is the agent's snapshot: the one of the
    last loop for listeners (the hot path), a fresh one for sources, whose leader may
    have changed since."""
    method = head.method
    if method in SOURCE_METHODS:
        return _source(head, view)
    if method not in LISTENER_METHODS:
        return _other_method(head)
    if "transfer-encoding" in head.headers or head.header("content-length", "0") != "0":
        return Refuse(HttpError(400, f"a {method} request has no body"))
    own = _own_path(head, view)
    return own if own is not None else _listener(head, view, arrival, routing)


def _own_path(head: RequestHead, view: AgentSnapshot) -> Decision | None:
    """The door's own paths, before any mount: pages, title updates, ACME challenges,
    the failsafe's pings."""
    if head.path == FAILSAFE_PATH and head.method == "GET":
        return FailsafePing(head.query, head.keep_alive)
    if page_for(head.path) is not None:
        return Page(head.path)
    if head.path in TITLE_PATHS:
        return _title(head, view)
    if head.path.startswith(CHALLENGE_PREFIX):
        return _acme_challenge(head, view)
    return None


def _other_method(head: RequestHead) -> Decision:
    """CORS preflight is answered; other methods are refused, naming why."""
    if head.method == "OPTIONS":
        return Reply(_preflight(head.keep_alive), head.keep_alive)
    if head.method in KNOWN_METHODS:
        return Refuse(HttpError(405, f"{head.method} is not allowed here"))
    return Refuse(HttpError(501, f"{head.method} is not a method this server knows"))


def _listener(
    head: RequestHead, view: AgentSnapshot, arrival: Arrival, routing: Routing
) -> Decision:
    mounts = view.state.mounts if view.state is not None else {}
    if head.path.startswith(STREAM_PREFIX):
        mount = mounts.get(head.path.removeprefix(STREAM_PREFIX))
        if mount is None:
            return Refuse(HttpError(404, "no such mount"))
        return _serve_here(head, view, mount, routing)
    if head.path.startswith(HLS_PREFIX):
        return _hls(head, mounts, arrival)
    name = head.path.removeprefix("/")
    mount = mounts.get(name)
    if mount is not None:
        return _direct(head, view, arrival, routing, mount)
    return _playlists(head, view, arrival, routing, name)


def _playlists(
    head: RequestHead, view: AgentSnapshot, arrival: Arrival, routing: Routing, name: str
) -> Decision:
    """`<mount>.m3u8` (HLS), `.m3u`, `.pls`, `.xspf`."""
    mounts = view.state.mounts if view.state is not None else {}
    if name.endswith(".m3u8") and name[: -len(".m3u8")] in mounts:
        return _hls_master(head, mounts[name[: -len(".m3u8")]], mounts, routing.new_session())
    playlist = split_playlist_path(name)
    if playlist is not None and playlist[0] in mounts:
        public = _public_host(head, view, arrival, routing)
        return _playlist(head, mounts[playlist[0]], playlist[1], f"{arrival.scheme}://{public}")
    return Refuse(HttpError(404, "no such mount"))


def _direct(
    head: RequestHead, view: AgentSnapshot, arrival: Arrival, routing: Routing, mount: MountSpec
) -> Decision:
    # A HEAD never becomes a listener, so it is not counted as sent.
    direction = routing.director.direct(
        mount,
        arrival.family,
        head.header("user-agent"),
        listens=head.method == "GET",
        tls=arrival.tls,
    )
    if direction.outcome is Outcome.UNAVAILABLE:
        return Refuse(HttpError(503, direction.reason), RETRY_AFTER_SECONDS)
    if direction.outcome is Outcome.HERE:
        return _serve_here(head, view, mount, routing)
    node = cast(NodeStatus, direction.node)  # a redirect always names its node
    query = f"?{head.query}" if head.query else ""
    return Redirect(
        f"{_redirect_target(node, arrival)}{STREAM_PREFIX}{mount.name}{query}", head.keep_alive
    )


def _redirect_target(node: NodeStatus, arrival: Arrival) -> str:
    """The scheme, host and port a listener goes to on `node`: the scheme it came with,
    the port it used if the node listens there too (80 stays 80, 443 stays 443). Over
    HTTPS, the node's own name (which its certificate covers), never an address: the
    director only picks nodes that have one for a listener who came over HTTPS."""
    if arrival.tls:
        host = node.https_name or node.listener_address
        ports = node.tls_ports or (arrival.port,)
    else:
        host, ports = node.listener_address, node.front_door_ports or (arrival.port,)
    port = arrival.port if arrival.port in ports else ports[0]
    return f"{arrival.scheme}://{host_port(host, port)}"


def _serve_here(
    head: RequestHead, view: AgentSnapshot, mount: MountSpec, routing: Routing
) -> Decision:
    limit = view.listener_limit
    if (limit is not None or mount.max_listeners is not None) and full(
        limit, mount, routing.listeners_here()
    ):
        return Refuse(
            HttpError(503, "this node has no room for another listener"), RETRY_AFTER_SECONDS
        )
    if head.method == "HEAD":
        return Reply(
            response(200, content_type=mount.format.content_type, headers=CORS_HEADERS),
            keep_alive=False,
        )
    return Serve(mount, head.header("icy-metadata") == "1")


def full(node_limit: int | None, mount: MountSpec, here: Mapping[str, int]) -> bool:
    """Whether the node, or the mount on it, has no room for another listener."""
    return (node_limit is not None and sum(here.values()) >= node_limit) or (
        mount.max_listeners is not None and here.get(mount.name, 0) >= mount.max_listeners
    )


def _public_host(head: RequestHead, view: AgentSnapshot, arrival: Arrival, routing: Routing) -> str:
    """Where a playlist points: the cluster's public name, else the name the client used
    (so it works from where it was fetched), else this node's public address."""
    public = routing.public_name or valid_host(head.header("host"))
    if public is not None:
        return public
    if arrival.port == (443 if arrival.tls else 80):
        return url_host(view.public_address)
    return host_port(view.public_address, arrival.port)


def _playlist(head: RequestHead, mount: MountSpec, suffix: str, base: str) -> Decision:
    """`base`: scheme and host the playlist points at, as the listener came. The stream
    first; then, for a mount HLS carries, its master playlist, which a player that
    plays HLS tries when the stream fails."""
    title = mount.radio or mount.name
    entries = [(f"{base}/{mount.name}", title)]
    if packs(mount):
        entries.append((f"{base}/{mount.name}.m3u8", f"{title} (HLS)"))
    body = render_playlist(suffix, entries)
    return Reply(
        response(
            200,
            body.encode(),
            content_type=PLAYLIST_TYPES[suffix],
            headers=CORS_HEADERS,
            keep_alive=head.keep_alive,
            head_only=head.method == "HEAD",
        ),
        head.keep_alive,
    )


def _hls_master(
    head: RequestHead, mount: MountSpec, mounts: Mapping[str, MountSpec], token: str
) -> Decision:
    """Served by every node (no redirect): DNS spreads HLS players, and a player that
    moves to another node finds the same playlists there. Each fetch starts a session:
    its token rides in the URIs, so the node counts one player, not its requests."""
    if not packs(mount):
        return Refuse(HttpError(404, f"HLS carries MP3 and AAC mounts, not {mount.format.codec}"))
    text = master_playlist(variants_of(mount, mounts), token)
    return _hls_reply(head, text.encode(), PLAYLIST_TYPE, "no-cache")


def _hls_session(head: RequestHead, arrival: Arrival) -> HlsSession:
    """The player's token if it came with one, else its address and user agent (a player
    that fetched a media playlist directly)."""
    token = parse_qs(head.query).get(SESSION_PARAMETER, [""])[0]
    if _TOKEN.fullmatch(token):
        return HlsSession(token, in_uris=True)
    return HlsSession(f"{arrival.address} {head.header('user-agent')[:200]}", in_uris=False)


def _hls(head: RequestHead, mounts: Mapping[str, MountSpec], arrival: Arrival) -> Decision:
    """`/hls/<mount>/index.m3u8` and `/hls/<mount>/<sequence>.<mp3|aac>`."""
    name, _, file = head.path.removeprefix(HLS_PREFIX).rpartition("/")
    mount = mounts.get(name)
    if mount is None:
        return Refuse(HttpError(404, "no such mount"))
    if not packs(mount):
        return Refuse(HttpError(404, f"HLS carries MP3 and AAC mounts, not {mount.format.codec}"))
    head_only = head.method == "HEAD"
    session = _hls_session(head, arrival)
    if file == "index.m3u8":
        return HlsPlaylist(mount, session, head.keep_alive, head_only)
    stem, _, suffix = file.partition(".")
    if suffix == SEGMENT_SUFFIXES[mount.format.codec] and _SEQUENCE.fullmatch(stem):
        return HlsSegment(mount, int(stem), session, head.keep_alive, head_only)
    return Refuse(HttpError(404, "no such HLS file"))


def _hls_reply(head: RequestHead, body: bytes, content_type: str, cache: str) -> Reply:
    data = hls_response(body, content_type, cache, head.keep_alive, head.method == "HEAD")
    return Reply(data, head.keep_alive)


def hls_response(
    body: bytes, content_type: str, cache: str, keep_alive: bool, head_only: bool
) -> bytes:
    """A playlist or a segment: CORS for web players, `cache` their Cache-Control."""
    return response(
        200,
        body,
        content_type=content_type,
        headers=(*CORS_HEADERS, ("Cache-Control", cache)),
        keep_alive=keep_alive,
        head_only=head_only,
    )


def _acme_challenge(head: RequestHead, view: AgentSnapshot) -> Decision:
    """The CA's HTTP-01 check, which may reach any node: the key authorization the
    ordering node put in etcd."""
    if view.state is None:
        return Refuse(HttpError(503, "no cluster state read yet"), RETRY_AFTER_SECONDS)
    answer = challenge_answer(head.path, view.state.acme_challenges)
    if answer is None:
        return Refuse(HttpError(404, "no such challenge"))
    return Reply(
        response(
            200,
            answer.encode(),
            content_type="application/octet-stream",
            keep_alive=head.keep_alive,
            head_only=head.method == "HEAD",
        ),
        head.keep_alive,
    )


def _title(head: RequestHead, view: AgentSnapshot) -> Decision:
    if head.method != "GET":
        return Refuse(HttpError(405, f"{head.method} does not set a title (GET does)"))
    if view.state is None:
        return Refuse(HttpError(503, "no cluster state read yet"), RETRY_AFTER_SECONDS)
    update = title_update(head, view.state.mounts)
    if isinstance(update, HttpError):
        return Refuse(update)
    return SetTitle(update)


def _source(head: RequestHead, view: AgentSnapshot) -> Decision:
    mounts = view.state.mounts if view.state is not None else {}
    mount = mounts.get(head.path.removeprefix("/"))
    if mount is None:
        return Refuse(HttpError(404, "no such mount"))
    # Checked here too, not only by the leader: a head without the mount's credentials
    # never opens a connection to the leader (and counts as a failed login here).
    credentials = basic_credentials(head.header("authorization"))
    if credentials is None:
        return Refuse(HttpError(401, "authentication required", AUTHENTICATE))
    if not credentials_match(mount, *credentials):
        return Refuse(HttpError(401, "wrong credentials for this mount", AUTHENTICATE))
    if view.leader is None or view.epoch is None:
        return Refuse(HttpError(503, "no leader right now"), SOURCE_RETRY_AFTER_SECONDS)
    if view.leader.role != "leader":
        # etcd names a node that does not say it leads: a key its previous life left, or
        # a winner that has not taken sources yet. Its Icecast would answer 401, which
        # an encoder reads as a wrong password.
        return Refuse(HttpError(503, "the leader is not ready"), SOURCE_RETRY_AFTER_SECONDS)
    return PipeSource(mount, view.leader, view.epoch)


def _preflight(keep_alive: bool) -> bytes:
    return response(
        204,
        headers=(*CORS_HEADERS, ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")),
        keep_alive=keep_alive,
    )
