"""The node's HLS cuts: sessions, limits of memory, what a leader or source change marks.
Icecast is a closed port here: the cuts' streams never come, their segmenters are fed by
the tests."""

from __future__ import annotations

import asyncio

import pytest

from radioagent.hls.playlists import HlsSession
from radioagent.hls.service import MAX_MOUNTS, HlsService, TooManyMounts
from radioagent.model import parse_mount
from tests.unit.test_hls_segmenter import MP3_FRAME

LIVE = parse_mount({"name": "live.mp3", "source_password": "dj-secret-1"})
PLAYER = HlsSession("0123456789abcdef", in_uris=True)
CLOSED_PORT = ("127.0.0.1", 9)


def service(now: list[float]) -> HlsService:
    return HlsService(CLOSED_PORT, clock=lambda: now[0])


def feed_seconds(hls: HlsService, start: float, seconds: float) -> float:
    segmenter = hls.segmenter("live.mp3")
    assert segmenter is not None
    at = start
    while at < start + seconds:
        at += 4 * 1152 / 44100
        segmenter.feed(MP3_FRAME * 4, at)
    return at


def test_a_session_counts_until_it_has_been_quiet_for_a_window() -> None:
    async def scenario() -> None:
        now = [0.0]
        hls = service(now)
        assert hls.is_new(LIVE, PLAYER)
        text = hls.media_playlist(LIVE, PLAYER)
        assert text.startswith("#EXTM3U")
        assert not hls.is_new(LIVE, PLAYER)
        other = HlsSession("192.0.2.9 VLC", in_uris=False)
        hls.media_playlist(LIVE, other)
        assert hls.sessions_by_mount() == {"live.mp3": 2}
        now[0] = hls.session_seconds - 1
        hls.media_playlist(LIVE, PLAYER)
        now[0] = hls.session_seconds + 1
        hls.tick({"live.mp3": LIVE})
        assert hls.sessions_by_mount() == {"live.mp3": 1}
        hls.close()

    asyncio.run(scenario())


def test_a_mount_nobody_asks_for_stops_being_cut_and_a_format_change_restarts_it() -> None:
    async def scenario() -> None:
        now = [0.0]
        hls = service(now)
        hls.media_playlist(LIVE, PLAYER)
        louder = parse_mount({**LIVE.as_dict(), "max_listeners": 5})
        hls.tick({"live.mp3": louder})
        assert hls.cut_mounts() == ["live.mp3"]  # a limit changed: the cut goes on
        aac = parse_mount({**LIVE.as_dict(), "format": {"codec": "aac", "bitrate_kbps": 96}})
        segmenter = hls.segmenter("live.mp3")
        hls.tick({"live.mp3": aac})
        assert hls.cut_mounts() == []
        hls.media_playlist(aac, PLAYER)
        assert hls.segmenter("live.mp3") is not segmenter
        now[0] = hls.idle_seconds + 1
        hls.tick({"live.mp3": aac})
        assert hls.cut_mounts() == []
        hls.close()

    asyncio.run(scenario())


def test_memory_is_bounded_to_max_mounts_cut_at_once() -> None:
    async def scenario() -> None:
        hls = service([0.0])
        for index in range(MAX_MOUNTS):
            mount = parse_mount({"name": f"m{index}.mp3", "source_password": "dj-secret-1"})
            hls.media_playlist(mount, PLAYER)
        with pytest.raises(TooManyMounts):
            hls.media_playlist(LIVE, PLAYER)
        hls.close()

    asyncio.run(scenario())


def test_a_new_leader_and_a_source_coming_mark_a_discontinuity() -> None:
    async def scenario() -> None:
        hls = service([0.0])
        hls.media_playlist(LIVE, PLAYER)
        hls.follow(7, {"live.mp3": False})
        at = feed_seconds(hls, 1_000_000.0, 10)
        hls.follow(7, {"live.mp3": True})  # the studio connected
        at = feed_seconds(hls, at, 10)
        hls.follow(8, {"live.mp3": True})  # another leader
        at = feed_seconds(hls, at, 10)
        hls.follow(8, {"live.mp3": True})  # nothing changed
        feed_seconds(hls, at, 10)
        segmenter = hls.segmenter("live.mp3")
        assert segmenter is not None
        assert sum(segment.discontinuity for segment in segmenter.segments) == 2
        hls.close()

    asyncio.run(scenario())
