"""The public HTTP server: /health, /ready, /leader, /api/v1/status, /metrics."""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from radioagent.config import FrontDoorSettings
from radioagent.frontdoor.metrics import metrics_text
from radioagent.frontdoor.view import AgentSnapshot
from radioagent.status import status_document


class FrontDoor:
    def __init__(self, settings: FrontDoorSettings, snapshot: Callable[[], AgentSnapshot]) -> None:
        self.settings = settings
        self.snapshot = snapshot
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/ready", self.ready)
        app.router.add_get("/leader", self.leader)
        app.router.add_get("/api/v1/status", self.status)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        for port in self.settings.ports:
            await web.TCPSite(self._runner, self.settings.bind_address, port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def health(self, request: web.Request) -> web.Response:
        now = self.snapshot()
        if not now.alive:
            return web.Response(
                status=503, text=f"loop stalled for {now.seconds_since_cycle:.0f} s\n"
            )
        return web.Response(text="ok\n")

    async def ready(self, request: web.Request) -> web.Response:
        ready, reason = self.snapshot().readiness()
        return web.Response(status=200 if ready else 503, text=f"{reason}\n")

    async def leader(self, request: web.Request) -> web.Response:
        now = self.snapshot()
        if now.leading:
            return web.Response(text=f"leader (epoch {now.epoch})\n")
        return web.Response(status=503, text="not the leader\n")

    async def status(self, request: web.Request) -> web.Response:
        now = self.snapshot()
        if now.state is None:
            return web.json_response({"error": "no cluster state read yet"}, status=503)
        document = status_document(now.state)
        document["node"] = now.node_name
        return web.json_response(
            document,
            dumps=lambda value: json.dumps(value, sort_keys=True),
            headers={"Access-Control-Allow-Origin": "*"},
        )

    async def metrics(self, request: web.Request) -> web.Response:
        body = metrics_text(self.snapshot)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
