"""The public front door on ports 80 and 8000: listeners, sources, playlists, status.

- `GET`/`HEAD /<mount>`: the director picks a node; 302 to its `/_stream/<mount>`, or
  served here. `/_stream/<mount>` is the passthrough (fanned out from the local Icecast).
- `SOURCE`/`PUT /<mount>`: piped to the leader's Icecast (`/_live/<mount>`).
- `/<mount>.m3u|.pls|.xspf`, `/` (HTML status), `/api/v1/status`, `/health`, `/ready`,
  `/leader`, `/metrics`.

One asyncio Protocol per connection: a bounded head buffer, a head timeout, strict
parsing (http.py), then either a small response (keep-alive allowed) or a take-over
of the connection by the passthrough or the source pipe.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar, cast

from prometheus_client import CONTENT_TYPE_LATEST

from radioagent.config import FrontDoorSettings
from radioagent.frontdoor.fanout import FanoutLimits, MountHub, Passthrough
from radioagent.frontdoor.http import (
    CORS_HEADERS,
    MAX_HEAD_BYTES,
    HttpError,
    RequestHead,
    error_response,
    head_end,
    parse_request_head,
    response,
)
from radioagent.frontdoor.metrics import metrics_text
from radioagent.frontdoor.playlists import PLAYLIST_TYPES, render_playlist, split_playlist_path
from radioagent.frontdoor.sources import SourcePipe, upstream_head
from radioagent.frontdoor.status_page import render_status_page
from radioagent.frontdoor.view import AgentSnapshot, FrontDoorStats
from radioagent.model import MountSpec, NodeStatus
from radioagent.status import status_document
from radioagent.traffic.director import Director, Outcome
from radioagent.traffic.prediction import report_window

log = logging.getLogger(__name__)

STREAM_PREFIX = "/_stream/"
SOURCE_METHODS = frozenset({"SOURCE", "PUT"})
LISTENER_METHODS = frozenset({"GET", "HEAD"})
KNOWN_METHODS = frozenset({"POST", "DELETE", "PATCH", "CONNECT", "TRACE", "OPTIONS"})
RETRY_AFTER_SECONDS = 2
MAX_IGNORED_BYTES = 64 * 1024  # what a listener may send after its request
LISTENER_SEND_BUFFER = 64 * 1024  # the kernel doubles it: ~8 s of a 128 kbps stream
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


class Mode(Enum):
    HEAD = "head"  # reading a request head
    LISTENER = "listener"
    SOURCE = "source"
    CLOSED = "closed"


@dataclass
class FrontDoorCounters:
    directions: Counter[str] = field(default_factory=Counter)  # here, redirect, unavailable
    refused: Counter[int] = field(default_factory=Counter)  # by HTTP status
    sources_opened: int = 0
    sources_failed: int = 0
    connections: int = 0


class Connection(asyncio.Protocol):
    def __init__(self, door: FrontDoor) -> None:
        self.door = door
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.mode = Mode.HEAD
        self.buffer = bytearray()
        self.hub: MountHub | None = None
        self.pipe: SourcePipe | None = None
        self._ignored = 0
        self._timer: asyncio.TimerHandle | None = None

    # --- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.door.counters.connections += 1
        if self.door.counters.connections > self.door.settings.max_connections:
            self.fail(HttpError(503, "too many connections"), retry_after=RETRY_AFTER_SECONDS)
            return
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self.mode is Mode.HEAD:
            self.buffer += data
            self._read_heads()
        elif self.mode is Mode.SOURCE:
            if self.pipe is not None and self.pipe.connected:
                self.pipe.from_client(data)
            else:
                self.buffer += data  # bounded: reading is paused until the pipe is up
        elif self.mode is Mode.LISTENER:
            self._ignored += len(data)
            if self._ignored > MAX_IGNORED_BYTES:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.door.counters.connections -= 1
        self.mode = Mode.CLOSED
        self._cancel_timer()
        if self.hub is not None:
            self.hub.leave(self)
        if self.pipe is not None:
            self.pipe.close()
            self.door.pipes.discard(self.pipe)

    def pause_writing(self) -> None:
        if self.pipe is not None:
            self.pipe.client_paused(True)

    def resume_writing(self) -> None:
        if self.pipe is not None:
            self.pipe.client_paused(False)

    # --- what the door and the hubs call -------------------------------------------------

    def reply(self, data: bytes, keep_alive: bool) -> None:
        self.transport.write(data)
        if keep_alive:
            self._arm_timer()
        else:
            self.mode = Mode.CLOSED
            self.transport.close()

    def fail(self, error: HttpError, retry_after: int | None = None) -> None:
        self.door.counters.refused[error.status] += 1
        self.reply(error_response(error, retry_after=retry_after), keep_alive=False)

    def start_stream(self, data: bytes) -> None:
        self.transport.write(data)

    def become_listener(self) -> None:
        self._cancel_timer()
        self.mode = Mode.LISTENER
        self.buffer.clear()
        # A fixed send buffer: Linux would grow it to megabytes for a listener that stops
        # reading, before our own bound on queued bytes is ever reached.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LISTENER_SEND_BUFFER)

    def become_source(self) -> None:
        self._cancel_timer()
        self.mode = Mode.SOURCE
        self.transport.pause_reading()

    # --- internals -----------------------------------------------------------------------

    def _read_heads(self) -> None:
        while self.mode is Mode.HEAD and self.buffer:
            end = head_end(self.buffer)
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    self.fail(HttpError(431, f"request head larger than {MAX_HEAD_BYTES} bytes"))
                elif b"\n" in self.buffer:
                    self._check_request_line()
                return
            raw = bytes(self.buffer[:end])
            del self.buffer[:end]
            try:
                head = parse_request_head(raw)
            except HttpError as error:
                self.fail(error)
                return
            self.door.handle(self, head)

    def _check_request_line(self) -> None:
        """Refuse bytes that are not HTTP at once rather than at the head timeout."""
        line = bytes(self.buffer[: self.buffer.index(b"\n") + 1])
        try:
            parse_request_head(line + b"\r\n")
        except HttpError as error:
            self.fail(error)

    def _arm_timer(self) -> None:
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(
            self.door.settings.header_timeout, self._timed_out
        )

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        if self.mode is Mode.HEAD:
            if self.buffer:
                self.fail(HttpError(408, "request head not received in time"))
            else:
                self.mode = Mode.CLOSED
                self.transport.close()  # an idle keep-alive connection


class FrontDoor:
    def __init__(
        self,
        settings: FrontDoorSettings,
        node_name: str,
        snapshot: Callable[[], AgentSnapshot],
        icecast_address: tuple[str, int],
        prediction_window: float,
    ) -> None:
        self.settings = settings
        self.snapshot = snapshot
        self.counters = FrontDoorCounters()
        self.passthrough = Passthrough(*icecast_address, FanoutLimits())
        self.director = Director(node_name, prediction_window)
        self.pipes: set[SourcePipe] = set()
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._view: AgentSnapshot

    async def start(self) -> None:
        self.update()
        loop = asyncio.get_running_loop()
        for port in self.settings.ports:
            server = await loop.create_server(
                lambda: Connection(self), self.settings.bind_address, port, backlog=1024
            )
            self._servers.append(server)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        self.passthrough.close()
        for pipe in list(self.pipes):
            pipe.close()
        for task in self._tasks:
            task.cancel()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def update(self) -> None:
        """After each loop: a fresh view for the director; sources piped to a leader that
        no longer leads are cut (their clients reconnect and reach the new one)."""
        view = self._view = self.snapshot()
        self.director.sent.window = report_window(view.timing.loop_wait)
        if view.state is not None:
            self.director.update(view.state.nodes, view.state.draining, view.state.settings)
        for pipe in list(self.pipes):
            if pipe.epoch != view.epoch or view.leader is None:
                log.info("leadership moved: cutting the source piped to %s", pipe.mount)
                pipe.close()
                self.pipes.discard(pipe)

    def stats(self) -> FrontDoorStats:
        fanout = self.passthrough.counters
        return FrontDoorStats(
            listeners=self.listeners_by_mount(),
            directions=dict(self.counters.directions),
            refused=dict(self.counters.refused),
            bytes_by_mount={
                path.lstrip("/"): count for path, count in fanout.bytes_by_path.items()
            },
            slow_listeners_dropped=fanout.slow_listeners_dropped,
            sources_opened=self.counters.sources_opened,
            sources_failed=self.counters.sources_failed,
            sources_active=len(self.pipes),
            connections=self.counters.connections,
        )

    def listeners_by_mount(self) -> dict[str, int]:
        return {
            path.lstrip("/"): count
            for path, count in self.passthrough.listeners_by_path().items()
            if count
        }

    # --- dispatch ------------------------------------------------------------------------

    def handle(self, connection: Connection, head: RequestHead) -> None:
        method = head.method
        if method in SOURCE_METHODS:
            self._source(connection, head)
            return
        if method not in LISTENER_METHODS:
            if method == "OPTIONS":
                connection.reply(self._preflight(head), head.keep_alive)
            elif method in KNOWN_METHODS:
                connection.fail(HttpError(405, f"{method} is not allowed here"))
            else:
                connection.fail(HttpError(501, f"{method} is not a method this server knows"))
            return
        if "transfer-encoding" in head.headers or head.header("content-length", "0") != "0":
            connection.fail(HttpError(400, f"a {method} request has no body"))
            return
        page = self._pages.get(head.path)
        if page is not None:
            body, content_type, extra = page(self, head)
            connection.reply(
                response(
                    200 if extra is None else extra,
                    body,
                    content_type=content_type,
                    headers=CORS_HEADERS,
                    keep_alive=head.keep_alive,
                    head_only=method == "HEAD",
                ),
                head.keep_alive,
            )
            return
        self._listener(connection, head)

    def _listener(self, connection: Connection, head: RequestHead) -> None:
        mounts = self._view.state.mounts if self._view.state is not None else {}
        if head.path.startswith(STREAM_PREFIX):
            mount = mounts.get(head.path.removeprefix(STREAM_PREFIX))
            if mount is None:
                connection.fail(HttpError(404, "no such mount"))
            else:
                self._serve_here(connection, head, mount)
            return
        name = head.path.removeprefix("/")
        mount = mounts.get(name)
        if mount is not None:
            self._direct(connection, head, mount)
            return
        playlist = split_playlist_path(name)
        if playlist is not None and playlist[0] in mounts:
            self._playlist(connection, head, mounts[playlist[0]], playlist[1])
            return
        connection.fail(HttpError(404, "no such mount"))

    def _direct(self, connection: Connection, head: RequestHead, mount: MountSpec) -> None:
        direction = self.director.direct(
            mount,
            client_family(connection.transport),
            head.header("user-agent"),
            listens=head.method == "GET",
        )
        self.counters.directions[direction.outcome.value] += 1
        if direction.outcome is Outcome.UNAVAILABLE:
            connection.fail(HttpError(503, direction.reason), retry_after=RETRY_AFTER_SECONDS)
        elif direction.outcome is Outcome.HERE:
            self._serve_here(connection, head, mount)
        else:
            node = cast(NodeStatus, direction.node)
            arrived_on = connection.transport.get_extra_info("sockname")[1]
            ports = node.front_door_ports or (arrived_on,)
            port = arrived_on if arrived_on in ports else ports[0]
            host = node.listener_address
            host = f"[{host}]" if ":" in host else host
            query = f"?{head.query}" if head.query else ""
            location = f"http://{host}:{port}{STREAM_PREFIX}{mount.name}{query}"
            connection.reply(
                response(
                    302,
                    b"",
                    headers=(("Location", location), *CORS_HEADERS),
                    keep_alive=head.keep_alive,
                ),
                head.keep_alive,
            )

    def _serve_here(self, connection: Connection, head: RequestHead, mount: MountSpec) -> None:
        limit = self._view.listener_limit
        if (limit is not None or mount.max_listeners is not None) and self._full(limit, mount):
            connection.fail(
                HttpError(503, "this node has no room for another listener"),
                retry_after=RETRY_AFTER_SECONDS,
            )
            return
        if head.method == "HEAD":
            connection.reply(
                response(200, content_type=mount.format.content_type, headers=CORS_HEADERS),
                keep_alive=False,
            )
            return
        connection.become_listener()
        connection.hub = self.passthrough.join(
            mount.path, head.header("icy-metadata") == "1", connection
        )

    def _full(self, node_limit: int | None, mount: MountSpec) -> bool:
        here = self.listeners_by_mount()
        return (node_limit is not None and sum(here.values()) >= node_limit) or (
            mount.max_listeners is not None and here.get(mount.name, 0) >= mount.max_listeners
        )

    def _playlist(
        self, connection: Connection, head: RequestHead, mount: MountSpec, suffix: str
    ) -> None:
        public = self.settings.public_name or valid_host(head.header("host"))
        if public is None:
            view = self._view
            address = view.public_address
            public = f"[{address}]" if ":" in address else address
            arrived_on = connection.transport.get_extra_info("sockname")[1]
            public = f"{public}:{arrived_on}" if arrived_on != 80 else public
        body = render_playlist(suffix, f"http://{public}/{mount.name}", mount.radio or mount.name)
        connection.reply(
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

    def _preflight(self, head: RequestHead) -> bytes:
        return response(
            204,
            headers=(*CORS_HEADERS, ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")),
            keep_alive=head.keep_alive,
        )

    # --- sources -------------------------------------------------------------------------

    def _source(self, connection: Connection, head: RequestHead) -> None:
        view = self.snapshot()
        mounts = view.state.mounts if view.state is not None else {}
        mount = mounts.get(head.path.removeprefix("/"))
        if mount is None:
            connection.fail(HttpError(404, "no such mount"))
            return
        leader = view.leader
        if leader is None or view.epoch is None:
            connection.fail(HttpError(503, "no leader right now"), retry_after=1)
            return
        pipe = SourcePipe(connection, mount.name, view.epoch)
        connection.pipe = pipe
        connection.become_source()
        self.pipes.add(pipe)
        task = asyncio.get_running_loop().create_task(
            self._open_pipe(connection, pipe, upstream_head(head, mount.name), leader)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_pipe(
        self, connection: Connection, pipe: SourcePipe, head: bytes, leader: NodeStatus
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: pipe, leader.address, leader.icecast_port), 5
            )
        except (OSError, TimeoutError) as error:
            self.counters.sources_failed += 1
            self.pipes.discard(pipe)
            connection.pipe = None
            log.warning("source for %s: cannot reach the leader: %s", pipe.mount, error)
            connection.fail(HttpError(503, "cannot reach the leader"), retry_after=1)
            return
        if pipe.closed or connection.mode is not Mode.SOURCE:
            pipe.close()
            return
        self.counters.sources_opened += 1
        pipe.from_client(head + bytes(connection.buffer))
        connection.buffer.clear()
        connection.transport.resume_reading()

    # --- pages ---------------------------------------------------------------------------

    def _health(self, head: RequestHead) -> tuple[bytes, str, int | None]:
        view = self.snapshot()
        if not view.alive:
            return f"loop stalled for {view.seconds_since_cycle:.0f} s\n".encode(), TEXT, 503
        return b"ok\n", TEXT, None

    def _ready(self, head: RequestHead) -> tuple[bytes, str, int | None]:
        ready, reason = self.snapshot().readiness()
        return f"{reason}\n".encode(), TEXT, None if ready else 503

    def _leader(self, head: RequestHead) -> tuple[bytes, str, int | None]:
        view = self.snapshot()
        if view.leading:
            return f"leader (epoch {view.epoch})\n".encode(), TEXT, None
        return b"not the leader\n", TEXT, 503

    def _document(self) -> dict | None:
        view = self.snapshot()
        if view.state is None:
            return None
        document = status_document(view.state)
        document["node"] = view.node_name
        return document

    def _status_json(self, head: RequestHead) -> tuple[bytes, str, int | None]:
        document = self._document()
        if document is None:
            return b'{"error": "no cluster state read yet"}', JSON, 503
        return json.dumps(document, sort_keys=True).encode(), JSON, None

    def _status_page(self, head: RequestHead) -> tuple[bytes, str, int | None]:
        document = self._document()
        if document is None:
            return b"No cluster state read from etcd yet.\n", TEXT, 503
        return render_status_page(document).encode(), "text/html; charset=utf-8", None

    def _metrics(self, head: RequestHead) -> tuple[bytes, str, int | None]:
        return metrics_text(self.snapshot(), self.stats()), CONTENT_TYPE_LATEST, None

    _pages: ClassVar[
        dict[str, Callable[[FrontDoor, RequestHead], tuple[bytes, str, int | None]]]
    ] = {
        "/health": _health,
        "/ready": _ready,
        "/leader": _leader,
        "/api/v1/status": _status_json,
        "/metrics": _metrics,
        "/": _status_page,
        "/status": _status_page,
    }


TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


def client_family(transport: asyncio.BaseTransport) -> int:
    peer = transport.get_extra_info("peername")
    try:
        address = ipaddress.ip_address(peer[0])
    except (TypeError, ValueError, IndexError):
        return 4
    if address.version == 6 and address.ipv4_mapped is not None:  # type: ignore[union-attr]
        return 4
    return address.version


def valid_host(host: str) -> str | None:
    """The Host header if it is a plain host[:port] (it goes into a playlist)."""
    return host if host and _HOST.fullmatch(host) else None
