"""The front door's part in an agent restart (handover.py says how listeners go on).

Its listening sockets live in systemd's file descriptor store from the moment they are
bound, so connections made while the agent restarts wait in their backlog instead of
being refused, a crash included. On a stop, its listeners go to the store too, named by
where they are in their stream; the next process takes both back. TLS listeners cannot
move (their session keys stay in this process) and close as before.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from radioagent import fdstore
from radioagent.frontdoor.connection import Connection
from radioagent.frontdoor.fanout import Listener, Passthrough
from radioagent.frontdoor.handover import (
    ResumePoint,
    listener_fd_name,
    listening_fd_name,
    parse_listener_fd_name,
)

log = logging.getLogger(__name__)
DRAIN_SECONDS = 1.0  # for what a listener's socket has not taken yet, before the hand-over
DRAIN_POLL_SECONDS = 0.02
BACKLOG = 1024


@dataclass
class Inherited:
    """What the last process left in the store for this one."""

    listening: dict[str, list[socket.socket]] = field(default_factory=dict)  # by name
    listeners: list[tuple[str, ResumePoint, socket.socket]] = field(default_factory=list)

    def take_listening(self, name: str) -> list[socket.socket]:
        return self.listening.pop(name, [])


def take_inherited(bind_address: str, ports: tuple[int, ...]) -> Inherited:
    """Sort what systemd passed: listening sockets still wanted and listeners to resume
    are kept; anything else is closed and taken out of the store."""
    inherited = Inherited()
    wanted = {listening_fd_name(bind_address, port) for port in ports}
    for fd, name in fdstore.inherited().items():
        point = parse_listener_fd_name(name)
        if name in wanted:
            inherited.listening.setdefault(name, []).append(socket.socket(fileno=fd))
        elif point is not None:
            inherited.listeners.append((name, point, socket.socket(fileno=fd)))
        else:
            log.warning("closing a descriptor the last agent left as %r: not wanted now", name)
            socket.socket(fileno=fd).close()
            fdstore.forget(name)
    return inherited


async def serve(
    factory: Callable[[], Connection],
    bind_address: str,
    port: int,
    inherited: Inherited,
    **options: Any,
) -> list[asyncio.Server]:
    """A server on `port`: on the sockets the last process left, else on new ones, which
    go to the store."""
    loop = asyncio.get_running_loop()
    name = listening_fd_name(bind_address, port)
    kept = inherited.take_listening(name)
    if kept:
        return [
            await loop.create_server(factory, sock=sock, backlog=BACKLOG, **options)
            for sock in kept
        ]
    server = await loop.create_server(factory, bind_address, port, backlog=BACKLOG, **options)
    if fdstore.available():
        fdstore.store(name, [sock.fileno() for sock in server.sockets])
    return [server]


async def resume_listeners(
    inherited: Inherited, factory: Callable[[], Connection], passthrough: Passthrough
) -> int:
    """The listeners the last process handed over, back on their mounts' streams."""
    loop = asyncio.get_running_loop()
    resumed = 0
    for _, point, sock in inherited.listeners:
        try:
            _, connection = await loop.connect_accepted_socket(factory, sock)
        except OSError as error:  # it hung up meanwhile
            log.info("a listener handed over is gone: %s", error)
            sock.close()
            continue
        if not connection.transport.is_closing():
            connection.resume_listener(passthrough, point)
            resumed += 1
    for name in {name for name, _, _ in inherited.listeners}:
        fdstore.forget(name)
    inherited.listeners.clear()
    if resumed:
        log.info("took %d listeners over from the last agent process", resumed)
    return resumed


def can_hand_over() -> bool:
    return fdstore.available()


async def hand_over_listeners(passthrough: Passthrough) -> int:
    """Leave this node's listeners to the next process: upstreams stop, what was sent
    reaches the sockets (a listener that takes nothing for DRAIN_SECONDS is left out),
    then each socket goes to the store and this process lets go of it without a word
    to the client. The caller checks `can_hand_over` first."""
    handed = [
        (point, [listener for listener in listeners if _movable(listener)])
        for point, listeners in passthrough.hand_over()
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_SECONDS
    while loop.time() < deadline and any(
        _unsent(ls) for _, listeners in handed for ls in listeners
    ):
        await asyncio.sleep(DRAIN_POLL_SECONDS)  # asyncio has no wait for an empty buffer
    count = 0
    for point, listeners in handed:
        ready = [ls for ls in listeners if not _unsent(ls) and not ls.transport.is_closing()]
        name = listener_fd_name(point)
        if name is None or not ready:
            continue
        sockets = [ls.transport.get_extra_info("socket") for ls in ready]
        if fdstore.store(name, [sock.fileno() for sock in sockets]):
            for listener in ready:
                listener.transport.abort()  # closes our descriptor: the store keeps its own
            count += len(ready)
    log.info(
        "handed %d listeners over to the next agent process (of %d on the fan-out)",
        count,
        sum(passthrough.listeners_by_path().values()),
    )
    return count


def _movable(listener: Listener) -> bool:
    transport = listener.transport
    return transport.get_extra_info("sslcontext") is None and not transport.is_closing()


def _unsent(listener: Listener) -> bool:
    return listener.transport.get_write_buffer_size() > 0
