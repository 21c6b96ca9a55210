"""The node's HLS cuts: sessions, limits of memory, what a leader or source change marks.
Icecast is a closed port here: the cuts' streams never come, their segmenters are fed by
the tests."""

from __future__ import annotations

import asyncio
import functools
import json
import math
from dataclasses import replace

import pytest

from radioagent.hls.playlists import HlsSession
from radioagent.hls.segmenter import Segmenter
from radioagent.hls.service import MAX_MOUNTS, HlsService, TooManyMounts, hls_elsewhere
from radioagent.model import NodeStatus, node_status_from_json, parse_mount
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


def leader(since: float, changed: dict[str, float] | None = None) -> NodeStatus:
    """The leader's status as etcd holds it: when it began to lead, when studios came."""
    document = {"name": "node1", "address": "10.0.0.1", "icecast_port": 8001}
    status = node_status_from_json(json.dumps(document))
    return replace(status, leading_since=since, air_changed=changed or {})


DELAY = 7.0  # two loops and a second, at the default loop_wait


def test_two_nodes_mark_a_studios_and_a_leaders_change_on_the_same_segment() -> None:
    """Each node's loop hears of a change at its own time; both mark the first segment
    that starts DELAY after it, so a player moving between them finds the same
    discontinuity numbers."""

    async def scenario() -> None:
        start = 1_000_000.0
        walls = [[start], [start]]
        nodes = [
            HlsService(
                CLOSED_PORT, clock=lambda: 0.0, wall_clock=functools.partial(wall.__getitem__, 0)
            )
            for wall in walls
        ]
        for hls in nodes:
            hls.media_playlist(LIVE, PLAYER)
            hls.follow(leader(start - 100), DELAY)  # an old change: nothing to mark
        studio_at = feed_all(nodes, walls, start, 10)
        nodes[0].follow(leader(start - 100, {"live.mp3": studio_at}), DELAY)  # at once
        at = feed_all(nodes, walls, studio_at, 3)
        nodes[1].follow(leader(start - 100, {"live.mp3": studio_at}), DELAY)  # a loop later
        at = feed_all(nodes, walls, at, 17)
        new_leader_at = at
        for hls in nodes:  # another leader, heard at once and two loops later
            hls.follow(leader(new_leader_at, {"live.mp3": studio_at}), DELAY)
            at = feed_all(nodes, walls, at, 6)
            hls.follow(leader(new_leader_at, {"live.mp3": studio_at}), DELAY)  # no change
        feed_all(nodes, walls, at, 20)
        marked = [
            [segment.sequence for segment in segmenter_of(hls).segments if segment.discontinuity]
            for hls in nodes
        ]
        expected = [math.floor((t + DELAY) / 4) + 1 for t in (studio_at, new_leader_at)]
        assert marked == [expected, expected]
        assert nodes[0].numbers() == nodes[1].numbers()
        for hls in nodes:
            hls.close()

    asyncio.run(scenario())


def segmenter_of(hls: HlsService) -> Segmenter:
    segmenter = hls.segmenter("live.mp3")
    assert segmenter is not None
    return segmenter


def feed_all(
    nodes: list[HlsService], walls: list[list[float]], start: float, seconds: float
) -> float:
    """The same stream reaching every node at once; their wall clocks follow it."""
    at = start
    for hls, wall in zip(nodes, walls, strict=True):
        at = feed_seconds(hls, start, seconds)
        wall[0] = at
    return at


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


def late_cut(wall: list[float]) -> tuple[HlsService, int]:
    """A node that starts cutting live.mp3 (played elsewhere) at wall[0], while the
    others have cut up to the segment before (returned) with discontinuity number 3."""
    hls = HlsService(CLOSED_PORT, clock=lambda: 0.0, wall_clock=lambda: wall[0])
    newest = math.floor(wall[0] / 4) - 1
    hls.tick({"live.mp3": LIVE}, {"live.mp3"}, {"live.mp3": (newest, 3)})
    return hls, newest


def test_a_cut_started_here_numbers_discontinuities_on_from_the_other_nodes() -> None:
    """A node that was cutting through changes numbers the segments after each one
    higher; a node that starts cutting later takes on the others' number, and marks
    only the changes after their newest segment (the others counted the rest)."""

    async def scenario() -> None:
        start = 1_000_000.0
        wall = [start]
        hls, newest = late_cut(wall)
        assert hls.numbers() == {}  # nothing cut yet: nothing to tell the others
        counted = newest * 4 - DELAY - 2.0  # marked on a segment the others cut already
        hls.follow(leader(counted), DELAY)
        wall[0] = feed_seconds(hls, start, 10)
        assert hls.numbers() == {"live.mp3": (math.floor(wall[0] / 4) - 1, 3)}
        playlist = hls.media_playlist(LIVE, PLAYER)
        assert "#EXT-X-DISCONTINUITY-SEQUENCE:3" in playlist.splitlines()
        hls.follow(leader(wall[0]), DELAY)  # another leader: one more from its segment on
        wall[0] = feed_seconds(hls, wall[0], 20)
        assert hls.numbers()["live.mp3"][1] == 4
        hls.close()

    asyncio.run(scenario())


def test_a_cut_started_here_marks_a_change_the_others_have_not_reached() -> None:
    async def scenario() -> None:
        start = 1_000_000.0
        wall = [start]
        hls, _ = late_cut(wall)
        hls.follow(leader(start - 1.0), DELAY)  # its segment is ahead of everyone's
        wall[0] = feed_seconds(hls, start, 20)
        marked = [
            segment.sequence for segment in segmenter_of(hls).segments if segment.discontinuity
        ]
        assert marked == [math.floor((start - 1.0 + DELAY) / 4) + 1]
        assert hls.numbers()["live.mp3"][1] == 4
        hls.close()

    asyncio.run(scenario())


def test_what_the_other_nodes_say_of_their_hls_players_and_numbers() -> None:
    statuses = [
        node_status_from_json(
            json.dumps({**status, "name": name, "address": "10.0.0.1", "icecast_port": 8001})
        )
        for name, status in (
            ("node1", {"hls_mounts": ["live.mp3"], "hls_numbers": {"live.mp3": [100, 2]}}),
            ("node2", {"hls_mounts": [], "hls_numbers": {"live.mp3": [101, 2], "b.aac": [7, 1]}}),
            ("node3", {}),
        )
    ]
    assert hls_elsewhere(statuses) == ({"live.mp3"}, {"live.mp3": (101, 2), "b.aac": (7, 1)})
