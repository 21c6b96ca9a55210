"""One front door connection: the only owner of its transport, mode and buffer.

It reads request heads (bounded in size and time, parsed strictly by http.py) and hands
each to the door; the door answers through `reply`/`fail`, or hands the connection over
to a mount's fan-out (`become_listener`) or to a pipe to the leader (`become_source`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from enum import Enum
from typing import Protocol, cast

from radioagent.frontdoor.access import AccessRecord
from radioagent.frontdoor.fanout import MountHub, Passthrough
from radioagent.frontdoor.handover import ResumePoint
from radioagent.frontdoor.http import (
    MAX_HEAD_BYTES,
    RETRY_AFTER_SECONDS,
    HttpError,
    RequestHead,
    check_request_line,
    error_response,
    head_end,
    parse_request_head,
)
from radioagent.frontdoor.limits import Kind
from radioagent.frontdoor.route import Arrival
from radioagent.frontdoor.sources import StudioPipe

MAX_IGNORED_BYTES = 64 * 1024  # what a listener may send after its request
LISTENER_SEND_BUFFER = 64 * 1024  # the kernel doubles it: ~8 s of a 128 kbps stream


class Mode(Enum):
    HEAD = "head"  # reading a request head
    LISTENER = "listener"
    SOURCE = "source"
    WAITING = "waiting"  # for an answer the door is working out (a title being stored)
    CLOSED = "closed"


class Door(Protocol):
    """What a connection asks of the front door that accepted it."""

    def connection_opened(self, connection: Connection) -> HttpError | None:
        """Count a new connection; the error to answer when there are too many."""

    def connection_closed(self, connection: Connection) -> None:
        """Give back what the connection was counted as."""

    def listener_resumed(self, connection: Connection) -> None:
        """Count a listener the last process handed over."""

    def log_access(self, record: AccessRecord) -> None: ...

    def refused(self, status: int) -> None:
        """Count a request answered with an error status."""

    def handle(self, connection: Connection, head: RequestHead) -> None:
        """Act on one request head."""


class Connection(asyncio.Protocol):
    # Set in connection_made, which asyncio calls before anything else.
    transport: asyncio.Transport
    arrival: Arrival

    def __init__(self, door: Door, header_timeout: float) -> None:
        self._door = door
        self._header_timeout = header_timeout
        self._mode = Mode.HEAD
        self._buffer = bytearray()
        self.hub: MountHub | None = None
        self._pipe: StudioPipe | None = None
        self._ignored = 0
        self._loop = asyncio.get_running_loop()
        # One timer per connection, moved lazily: a keep-alive request only pushes the
        # deadline; the timer, when it fires early, sleeps again until it.
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self.address_key: str | None = None  # what it counts as (limits.py); None: unbounded
        self.counted: list[Kind] = []  # what the door counted it as, given back at the end
        self.access: AccessRecord | None = None  # the request being logged
        self.sent = 0  # bytes written to a listener

    # --- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.arrival = arrival_of(self.transport)
        refusal = self._door.connection_opened(self)
        if refusal is not None:
            self.fail(refusal, retry_after=RETRY_AFTER_SECONDS)
            return
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self._mode is Mode.HEAD:
            if not self._buffer and head_end(data) == len(data):
                self._take_head(data)  # one whole request, as nearly every client sends
                return
            self._buffer += data
            self._read_heads()
        elif self._mode is Mode.SOURCE:
            if self.access is not None:
                self.access.bytes += len(data)
            if self._pipe is not None:
                self._pipe.from_client(data)  # bounded there: past its backlog, it cuts
        elif self._mode is Mode.LISTENER:
            self._ignored += len(data)
            if self._ignored > MAX_IGNORED_BYTES:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._door.connection_closed(self)
        if self.access is not None:
            if self._mode is Mode.LISTENER:
                self.access.bytes = self.sent
            self._door.log_access(self.access)
            self.access = None
        self._mode = Mode.CLOSED
        self._cancel_timer()
        if self.hub is not None:
            self.hub.leave(self)
        if self._pipe is not None:
            self._pipe.client_gone()

    # --- answers (the door, the hubs) ----------------------------------------------------

    def reply(self, data: bytes, keep_alive: bool) -> None:
        if self._mode is Mode.CLOSED:
            return  # the client left while the answer was being worked out
        self.transport.write(data)
        if self.access is not None and self._mode in (Mode.HEAD, Mode.WAITING):
            # An answer that ends the request (not a stream): logged now.
            self.access.bytes = len(data)
            if not self.access.status:
                self.access.status = answer_status(data)
            self._door.log_access(self.access)
            self.access = None
        if keep_alive:
            self._arm_timer()
        else:
            self._mode = Mode.CLOSED
            self.transport.close()

    def fail(self, error: HttpError, retry_after: int | None = None) -> None:
        self._door.refused(error.status)
        if self.access is not None:
            self.access.status = error.status
        self.reply(error_response(error, retry_after=retry_after), keep_alive=False)

    def start_stream(self, data: bytes) -> None:
        self.transport.write(data)
        self.sent += len(data)
        if self.access is not None:
            self.access.status = answer_status(data)

    def leader_answered(self, status: int) -> None:
        """A source's answer from the leader (passed on to the studio as it came)."""
        if self.access is not None and status != 100:
            self.access.status = status

    def hold(self) -> None:
        """Read nothing more until the door answers (it then closes the connection)."""
        self._cancel_timer()
        self._mode = Mode.WAITING
        self.transport.pause_reading()

    # --- hand-overs ----------------------------------------------------------------------

    def become_listener(self, passthrough: Passthrough, path: str, icy: bool) -> None:
        """From now on the connection only receives the mount's audio."""
        self._listen()
        self.hub = passthrough.join(path, icy, self)

    def resume_listener(self, passthrough: Passthrough, point: ResumePoint) -> None:
        """A listener the last agent process handed over, its answer long sent: it goes
        on where it was in the stream."""
        self._listen()
        self._door.listener_resumed(self)
        self.hub = passthrough.resume(point, self)

    def _listen(self) -> None:
        self._cancel_timer()
        self._mode = Mode.LISTENER
        self._buffer.clear()
        # A fixed send buffer: Linux would grow it to megabytes for a listener that stops
        # reading, before our own bound on queued bytes is ever reached.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LISTENER_SEND_BUFFER)

    def become_source(self, pipe: StudioPipe) -> None:
        """From now on what the studio sends goes to `pipe` (what came with the head too)."""
        self._cancel_timer()
        self._mode = Mode.SOURCE
        self._pipe = pipe
        early, self._buffer = bytes(self._buffer), bytearray()
        if self.access is not None:
            self.access.bytes += len(early)
        if early:
            pipe.from_client(early)

    def pipe_failed(self, error: HttpError, retry_after: int) -> None:
        self._pipe = None
        self.fail(error, retry_after=retry_after)

    # --- internals -----------------------------------------------------------------------

    def _read_heads(self) -> None:
        while self._mode is Mode.HEAD and self._buffer:
            end = head_end(self._buffer)
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    self.fail(HttpError(431, f"request head larger than {MAX_HEAD_BYTES} bytes"))
                elif b"\n" in self._buffer:
                    self._check_request_line()
                return
            raw = bytes(self._buffer[:end])
            del self._buffer[:end]
            self._take_head(raw)

    def _take_head(self, raw: bytes) -> None:
        try:
            head = parse_request_head(raw)
        except HttpError as error:
            self.fail(error)
            return
        self._door.handle(self, head)

    def _check_request_line(self) -> None:
        """Refuse bytes that are not HTTP at once rather than at the head timeout."""
        line = bytes(self._buffer[: self._buffer.index(b"\n") + 1])
        try:
            check_request_line(line)
        except HttpError as error:
            self.fail(error)

    def _arm_timer(self) -> None:
        self._deadline = self._loop.time() + self._header_timeout
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._timer_fired)

    def _cancel_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timer_fired(self) -> None:
        self._timer = None
        if self._deadline is None:
            return
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._timer_fired)
            return
        self._deadline = None
        self._timed_out()

    def _timed_out(self) -> None:
        if self._mode is Mode.HEAD:
            if self._buffer:
                self.fail(HttpError(408, "request head not received in time"))
            else:
                self._mode = Mode.CLOSED
                self.transport.close()  # an idle keep-alive connection


def answer_status(data: bytes) -> int:
    """The status code of a response we wrote ("HTTP/1.x NNN ..." or "ICY NNN ...")."""
    parts = data[:32].split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def arrival_of(transport: asyncio.BaseTransport) -> Arrival:
    address = client_address(transport)
    return Arrival(
        transport.get_extra_info("sockname")[1],
        4 if address is None else address.version,
        tls=transport.get_extra_info("sslcontext") is not None,
        address="" if address is None else str(address),
    )


def client_address(
    transport: asyncio.BaseTransport,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address; one reaching a dual-stack socket over IPv4 (an IPv4-mapped
    IPv6 address) is an IPv4 one: it may not have IPv6 at all."""
    peer = transport.get_extra_info("peername")
    try:
        address = ipaddress.ip_address(peer[0])
    except (TypeError, ValueError, IndexError):
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
