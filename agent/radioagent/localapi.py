"""The agent's loopback HTTP server, for the node's own Icecast: source authentication
(URL stream_auth) and relay redirects to the current leader. Thin I/O over
icecast/callbacks.py.

A relay of a produced mount (a transcode, a programme) whose source is awaited (the
mount is claimed, or was freed moments ago: a takeover) but not on the leader yet is
held, the leader probed every RELAY_PROBE_S, for up to RELAY_HOLD_S: Icecast, told no,
would retry only a second later (<master-update-interval>) and leave listeners on the
holding audio ~1.5 s after the new owner is on air. Produced mounts nobody has claimed
for longer (nobody can run them) and studios' mounts (many have no source for hours)
are not held: the probes would multiply the leader's load for nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from radioagent.config import LocalApiSettings
from radioagent.icecast.callbacks import decide_source, relay_target
from radioagent.icecast.render import RELAY_PATH_PREFIX, STREAM_AUTH_PATH
from radioagent.model import MountSpec, NodeStatus

log = logging.getLogger(__name__)
RELAY_RETRY_AFTER_SECONDS = "1"
RELAY_HOLD_S = 10.0  # under the 15 s Icecast waits for a relay's response head (<header-timeout>)
RELAY_PROBE_S = 0.2
PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class LocalView:
    """What the answers depend on, read from the agent at the moment of each request."""

    leading: bool
    mounts: dict[str, MountSpec]
    leader: NodeStatus | None
    # Produced mounts whose source is awaited: claimed, or free for under RELAY_HOLD_S.
    awaited: frozenset[str] = frozenset()


class LocalApi:
    def __init__(self, settings: LocalApiSettings, view: Callable[[], LocalView]) -> None:
        self.settings = settings
        self.view = view
        self.sources_allowed = 0
        self.sources_refused = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_post(STREAM_AUTH_PATH, self.stream_auth)
        app.router.add_get(RELAY_PATH_PREFIX + "{mount}", self.relay)
        return app

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S), auto_decompress=False
        )
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.bind_address, self.settings.port)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def stream_auth(self, request: web.Request) -> web.Response:
        form = await request.post()
        mount_path = str(form.get("mount", ""))
        view = self.view()
        decision = decide_source(
            view.mounts,
            mount_path,
            str(form.get("user", "")),
            str(form.get("pass", "")),
            view.leading,
        )
        if decision.allowed:
            self.sources_allowed += 1
            log.info("source accepted on %s from %s", mount_path, form.get("ip", "?"))
            return web.Response(headers={"icecast-auth-user": "1"})
        self.sources_refused += 1
        log.info(
            "source refused on %s from %s: %s", mount_path, form.get("ip", "?"), decision.reason
        )
        return web.Response(headers={"icecast-auth-message": decision.reason})

    async def relay(self, request: web.Request) -> web.Response:
        name = request.match_info["mount"]
        deadline = time.monotonic() + RELAY_HOLD_S
        for _ in range(int(RELAY_HOLD_S / RELAY_PROBE_S) + 1):  # bounded by the deadline too
            view = self.view()
            target = relay_target(view.mounts, name, view.leader)
            if target.url is None:
                return unavailable(target.reason)
            held = view.mounts[name].produced and name in view.awaited
            if not held or await self._has_source(target.url):
                # 302, not 307: Icecast 2.4's relay follows only 302.
                raise web.HTTPFound(target.url)
            if time.monotonic() + RELAY_PROBE_S > deadline:
                break
            await asyncio.sleep(RELAY_PROBE_S)  # a probe period, bounded by the deadline
        return unavailable(f"no source for /{name} on the leader yet")

    async def _has_source(self, url: str) -> bool:
        """Whether the leader's Icecast serves `url` (a source is connected): the head
        only, the connection closed before any audio is read."""
        if self._session is None:
            raise RuntimeError("the local API is not started")
        try:
            async with self._session.get(url) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


def unavailable(reason: str) -> web.Response:
    return web.Response(
        status=503, text=reason + "\n", headers={"Retry-After": RELAY_RETRY_AFTER_SECONDS}
    )
