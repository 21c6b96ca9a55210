"""The agent's answer to its Icecast's relay requests: a produced mount whose source is
awaited (claimed, or freed moments ago) but not on the leader yet is held until it is
(then 302) or for RELAY_HOLD_S (then 503); anything else is answered at once. A real
LocalApi on loopback, and a stand-in leader (aiohttp) whose live mount appears after a
few probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from radioagent import localapi
from radioagent.config import LocalApiSettings
from radioagent.localapi import LocalApi, LocalView
from radioagent.model import parse_mount
from radioagent.transcoding.assignment import awaited_sources
from tests.harness.ports import LOOPBACK, free_port
from tests.unit.builders import node_status

STUDIO = parse_mount({"name": "live.mp3", "source_password": "pw"})
LOW = parse_mount(
    {
        "name": "low.mp3",
        "source_password": "pw",
        "transcode": {"parent": "live.mp3", "format": {"bitrate_kbps": 64}},
    }
)
MOUNTS = {"live.mp3": STUDIO, "low.mp3": LOW}


@pytest.fixture(autouse=True)
def short_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localapi, "RELAY_HOLD_S", 1.0)
    monkeypatch.setattr(localapi, "RELAY_PROBE_S", 0.05)


@asynccontextmanager
async def stand_in_leader(live_after_probes: int | None) -> AsyncIterator[tuple[int, list[str]]]:
    """A leader's Icecast: /_live/<mount> answers 404 until it has been asked
    `live_after_probes` times (None: never), then 200. Yields its port and the paths asked."""
    asked: list[str] = []

    async def live(request: web.Request) -> web.StreamResponse:
        asked.append(request.path)
        if live_after_probes is None or len(asked) <= live_after_probes:
            raise web.HTTPNotFound
        return web.Response(body=b"\xff\xfb" * 100, content_type="audio/mpeg")

    app = web.Application()
    app.router.add_get("/_live/{mount}", live)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield port, asked
    finally:
        await runner.cleanup()


async def relay_answer(
    mount: str, leader_port: int, awaited: frozenset[str]
) -> tuple[int, str | None, float]:
    view = LocalView(
        leading=False,
        mounts=MOUNTS,
        leader=node_status("n2", address=LOOPBACK, icecast_port=leader_port),
        awaited=awaited,
    )
    api = LocalApi(LocalApiSettings(port=free_port(), bind_address=LOOPBACK), lambda: view)
    await api.start()
    try:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            url = f"http://{LOOPBACK}:{api.settings.port}/relay/{mount}"
            async with session.get(url, allow_redirects=False) as response:
                return response.status, response.headers.get("Location"), time.monotonic() - started
    finally:
        await api.stop()


def test_an_awaited_produced_mount_is_held_until_its_source_is_on_the_leader() -> None:
    async def scenario() -> tuple[int, str | None, list[str], int]:
        async with stand_in_leader(live_after_probes=3) as (port, asked):
            status, location, _ = await relay_answer("low.mp3", port, frozenset({"low.mp3"}))
            return status, location, asked, port

    status, location, asked, port = asyncio.run(scenario())
    assert (status, location) == (302, f"http://{LOOPBACK}:{port}/_live/low.mp3")
    assert asked == ["/_live/low.mp3"] * 4  # three 404s, then the source


def test_a_source_that_does_not_come_is_refused_after_the_hold() -> None:
    async def scenario() -> tuple[int, float, int]:
        async with stand_in_leader(live_after_probes=None) as (port, asked):
            status, _, took = await relay_answer("low.mp3", port, frozenset({"low.mp3"}))
            return status, took, len(asked)

    status, took, probes = asyncio.run(scenario())
    assert status == 503
    assert probes >= 10  # probed all along the 1 s hold, every 0.05 s
    assert took < 3.0  # and answered when it ended


@pytest.mark.parametrize("mount", ["live.mp3", "low.mp3"])
def test_studios_mounts_and_produced_mounts_not_awaited_are_answered_at_once(mount: str) -> None:
    """A studio's mount may have no source for hours; a produced mount unclaimed for long
    has nobody to produce it: probing the leader for them would only load it."""

    async def scenario() -> tuple[int, list[str]]:
        async with stand_in_leader(live_after_probes=None) as (port, asked):
            status, _, _ = await relay_answer(mount, port, frozenset())
            return status, asked

    status, asked = asyncio.run(scenario())
    assert status == 302
    assert asked == []


def test_no_leader_known_is_refused_at_once() -> None:
    async def scenario() -> int:
        view = LocalView(leading=False, mounts=MOUNTS, leader=None, awaited=frozenset({"low.mp3"}))
        api = LocalApi(LocalApiSettings(port=free_port(), bind_address=LOOPBACK), lambda: view)
        await api.start()
        try:
            async with aiohttp.ClientSession() as session:
                url = f"http://{LOOPBACK}:{api.settings.port}/relay/low.mp3"
                async with session.get(url, allow_redirects=False) as response:
                    return response.status
        finally:
            await api.stop()

    assert asyncio.run(scenario()) == 503


def test_a_source_is_awaited_while_claimed_and_for_a_window_after_its_claim_went() -> None:
    claims = {"low.mp3": "n1"}
    freed = {"gone.mp3": 100.0, "stale.mp3": 80.0}
    assert awaited_sources(claims, freed, now=105.0, window=10.0) == {"low.mp3", "gone.mp3"}
    assert awaited_sources({}, freed, now=111.0, window=10.0) == frozenset()
