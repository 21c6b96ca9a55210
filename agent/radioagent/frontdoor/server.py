"""The public front door on ports 80 and 8000: listeners, sources, playlists, status.

- `GET`/`HEAD /<mount>`: the director picks a node; 302 to its `/_stream/<mount>`, or
  served here. `/_stream/<mount>` is the passthrough (fanned out from the local Icecast).
- `SOURCE`/`PUT /<mount>`: piped to the leader's Icecast (`/_live/<mount>`).
- `GET /admin/metadata`, `/admin.cgi`: an encoder's song title, stored in etcd; every
  node's fan-out carries it to ICY listeners.
- `/<mount>.m3u|.pls|.xspf`, `/` (HTML status), `/api/v1/status`, `/health`, `/ready`,
  `/leader`, `/metrics`.

The parts: connection.py reads each request head, route.py decides what it gets, and
the door carries the decision out: a response, the fan-out (fanout.py), a source pipe
(sources.py) or a page (pages.py). It also keeps the counters.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, assert_never

from radioagent.certfacts import CertificateFacts
from radioagent.config import FrontDoorSettings
from radioagent.frontdoor import restart
from radioagent.frontdoor.access import AccessLog, AccessRecord, default_sink, new_record
from radioagent.frontdoor.certificate import Certificate, small_tls_buffers
from radioagent.frontdoor.connection import Connection
from radioagent.frontdoor.fanout import FanoutLimits, Passthrough
from radioagent.frontdoor.http import (
    CORS_HEADERS,
    RETRY_AFTER_SECONDS,
    HttpError,
    RequestHead,
    response,
)
from radioagent.frontdoor.limits import AddressBook, AddressLimits, Kind, is_within, networks
from radioagent.frontdoor.metadata import TITLE_PATHS, TitleUpdate, title_stored_reply
from radioagent.frontdoor.pages import API_PREFIX, page_for
from radioagent.frontdoor.route import (
    SOURCE_METHODS,
    Decision,
    FailsafePing,
    HlsPlaylist,
    HlsSegment,
    Page,
    PipeSource,
    Redirect,
    Refuse,
    Reply,
    Routing,
    Serve,
    SetTitle,
    full,
    hls_response,
    route,
)
from radioagent.frontdoor.sources import SourcePipes, studio_limits
from radioagent.frontdoor.view import AgentSnapshot, CertificateStats, FrontDoorStats
from radioagent.hls.playlists import PLAYLIST_TYPE, SEGMENT_TYPES
from radioagent.hls.service import HlsService, TooManyMounts, hls_elsewhere
from radioagent.nowplaying import mount_icy_titles, title_problem
from radioagent.store.errors import Conflict, EtcdUnavailable, NoSuchMount
from radioagent.traffic.director import Director
from radioagent.traffic.prediction import report_window

log = logging.getLogger(__name__)
# Stores a title: (mount, title, Unix time) -> whether it changed the title.
TitleWriter = Callable[[str, str, float], Awaitable[bool]]
# Answers a failsafe ping's query: (HTTP status, JSON body).
FailsafeAnswer = Callable[[str], tuple[int, bytes]]


@dataclass
class FrontDoorCounters:
    refused: Counter[int] = field(default_factory=Counter)  # by HTTP status
    connections: int = 0


class FrontDoor:
    def __init__(
        self,
        settings: FrontDoorSettings,
        node_name: str,
        snapshot: Callable[[], AgentSnapshot],
        icecast_address: tuple[str, int],
        *,
        prediction_window: float,
        store_title: TitleWriter,
        answer_failsafe: FailsafeAnswer | None = None,
    ) -> None:
        self.settings = settings
        self.snapshot = snapshot
        self.store_title = store_title
        self.answer_failsafe = answer_failsafe  # None: this node takes no part
        self.counters = FrontDoorCounters()
        self.passthrough = Passthrough(*icecast_address, FanoutLimits())
        self.hls = HlsService(icecast_address)
        self.director = Director(node_name, prediction_window)
        self.sources = SourcePipes(on_title=self._title_in_stream)
        self._routing = Routing(self.director, self.listeners_by_mount, settings.public_name)
        self._servers: list[asyncio.Server] = []
        self._inherited = restart.Inherited()  # what the last process left: see restart.py
        self._view: AgentSnapshot  # the snapshot of the last loop: see update()
        self._titles_from: object = None  # the state the fan-out's titles were made from
        self._tasks: set[asyncio.Task[None]] = set()
        self._stream_titles = asyncio.Lock()  # stored in the order the studios sent them
        self.certificate: Certificate | None = None  # with HTTPS ports
        self.addresses = AddressBook(address_limits(settings))
        self.access_log = AccessLog(default_sink(settings.access_log))
        self._internal = networks(settings.internal_networks)

    async def start(self) -> None:
        self.update()
        settings = self.settings
        self._inherited = restart.take_inherited(
            settings.bind_address, (*settings.ports, *settings.tls_ports)
        )
        for port in settings.ports:
            self._servers += await restart.serve(
                self._connection, settings.bind_address, port, self._inherited
            )
        await restart.resume_listeners(self._inherited, self._connection, self.passthrough)
        if settings.tls_cert_file and os.path.exists(settings.tls_cert_file):
            await self.open_tls()
        # else the cluster has no certificate yet (ACME): the agent opens them once it has

    @property
    def open_tls_ports(self) -> tuple[int, ...]:
        return self.settings.tls_ports if self.certificate is not None else ()

    async def open_tls(self, facts: CertificateFacts | None = None) -> None:
        """The HTTPS ports, the first time; after that, the files loaded again if they
        changed (a renewal: open connections keep the certificate they have). `facts`:
        the certificate's, if the caller read them already."""
        settings = self.settings
        if self.certificate is not None:
            self.certificate.reload_if_changed(facts)
            return
        if not (settings.tls_ports and settings.tls_cert_file and settings.tls_key_file):
            return
        self.certificate = Certificate(
            settings.tls_cert_file, settings.tls_key_file, settings.https_name, facts
        )
        small_tls_buffers()
        for port in settings.tls_ports:
            self._servers += await restart.serve(
                self._connection,
                settings.bind_address,
                port,
                self._inherited,
                ssl=self.certificate.context,
                ssl_handshake_timeout=settings.header_timeout,
            )

    def _connection(self) -> Connection:
        return Connection(self, self.settings.header_timeout)

    async def hand_over(self) -> None:
        """The first step of a stop: the listeners to the next process (restart.py), before
        the rest of the stop (leadership handed on, the holding feeds ended) can end their
        streams here. New connections wait in the listening sockets' backlog for it.
        Without a service manager to keep them, nothing changes."""
        if not restart.can_hand_over():
            return
        for server in self._servers:
            server.close()
        await restart.hand_over_listeners(self.passthrough)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        self.passthrough.close()
        self.hls.close()
        self.sources.close()
        for task in self._tasks:
            task.cancel()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def update(self) -> None:
        """After each loop: a fresh view for the director; studios piped to a leader that
        no longer leads go on with the new one (sources.py)."""
        view = self._view = self.snapshot()
        self.director.sent.window = report_window(view.timing.loop_wait)
        if view.state is not None:
            self.director.update(view.state.nodes, view.state.draining, view.state.settings)
            self._update_titles(view)
            settings = view.state.settings
            self.hls.configure(settings.hls_target_seconds, settings.hls_window)
            self.hls.tick(view.state.mounts, *hls_elsewhere(view.state.nodes.values()))
            # Every node hears of a change within two loops (the leader's, then its own).
            self.hls.follow(view.leader, 2 * view.timing.loop_wait + 1)
        self.sources.limits = studio_limits(view.timing, self.settings.studio_backlog_seconds)
        self.sources.follow(view.leader, view.epoch)
        if self.certificate is not None:
            self.certificate.reload_if_changed()

    def _update_titles(self, view: AgentSnapshot) -> None:
        """The ICY block of each mount's title, for the fan-out (remade only when the
        state read changed)."""
        state = view.state
        if state is None or state is self._titles_from:
            return
        self._titles_from = state
        self.passthrough.titles = {
            mount.path: mount_icy_titles(mount, state.mounts, state.titles)
            for mount in state.mounts.values()
        }

    def stats(self) -> FrontDoorStats:
        fanout = self.passthrough.counters
        return FrontDoorStats(
            listeners=self.listeners_by_mount(),
            directions=dict(self.director.directed),
            refused=dict(self.counters.refused),
            bytes_by_mount={
                path.lstrip("/"): count for path, count in fanout.bytes_by_path.items()
            },
            slow_listeners_dropped=fanout.slow_listeners_dropped,
            resumed_in_place=fanout.resumed_in_place,
            resumed_after_gap=fanout.resumed_with_gap,
            sources_opened=self.sources.opened,
            sources_failed=self.sources.failed,
            sources_active=len(self.sources),
            sources_repiped=self.sources.repiped,
            sources_overflowed=self.sources.overflowed,
            sources_stalled=self.sources.stalled,
            connections=self.counters.connections,
            address_limited={kind.value: count for kind, count in self.addresses.refused.items()},
            locked_out=self.addresses.locked_out,
            hls_sessions=self.hls.sessions_by_mount(),
            hls_bytes_by_mount=dict(self.hls.bytes_by_mount),
            hls_held_bytes=self.hls.held_bytes(),
            certificate=None
            if self.certificate is None
            else CertificateStats(
                self.certificate.facts.not_after,
                self.certificate.reloads,
                self.certificate.reload_failures,
            ),
        )

    def listeners_by_mount(self) -> dict[str, int]:
        """Streaming listeners and HLS sessions: both are listeners to limits, to the
        policy's utilization and to the cluster's counts."""
        counts = {
            path.lstrip("/"): count
            for path, count in self.passthrough.listeners_by_path().items()
            if count
        }
        for name, sessions in self.hls.sessions_by_mount().items():
            counts[name] = counts.get(name, 0) + sessions
        return counts

    @property
    def bytes_out(self) -> int:
        """Audio bytes sent to listeners, streamed and as HLS segments."""
        return self.passthrough.counters.bytes_out + self.hls.bytes_out

    # --- what connections call -----------------------------------------------------------

    def connection_opened(self, connection: Connection) -> HttpError | None:
        self.counters.connections += 1
        if self.counters.connections > self.settings.max_connections:
            return HttpError(503, "too many connections")
        key = connection.address_key = self.addresses.key(connection.arrival.address)
        if not self.addresses.take(key, Kind.CONNECTION):
            return HttpError(429, "too many connections from your address")
        connection.counted.append(Kind.CONNECTION)
        return None

    def connection_closed(self, connection: Connection) -> None:
        self.counters.connections -= 1
        for kind in connection.counted:
            self.addresses.give_back(connection.address_key, kind)
        connection.counted.clear()

    def listener_resumed(self, connection: Connection) -> None:
        self.addresses.take(connection.address_key, Kind.LISTENER, force=True)
        connection.counted.append(Kind.LISTENER)

    def log_access(self, record: AccessRecord) -> None:
        self.access_log.write(record)

    def refused(self, status: int) -> None:
        self.counters.refused[status] += 1

    def handle(self, connection: Connection, head: RequestHead) -> None:
        # Listeners are routed on the view of the last loop (no snapshot per request on
        # the hot path); a source on a fresh one: leadership may have moved since.
        view = self.snapshot() if head.method in SOURCE_METHODS else self._view
        decision = route(head, view, connection.arrival, self._routing)
        decision = self._bounded(connection, head, decision)
        connection.access = access_record(connection, head, decision)
        match decision:
            case Redirect():
                connection.reply(
                    response(
                        302,
                        b"",
                        headers=(("Location", decision.location), *CORS_HEADERS),
                        keep_alive=decision.keep_alive,
                    ),
                    decision.keep_alive,
                )
            case Reply():
                connection.reply(decision.data, decision.keep_alive)
            case Refuse():
                connection.fail(decision.error, retry_after=decision.retry_after)
            case Serve():
                connection.become_listener(self.passthrough, decision.mount.path, decision.icy)
            case PipeSource():
                pipe = self.sources.open(
                    connection, head, decision.mount, decision.leader, decision.epoch
                )
                connection.become_source(pipe)
            case SetTitle():
                connection.hold()
                self._spawn(self._set_title(connection, decision.update))
            case Page():
                self._page(connection, head, decision.path)
            case HlsPlaylist():
                self._hls_playlist(connection, decision)
            case HlsSegment():
                self._hls_segment(connection, decision)
            case FailsafePing():
                self._failsafe(connection, decision)
            case _:
                assert_never(decision)

    def _bounded(self, connection: Connection, head: RequestHead, decision: Decision) -> Decision:
        """The decision within the client address's bounds: a login-type request from an
        address locked out for failed logins is refused before its credentials are looked
        at; a listener or source over its address's count is refused."""
        key = connection.address_key
        if head.method in SOURCE_METHODS or head.path in TITLE_PATHS:
            now = time.monotonic()
            locked = self.addresses.locked_for(key, now)
            if locked > 0:
                error = HttpError(429, "too many failed logins from your address")
                return Refuse(error, math.ceil(locked))
            if isinstance(decision, Refuse) and decision.error.status == 401:
                self.addresses.failed(key, now)
        kind = Kind.LISTENER if isinstance(decision, Serve) else None
        kind = Kind.SOURCE if isinstance(decision, PipeSource) else kind
        if kind is not None:
            if not self.addresses.take(key, kind):
                error = HttpError(429, f"too many {kind.value}s from your address")
                return Refuse(error, RETRY_AFTER_SECONDS)
            connection.counted.append(kind)
        return decision

    async def _set_title(self, connection: Connection, update: TitleUpdate) -> None:
        try:
            changed = await self.store_title(update.mount, update.title, time.time())
        except EtcdUnavailable as error:
            log.warning("title for %s not stored: %s", update.mount, error)
            connection.fail(
                HttpError(503, "the cluster store does not answer"), RETRY_AFTER_SECONDS
            )
            return
        except NoSuchMount:
            connection.fail(HttpError(404, "no such mount"))
            return
        except Conflict as error:
            connection.fail(HttpError(409, str(error)))
            return
        if changed:
            log.info("title of %s: %r", update.mount, update.title)
        body, content_type = title_stored_reply(update)
        connection.reply(response(200, body, content_type=content_type), keep_alive=False)

    def _title_in_stream(self, mount: str, title: str) -> None:
        """An Ogg studio's title (its chain's comments), stored as an encoder's update is."""
        problem = title_problem(title)
        if problem is not None:
            log.warning("title in the stream of %s not kept: %s", mount, problem)
            return
        self._spawn(self._store_stream_title(mount, title, time.time()))

    async def _store_stream_title(self, mount: str, title: str, at: float) -> None:
        async with self._stream_titles:
            try:
                changed = await self.store_title(mount, title, at)
            except (EtcdUnavailable, Conflict) as error:
                log.warning("title in the stream of %s not stored: %s", mount, error)
                return
        if changed:
            log.info("title of %s (in its stream): %r", mount, title)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _hls_playlist(self, connection: Connection, decision: HlsPlaylist) -> None:
        """A new session is a new listener: the node's and the mount's limits apply."""
        mount = decision.mount
        if self.hls.is_new(mount, decision.session) and full(
            self._view.listener_limit, mount, self.listeners_by_mount()
        ):
            connection.fail(
                HttpError(503, "this node has no room for another listener"),
                retry_after=RETRY_AFTER_SECONDS,
            )
            return
        try:
            text = self.hls.media_playlist(mount, decision.session)
        except TooManyMounts as error:
            connection.fail(HttpError(503, str(error)), retry_after=RETRY_AFTER_SECONDS)
            return
        # Each playlist is new a target duration later: players must not keep it.
        self._hls_reply(connection, decision, text.encode(), PLAYLIST_TYPE, "no-cache")

    def _hls_segment(self, connection: Connection, decision: HlsSegment) -> None:
        data = self.hls.segment(decision.mount, decision.sequence, decision.session)
        if data is None:
            connection.fail(HttpError(404, "no such segment on this node (not cut, or gone)"))
            return
        # A segment never changes once cut; it stays fetchable for about two windows.
        content_type = SEGMENT_TYPES[decision.mount.format.codec]
        self._hls_reply(connection, decision, data, content_type, "max-age=60")

    @staticmethod
    def _hls_reply(
        connection: Connection,
        decision: HlsPlaylist | HlsSegment,
        body: bytes,
        content_type: str,
        cache: str,
    ) -> None:
        data = hls_response(body, content_type, cache, decision.keep_alive, decision.head_only)
        connection.reply(data, decision.keep_alive)

    def _failsafe(self, connection: Connection, decision: FailsafePing) -> None:
        if self.answer_failsafe is None:
            connection.fail(HttpError(404, "this node has no failsafe key"))
            return
        status, body = self.answer_failsafe(decision.query)
        if status != 200:
            self.refused(status)
        connection.reply(
            response(status, body, content_type="application/json", keep_alive=decision.keep_alive),
            decision.keep_alive,
        )

    def _page(self, connection: Connection, head: RequestHead, path: str) -> None:
        render = page_for(path)
        if render is None:  # route() checked; a page never disappears
            raise LookupError(path)
        internal = is_within(connection.arrival.address, self._internal)
        page = render(self.snapshot(), self.stats, internal)
        connection.reply(
            response(
                page.status,
                page.body,
                content_type=page.content_type,
                # Web players read the API (now playing); no page of the node's own needs
                # another site's script to read it.
                headers=CORS_HEADERS if path.startswith(API_PREFIX) else (),
                keep_alive=head.keep_alive,
                head_only=head.method == "HEAD",
            ),
            head.keep_alive,
        )


def address_limits(settings: FrontDoorSettings) -> AddressLimits:
    return AddressLimits(
        connections=settings.per_address_connections,
        listeners=settings.per_address_listeners,
        sources=settings.per_address_sources,
        failed_authentications=settings.failed_logins,
        failure_window_seconds=settings.failed_login_window,
        unlimited=settings.unlimited_networks,
    )


def access_record(
    connection: Connection, head: RequestHead, decision: Decision
) -> AccessRecord | None:
    """A record for listeners', sources' and title requests (refused ones included); none
    for pages, playlists, HLS and the cluster's own requests."""
    if head.method in SOURCE_METHODS:
        kind = "source"
    elif head.path in TITLE_PATHS:
        kind = "title"
    elif isinstance(decision, Redirect | Serve | Refuse):
        kind = "listener"
    else:
        return None
    return new_record(
        kind, connection.arrival.address, head.method, head.path, head.header("user-agent")
    )
