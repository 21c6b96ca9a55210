"""The agent's loopback HTTP server, for the node's own Icecast: source authentication
(URL stream_auth) and relay redirects to the current leader. Thin I/O over
icecast/callbacks.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from radioagent.config import LocalApiSettings
from radioagent.icecast.callbacks import decide_source, relay_target
from radioagent.icecast.render import RELAY_PATH_PREFIX, STREAM_AUTH_PATH
from radioagent.model import MountSpec, NodeStatus

log = logging.getLogger(__name__)
RELAY_RETRY_AFTER_SECONDS = "1"


@dataclass(frozen=True)
class LocalView:
    """What the answers depend on, read from the agent at the moment of each request."""

    leading: bool
    mounts: dict[str, MountSpec]
    leader: NodeStatus | None


class LocalApi:
    def __init__(self, settings: LocalApiSettings, view: Callable[[], LocalView]) -> None:
        self.settings = settings
        self.view = view
        self.sources_allowed = 0
        self.sources_refused = 0
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_post(STREAM_AUTH_PATH, self.stream_auth)
        app.router.add_get(RELAY_PATH_PREFIX + "{mount}", self.relay)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.bind_address, self.settings.port)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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
        view = self.view()
        target = relay_target(view.mounts, request.match_info["mount"], view.leader)
        if target.url is None:
            return web.Response(
                status=503,
                text=target.reason + "\n",
                headers={"Retry-After": RELAY_RETRY_AFTER_SECONDS},
            )
        # 302, not 307: Icecast 2.4's relay follows only 302.
        raise web.HTTPFound(target.url)
