"""HLS on every node, on the wire: studios stream into one cluster the module's tests
share; players (ffmpeg, a playlist checker, plain HTTP, hls.js in Chromium) read the
mounts' HLS from its nodes. The last two tests crash a node, then stop a studio: they
run last, in this order."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness.agents import (
    AgentNode,
    RadioCluster,
    start_live_source,
    start_radio_cluster,
)
from tests.harness.clients import SourceClient
from tests.harness.hls import MediaPlaylist, fetch, ffmpeg_read, parse_media_playlist, segment_start
from tests.harness.media import make_mp3
from tests.harness.waiting import wait_for
from tests.integration.conftest import require_root
from tests.integration.test_status_page_browser import console_errors, start_chromium

pytestmark = pytest.mark.integration
PASSWORD = "dj-secret"
# live.mp3 for the players; limited.mp3 for the limits test, whose sessions and limit
# would otherwise leak into the others' counts.
MOUNTS = ("live.mp3", "limited.mp3")
TARGET = 4  # the default segment length
FRAME = 1152 / 44100
# The studios outlast every test of the module (about two minutes on a quiet machine).
STUDIO_SECONDS = 400.0
VENDOR_DIR = Path(__file__).parents[1] / "vendor" / "hls.js"


def media_playlist(node: AgentNode, mount: str = "live.mp3") -> MediaPlaylist:
    status, headers, body = fetch(f"{node.front_door_url}/hls/{mount}/index.m3u8")
    assert status == 200
    assert headers["content-type"] == "application/vnd.apple.mpegurl"
    assert headers["access-control-allow-origin"] == "*"
    return parse_media_playlist(body.decode())


def has_segments(node: AgentNode, count: int) -> MediaPlaylist | None:
    playlist = media_playlist(node)
    return playlist if len(playlist.segments) >= count else None


@dataclass(frozen=True)
class HlsCluster:
    cluster: RadioCluster
    studios: dict[str, SourceClient]  # by mount


@pytest.fixture(scope="module")
def hls_cluster(holding_cache_dir: Path, media_dir: Path) -> Iterator[HlsCluster]:
    """Three agents (each with its Icecast and etcd member) and a studio on each mount,
    shared by the module's tests: starting them takes longer than most tests here."""
    require_root()
    audio = make_mp3(media_dir / "hls-studio.mp3", seconds=STUDIO_SECONDS)
    with contextlib.ExitStack() as stack:  # stops what started, in reverse, however it ends
        cluster = start_radio_cluster(stack, holding_cache_dir)
        for name in MOUNTS:
            cluster.store().create_mount({"name": name, "source_password": PASSWORD})
        studios = {}
        for name in MOUNTS:
            leader = cluster.leader_taking_sources(f"/_live/{name}", PASSWORD)

            def make(*args: Any, **kwargs: Any) -> SourceClient:
                client = SourceClient(*args, **kwargs)
                stack.callback(client.stop)
                return client

            studios[name] = start_live_source(make, leader, audio, f"/_live/{name}")
        for node in cluster.nodes:
            for name in MOUNTS:
                wait_for(
                    functools.partial(node.plays_source_audio, f"/{name}", audio.data),
                    timeout=10,
                    what=f"the source's audio of {name} on {node.name}",
                    explain=cluster.log_tails,
                )
        yield HlsCluster(cluster, studios)


@pytest.fixture
def streaming(hls_cluster: HlsCluster) -> RadioCluster:
    return hls_cluster.cluster


def test_ffmpeg_plays_each_nodes_hls_for_30_s_from_the_master_playlist(
    streaming: RadioCluster,
) -> None:
    node = streaming.nodes[1]
    _, _, document = fetch(f"{node.front_door_url}/api/v1/status")
    assert json.loads(document)["mounts"]["live.mp3"]["hls"] == "/live.mp3.m3u8"
    status, _, body = fetch(f"{node.front_door_url}/live.mp3.m3u8")
    assert status == 200
    assert body.decode().splitlines()[-1].startswith("hls/live.mp3/index.m3u8?session=")
    # A player starts three segments from the live edge: wait until they are cut.
    for each in streaming.nodes:
        media_playlist(each)  # asking starts the node's cut
    for each in streaming.nodes:
        wait_for(
            functools.partial(has_segments, each, 3),
            timeout=4 * TARGET + 5,
            what=f"three HLS segments on {each.name}",
            explain=streaming.log_tails,
        )
    with ThreadPoolExecutor(len(streaming.nodes)) as pool:  # the three at once
        reads = list(
            pool.map(
                lambda each: ffmpeg_read(f"{each.front_door_url}/live.mp3.m3u8", 30, timeout=90),
                streaming.nodes,
            )
        )
    for each, (seconds, errors) in zip(streaming.nodes, reads, strict=True):
        assert errors == [], each.name
        # `-t 30` counts ffmpeg's own timestamps, which its MP3 demuxer re-times back by
        # a frame or two at a segment start (test_hls_format.py): up to 9 starts in 30 s.
        assert seconds == pytest.approx(30, abs=18 * FRAME), each.name


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


def session_playlist(node: AgentNode, mount: str) -> str:
    """A new player's media playlist URL: the one its master playlist gives it."""
    _, _, master = fetch(f"{node.front_door_url}/{mount}.m3u8")
    return f"{node.front_door_url}/{master.decode().splitlines()[-1]}"


def test_hls_players_count_as_listeners_and_the_mounts_limit_holds_them(
    streaming: RadioCluster,
) -> None:
    node = streaming.nodes[1]
    mount = "limited.mp3"
    players = [session_playlist(node, mount) for _ in range(2)]
    for url in players:
        assert fetch(url)[0] == 200
    assert node.metric("radio_mount_hls_sessions", mount=mount) == 2

    def counted_in_the_cluster() -> bool:
        _, _, document = fetch(f"{node.front_door_url}/api/v1/status")
        return json.loads(document)["nodes"][node.name]["listeners"].get(mount, 0) >= 2

    wait_for(counted_in_the_cluster, timeout=10, what="the HLS players in the node's report")
    streaming.store().update_mount(mount, {"max_listeners": 2})

    def limit_known() -> bool:
        _, _, document = fetch(f"{node.front_door_url}/api/v1/status")
        return json.loads(document)["mounts"][mount]["max_listeners"] == 2

    wait_for(limit_known, timeout=10, what="the node to read the mount's new limit")

    # A new player is refused; one that slipped in before the door's view had the limit
    # (it is one loop behind the status page at most) is counted, and the next is not.
    def new_player_refused() -> tuple[int, dict[str, str]] | None:
        status, headers, _ = fetch(session_playlist(node, mount))
        return (status, headers) if status == 503 else None

    _, headers = wait_for(new_player_refused, timeout=10, what="a new HLS player refused")
    assert headers["retry-after"] == "2"
    counted = node.metric("radio_mount_hls_sessions", mount=mount)
    assert counted is not None
    assert counted >= 2
    assert fetch(session_playlist(node, mount))[0] == 503
    for url in players:  # the players counted already go on
        assert fetch(url)[0] == 200
    assert node.metric("radio_mount_hls_sessions", mount=mount) == counted


PLAYER_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>hls.js player</title>
<audio id="player" muted></audio>
<script src="hls.light.min.js"></script>
<script>
"use strict";
// What the test reads: every request (after the node was chosen), the sequence numbers
// as they play, hls.js's errors, the media element's stalls.
const trace = {requests: [], played: [], playedUrls: [], errors: [], waiting: 0};
const nodes = NODES;
let node = 0;
// A cluster's player keeps the URLs and moves to the next node when one does not answer,
// as a new DNS answer would send it: the URLs name the same audio on every node.
function onNode(url) {
  const target = new URL(url);
  const chosen = new URL(nodes[node]);
  target.protocol = chosen.protocol;
  target.host = chosen.host;
  return target.href;
}
const player = document.getElementById("player");
const hls = new Hls({
  xhrSetup(xhr, url) {
    const href = onNode(url);
    trace.requests.push(href);
    xhr.open("GET", href, true);
  },
});
hls.on(Hls.Events.ERROR, (event, data) => {
  trace.errors.push([data.type, data.details, data.fatal, String(data.reason || "")]);
  if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
    node = (node + 1) % nodes.length;
  }
});
hls.on(Hls.Events.FRAG_CHANGED, (event, data) => {
  trace.played.push(data.frag.sn);
  trace.playedUrls.push(data.frag.url);
});
window.hls = hls;
hls.on(Hls.Events.MANIFEST_PARSED, () => {
  player.play().catch((error) => trace.errors.push(["play", String(error), true]));
});
player.addEventListener("waiting", () => { trace.waiting += 1; });
hls.loadSource(MASTER);
hls.attachMedia(player);
</script>
"""

PLAYER_STATE = """
const player = document.getElementById("player");
const buffered = player.buffered;
return {
  supported: Hls.isSupported(),
  currentTime: player.currentTime,
  bufferedEnd: buffered.length ? buffered.end(buffered.length - 1) : 0,
  paused: player.paused,
  error: player.error ? player.error.code : null,
  requests: trace.requests.length,
  played: trace.played,
  playedUrls: trace.playedUrls,
  // CODECS as listed: hls.js reads MP3's "mp4a.40.34" and plays it as audio/mpeg.
  levels: hls.levels.map((level) => [
    level.bitrate, level.attrs.CODECS, level.uri || [].concat(level.url)[0],
  ]),
  errors: trace.errors,
  waiting: trace.waiting,
};
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def player_site(directory: Path, master: str, nodes: list[str]) -> Iterator[str]:
    """A radio's website on loopback, another origin than the nodes' (so CORS counts):
    a page with hls.js playing `master`, moving along `nodes` when one fails."""
    shutil.copy(VENDOR_DIR / "hls.light.min.js", directory)
    page = PLAYER_PAGE.replace("NODES", json.dumps(nodes)).replace("MASTER", json.dumps(master))
    (directory / "index.html").write_text(page)
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="player site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def played_runs(played: list[int]) -> list[int]:
    """The sequence numbers as they played, a repeated one (hls.js re-announcing the
    fragment it plays) counted once."""
    return [sn for index, sn in enumerate(played) if index == 0 or played[index - 1] != sn]


def test_hlsjs_plays_a_transcoded_variant_the_master_playlist_lists(
    streaming: RadioCluster, tmp_path: Path
) -> None:
    """A mount transcoded from live.mp3 (64 kbps) is a variant of its master playlist:
    hls.js reads both levels, with their bandwidth and codec, and plays the lower one
    when asked to (as its bandwidth estimate would on a slow network)."""
    streaming.store().create_mount(
        {
            "name": "low.mp3",
            "source_password": "transcoder-secret",
            "transcode": {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 64}},
        }
    )
    node = streaming.nodes[0]

    def variants_listed() -> str | None:
        master = fetch(f"{node.front_door_url}/live.mp3.m3u8")[2].decode()
        return master if "hls/low.mp3/" in master else None

    wait_for(variants_listed, timeout=10, what="low.mp3 in live.mp3's master playlist")

    def low_cut() -> MediaPlaylist | None:
        playlist = media_playlist(node, "low.mp3")
        return playlist if len(playlist.segments) >= 3 else None

    # The transcoder starts (Liquidsoap), then its stream is cut: three segments.
    wait_for(low_cut, timeout=10 + 4 * TARGET + 5, what="three segments of low.mp3")
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    browser = start_chromium(tmp_path, ("--autoplay-policy=no-user-gesture-required",))
    try:
        master = f"{node.front_door_url}/live.mp3.m3u8"
        with player_site(site_dir, master, [node.front_door_url]) as page:
            browser.get(page)

            def state() -> dict[str, Any]:
                found: dict[str, Any] = browser.execute_script(PLAYER_STATE)
                return found

            def levels_read() -> dict[str, Any] | None:
                found = state()
                return found if len(found["levels"]) == 2 else None

            levels = wait_for(levels_read, timeout=15, what="hls.js to read the master playlist")[
                "levels"
            ]
            assert sorted((bitrate, codec) for bitrate, codec, _ in levels) == [
                (70400, "mp4a.40.34"),
                (140800, "mp4a.40.34"),
            ]
            low = next(index for index, level in enumerate(levels) if "/low.mp3/" in level[2])
            browser.execute_script(f"window.hls.currentLevel = {low};")

            def plays_low() -> dict[str, Any] | None:
                found = state()
                urls = found["playedUrls"]
                return found if sum("/hls/low.mp3/" in url for url in urls) >= 2 else None

            played = wait_for(
                plays_low,
                timeout=4 * TARGET + 15,
                what="hls.js to play low.mp3's segments",
                explain=lambda: f"player: {state()}\nconsole: {console_errors(browser)}",
            )
    finally:
        browser.quit()
    assert played["error"] is None
    assert [error for error in played["errors"] if error[2]] == []  # no fatal error


def test_hlsjs_in_chromium_plays_a_node_and_goes_on_from_another_when_it_dies(
    streaming: RadioCluster, tmp_path: Path
) -> None:
    """hls.js (vendored for this test: tests/vendor/hls.js/README.md) in headless
    Chromium plays live.mp3 from a replica, from a page of another origin. The replica's
    machine dies (agent and Icecast); the player asks the next node for the same URLs and
    plays on past what it had buffered, the segments in order: none skipped, none twice."""
    leader = streaming.wait_leader()
    first, second = (node for node in streaming.nodes if node.name != leader)
    wait_for(
        functools.partial(has_segments, first, 3),
        timeout=4 * TARGET + 5,
        what=f"three HLS segments on {first.name}",
        explain=streaming.log_tails,
    )
    nodes = [node.front_door_url for node in (first, second, streaming.node(leader))]
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    browser = start_chromium(tmp_path, ("--autoplay-policy=no-user-gesture-required",))
    try:
        with player_site(site_dir, f"{first.front_door_url}/live.mp3.m3u8", nodes) as page:
            browser.get(page)

            def state() -> dict[str, Any]:
                found: dict[str, Any] = browser.execute_script(PLAYER_STATE)
                return found

            last_seen: list[str] = []  # the dying node's last playlist

            def explain() -> str:
                playlists = [*last_seen] + [
                    fetch(f"{node.front_door_url}/hls/live.mp3/index.m3u8")[2].decode()
                    for node in (second, streaming.node(leader))
                ]
                return (
                    f"player: {state()}\nconsole: {console_errors(browser)}\n"
                    f"playlists of {first.name} (before), {second.name}, {leader}: {playlists}"
                )

            # Playing: from one segment into the next (currentTime starts where the
            # stream's timestamps put it, not at 0).
            def playing() -> dict[str, Any] | None:
                found = state()
                return found if len(played_runs(found["played"])) >= 2 else None

            before = wait_for(
                playing,
                timeout=30 + TARGET,
                what="hls.js to play live.mp3",
                explain=explain,
            )
            assert before["supported"]
            last_seen.append(fetch(f"{first.front_door_url}/hls/live.mp3/index.m3u8")[2].decode())
            first.crash()
            requests_before = state()["requests"]
            buffered = state()["bufferedEnd"]

            # Past what it had from the dead node, and a segment more.
            def past_buffer() -> dict[str, Any] | None:
                found = state()
                return found if found["currentTime"] > buffered + TARGET else None

            after = wait_for(
                past_buffer,
                timeout=buffered - before["currentTime"] + 4 * TARGET + 10,
                what="hls.js to play on past its buffer",
                explain=explain,
            )
            requests = browser.execute_script("return trace.requests")[requests_before:]
    finally:
        browser.quit()
    assert after["error"] is None
    assert not after["paused"]
    assert [error for error in after["errors"] if error[2]] == []  # no fatal error
    served = [url for url in requests if ".mp3?" in url]
    assert any(url.startswith(second.front_door_url) for url in served), requests
    runs = played_runs(after["played"])
    assert runs == list(range(runs[0], runs[0] + len(runs))), runs
    assert runs[-1] > played_runs(before["played"])[-1]


def discontinuity_numbers(playlist: str) -> dict[int, int]:
    """Each segment's discontinuity number in a media playlist (RFC 8216 section 6.2.2)."""
    numbers = {}
    sequence = number = 0
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.partition(":")[2])
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            number = int(line.partition(":")[2])
        elif line == "#EXT-X-DISCONTINUITY":
            number += 1
        elif line and not line.startswith("#"):
            numbers[sequence] = number
            sequence += 1
    return numbers


def test_a_studio_leaving_is_marked_on_the_same_segment_by_every_node(
    hls_cluster: HlsCluster,
) -> None:
    """The studio on live.mp3 leaves (holding audio takes over): each node hears of it
    in its own loop, and every node marks the discontinuity on the same segment, so a
    player moving between them finds the same numbers."""
    cluster = hls_cluster.cluster
    nodes = [node for node in cluster.nodes if node.is_running()]
    assert len(nodes) >= 2

    def playlists() -> list[str]:
        return [
            fetch(f"{node.front_door_url}/hls/live.mp3/index.m3u8")[2].decode() for node in nodes
        ]

    before = [discontinuity_numbers(playlist) for playlist in playlists()]
    hls_cluster.studios["live.mp3"].stop()

    def marked_everywhere() -> list[dict[int, int]] | None:
        found = [discontinuity_numbers(playlist) for playlist in playlists()]
        grown = all(
            max(numbers.values()) > max(earlier.values())
            for numbers, earlier in zip(found, before, strict=True)
        )
        return found if grown else None

    after = wait_for(
        marked_everywhere,
        timeout=30,
        what="every node to mark the studio leaving",
        explain=lambda: f"{playlists()}\n{cluster.log_tails()}",
    )
    shared = set.intersection(*(set(numbers) for numbers in after))
    assert len(shared) >= 3, after
    for sequence in sorted(shared):
        assert len({numbers[sequence] for numbers in after}) == 1, (sequence, after)
