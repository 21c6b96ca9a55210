"""The node's HLS cuts: sessions, limits of memory, what a leader or source change marks.
Icecast is a closed port here: the cuts' streams never come, their segmenters are fed by
the tests."""

from __future__ import annotations

import asyncio
import json

import pytest

from radioagent.hls.playlists import HlsSession
from radioagent.hls.service import MAX_MOUNTS, HlsService, TooManyMounts, hls_elsewhere
from radioagent.model import node_status_from_json, parse_mount
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


def test_a_mount_played_on_another_node_is_cut_here_too_while_it_is_played() -> None:
    """So a player that comes from that node finds the window it left: a cut started
    when the player arrives would only have Icecast's burst."""

    async def scenario() -> None:
        now = [0.0]
        hls = service(now)
        ogg = parse_mount(
            {"name": "talk.ogg", "source_password": "dj-secret-1", "format": {"codec": "vorbis"}}
        )
        mounts = {"live.mp3": LIVE, "talk.ogg": ogg}
        hls.tick(mounts, {"live.mp3", "talk.ogg", "gone.mp3"})
        assert hls.cut_mounts() == ["live.mp3"]  # Ogg is not cut; a mount gone is not
        assert hls.sessions_by_mount() == {}  # no player here: nothing to report
        now[0] = hls.idle_seconds + 1
        hls.tick(mounts, {"live.mp3"})
        assert hls.cut_mounts() == ["live.mp3"]  # still played elsewhere
        now[0] = 2 * hls.idle_seconds + 1
        hls.tick(mounts, {"live.mp3"})
        hls.tick(mounts)
        assert hls.cut_mounts() == ["live.mp3"]
        now[0] = 3 * hls.idle_seconds + 2
        hls.tick(mounts)  # nobody plays it anywhere for a while: it stops
        assert hls.cut_mounts() == []
        hls.close()

    asyncio.run(scenario())


def test_cuts_for_other_nodes_players_stop_at_max_mounts() -> None:
    async def scenario() -> None:
        hls = service([0.0])
        names = [f"m{index}.mp3" for index in range(MAX_MOUNTS + 3)]
        mounts = {
            name: parse_mount({"name": name, "source_password": "dj-secret-1"}) for name in names
        }
        hls.tick(mounts, names)
        assert len(hls.cut_mounts()) == MAX_MOUNTS
        hls.close()

    asyncio.run(scenario())


def test_a_cut_started_here_numbers_discontinuities_on_from_the_other_nodes() -> None:
    """A node that was cutting through a leader change numbers the segments after it 1
    higher than before; a node that starts cutting later must number the same segments
    the same, or a player moving between them stops (hls.js checks it)."""

    async def scenario() -> None:
        hls = service([0.0])
        hls.tick({"live.mp3": LIVE}, {"live.mp3"}, {"live.mp3": 3})
        assert hls.discontinuities() == {}  # nothing cut yet: nothing to tell the others
        feed_seconds(hls, 1_000_000.0, 10)
        assert hls.discontinuities() == {"live.mp3": 3}
        playlist = hls.media_playlist(LIVE, PLAYER)
        assert "#EXT-X-DISCONTINUITY-SEQUENCE:3" in playlist.splitlines()
        hls.follow(7, {"live.mp3": True})
        hls.follow(8, {"live.mp3": True})  # another leader: one more from here
        feed_seconds(hls, 1_000_010.0, 10)
        assert hls.discontinuities() == {"live.mp3": 4}
        hls.close()

    asyncio.run(scenario())


def test_what_the_other_nodes_say_of_their_hls_players_and_numbers() -> None:
    statuses = [
        node_status_from_json(
            json.dumps({**status, "name": name, "address": "10.0.0.1", "icecast_port": 8001})
        )
        for name, status in (
            ("node1", {"hls_mounts": ["live.mp3"], "hls_discontinuities": {"live.mp3": 2}}),
            ("node2", {"hls_mounts": [], "hls_discontinuities": {"live.mp3": 5, "b.aac": 1}}),
            ("node3", {}),
        )
    ]
    assert hls_elsewhere(statuses) == ({"live.mp3"}, {"live.mp3": 5, "b.aac": 1})
