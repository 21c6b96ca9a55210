"""HLS on every node, on the wire: a studio streams into the cluster; players (ffmpeg, a
playlist checker, plain HTTP) read the mount's HLS from two nodes."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import pytest

from tests.harness.agents import AgentNode, RadioCluster, start_live_source
from tests.harness.clients import SourceClient
from tests.harness.hls import MediaPlaylist, fetch, ffmpeg_read, parse_media_playlist, segment_start
from tests.harness.media import AudioSample
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration
MOUNT = {"name": "live.mp3", "source_password": "dj-secret"}
TARGET = 4  # the default segment length
FRAME = 1152 / 44100


def media_playlist(node: AgentNode) -> MediaPlaylist:
    status, headers, body = fetch(f"{node.front_door_url}/hls/live.mp3/index.m3u8")
    assert status == 200
    assert headers["content-type"] == "application/vnd.apple.mpegurl"
    assert headers["access-control-allow-origin"] == "*"
    return parse_media_playlist(body.decode())


def has_segments(node: AgentNode, count: int) -> MediaPlaylist | None:
    playlist = media_playlist(node)
    return playlist if len(playlist.segments) >= count else None


@pytest.fixture
def streaming(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    long_mp3_audio: AudioSample,
) -> RadioCluster:
    radio_cluster.store().create_mount(MOUNT)
    leader = radio_cluster.leader_taking_sources("/_live/live.mp3", "dj-secret")
    start_live_source(source_client_factory, leader, long_mp3_audio)
    for node in radio_cluster.nodes:
        wait_for(
            functools.partial(node.plays_source_audio, "/live.mp3", long_mp3_audio.data),
            timeout=10,
            what=f"the source's audio on {node.name}",
            explain=radio_cluster.log_tails,
        )
    return radio_cluster


def test_ffmpeg_plays_a_nodes_hls_from_the_master_playlist(streaming: RadioCluster) -> None:
    node = streaming.nodes[1]
    _, _, document = fetch(f"{node.front_door_url}/api/v1/status")
    assert json.loads(document)["mounts"]["live.mp3"]["hls"] == "/live.mp3.m3u8"
    status, _, body = fetch(f"{node.front_door_url}/live.mp3.m3u8")
    assert status == 200
    assert body.decode().splitlines()[-1].startswith("hls/live.mp3/index.m3u8?session=")
    # A player starts three segments from the live edge: wait until they are cut.
    wait_for(
        functools.partial(has_segments, node, 3),
        timeout=4 * TARGET + 5,
        what=f"three HLS segments on {node.name}",
        explain=streaming.log_tails,
    )
    seconds, errors = ffmpeg_read(f"{node.front_door_url}/live.mp3.m3u8", 10, timeout=60)
    assert errors == []
    assert seconds == pytest.approx(10, abs=0.1)


def test_two_nodes_name_the_same_stretch_of_audio_the_same_way(streaming: RadioCluster) -> None:
    """Each node cuts the stream it relays on its own; a player that moves from one to the
    other finds the same sequence numbers for the same audio: their tags agree within
    the time the relays take (well under a frame on loopback, plus one frame)."""
    first, second = streaming.nodes[0], streaming.nodes[2]
    for node in (first, second):
        media_playlist(node)  # asking starts the node's cut
    playlists = [
        wait_for(
            functools.partial(has_segments, node, 3),
            timeout=4 * TARGET + 5,
            what=f"three HLS segments on {node.name}",
            explain=streaming.log_tails,
        )
        for node in (first, second)
    ]
    # Both cut from the same instant on: the segments after the first of each.
    shared = set(playlists[0].sequences[1:]) & set(playlists[1].sequences[1:])
    assert shared, f"no sequence in both windows: {playlists}"
    for sequence in sorted(shared):
        starts = [
            segment_start(f"{node.front_door_url}/hls/live.mp3/{sequence}.mp3")
            for node in (first, second)
        ]
        assert abs(starts[0] - starts[1]) < 0.1 + FRAME, (sequence, starts)
        assert abs(starts[0] - sequence * TARGET % (2**33 / 90_000)) < 0.1 + FRAME


def test_a_player_polling_a_playlist_sees_the_window_move_by_whole_segments(
    streaming: RadioCluster,
) -> None:
    node = streaming.nodes[0]
    media_playlist(node)
    before = wait_for(
        functools.partial(has_segments, node, 2),
        timeout=3 * TARGET + 5,
        what=f"two HLS segments on {node.name}",
        explain=streaming.log_tails,
    )

    def moved_on() -> MediaPlaylist | None:
        playlist = media_playlist(node)
        return playlist if playlist.sequences[-1] > before.sequences[-1] else None

    after = wait_for(
        moved_on,
        timeout=TARGET + 5,
        what="the next segment",
        explain=streaming.log_tails,
    )
    # Sequence numbers follow each other; the window moved by the segments it gained.
    for playlist in (before, after):
        assert playlist.sequences == list(
            range(playlist.media_sequence, playlist.media_sequence + len(playlist.segments))
        )
    gained = after.sequences[-1] - before.sequences[-1]
    removed = after.media_sequence - before.media_sequence
    assert removed == max(0, len(before.segments) + gained - 6)
    assert after.target_seconds == TARGET
    _, headers, data = fetch(f"{node.front_door_url}/hls/live.mp3/{after.sequences[-1]}.mp3")
    assert headers["content-type"] == "audio/mpeg"
    assert data[:3] == b"ID3"


def session_playlist(node: AgentNode) -> str:
    """A new player's media playlist URL: the one its master playlist gives it."""
    _, _, master = fetch(f"{node.front_door_url}/live.mp3.m3u8")
    return f"{node.front_door_url}/{master.decode().splitlines()[-1]}"


def test_hls_players_count_as_listeners_and_the_mounts_limit_holds_them(
    streaming: RadioCluster,
) -> None:
    node = streaming.nodes[1]
    players = [session_playlist(node) for _ in range(2)]
    for url in players:
        assert fetch(url)[0] == 200
    assert node.metric("radio_mount_hls_sessions", mount="live.mp3") == 2

    def counted_in_the_cluster() -> bool:
        _, _, document = fetch(f"{node.front_door_url}/api/v1/status")
        return json.loads(document)["nodes"][node.name]["listeners"].get("live.mp3", 0) >= 2

    wait_for(counted_in_the_cluster, timeout=10, what="the HLS players in the node's report")
    streaming.store().update_mount("live.mp3", {"max_listeners": 2})

    def limit_known() -> bool:
        _, _, document = fetch(f"{node.front_door_url}/api/v1/status")
        return json.loads(document)["mounts"]["live.mp3"]["max_listeners"] == 2

    wait_for(limit_known, timeout=10, what="the node to read the mount's new limit")

    # A new player is refused; one that slipped in before the door's view had the limit
    # (it is one loop behind the status page at most) is counted, and the next is not.
    def new_player_refused() -> tuple[int, dict[str, str]] | None:
        status, headers, _ = fetch(session_playlist(node))
        return (status, headers) if status == 503 else None

    _, headers = wait_for(new_player_refused, timeout=10, what="a new HLS player refused")
    assert headers["retry-after"] == "2"
    counted = node.metric("radio_mount_hls_sessions", mount="live.mp3")
    assert counted is not None
    assert counted >= 2
    assert fetch(session_playlist(node))[0] == 503
    for url in players:  # the players counted already go on
        assert fetch(url)[0] == 200
    assert node.metric("radio_mount_hls_sessions", mount="live.mp3") == counted
