"""Clean switches: listeners get whole frames across every switch between a studio's live
audio and the holding audio (Icecast splices its fallback at an arbitrary byte; the
front door passes on only whole frames). A validating listener counts the breaks in the
chain of MP3 frames it receives, with and without ICY metadata."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness.agents import RadioCluster
from tests.harness.audio import analyse_mp3, analyse_ogg
from tests.harness.clients import SourceClient, StreamRecorder
from tests.harness.media import AudioSample, make_ogg_vorbis
from tests.harness.waiting import wait_for
from tests.integration.test_front_door_listeners import PASSWORD, strip_icy

pytestmark = pytest.mark.integration


def test_listeners_get_whole_frames_across_live_and_holding_switches(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    radio_cluster.create_served_mount({"name": "live.mp3", "source_password": PASSWORD})
    node = radio_cluster.nodes[2]
    url = f"{node.front_door_url}/_stream/live.mp3"
    plain = StreamRecorder(url, max_seconds=60).start()
    icy = StreamRecorder(url, max_seconds=60, headers={"Icy-MetaData": "1"}).start()
    wait_for(lambda: plain.arrivals and icy.arrivals, timeout=10, what="the holding audio")

    for _ in range(2):  # holding -> live -> holding, twice
        source = radio_cluster.nodes[0].front_door_source(
            source_client_factory, "/live.mp3", PASSWORD, content_type=mp3_audio.content_type
        )
        source.connect()
        source.start_streaming(mp3_audio.data, mp3_audio.bytes_per_second)
        wait_for(
            lambda: node.plays_source_audio("/live.mp3", mp3_audio.data),
            timeout=10,
            what="the studio on the listeners' node",
        )
        source.stop()
        wait_for(
            lambda: not node.plays_source_audio("/live.mp3", mp3_audio.data),
            timeout=10,
            what="the holding audio back",
        )
    received = len(plain.body)
    wait_for(lambda: len(plain.body) > received + 32000, timeout=10, what="more holding audio")
    plain.stop()
    icy.stop()

    report = analyse_mp3(bytes(plain.body))
    assert report.problems(min_frames=100) == []
    metaint = int(icy.headers_received["icy-metaint"])
    audio, blocks = strip_icy(bytes(icy.body), metaint)
    assert blocks
    assert analyse_mp3(audio).problems(min_frames=100) == []


@pytest.mark.parametrize("codec", ["vorbis", "opus"])
def test_ogg_holding_audio_is_valid_decodable_and_paced(
    radio_cluster: RadioCluster, codec: str
) -> None:
    """No studio: the first listener on a node gets the holding audio as a valid,
    decodable chain, starting with at most the current chain (not Icecast's burst of
    dozens of tiny ones), then page after page as the audio plays."""
    audio_format: dict[str, str | int] = {"codec": codec}
    if codec == "opus":
        audio_format |= {"samplerate": 48000, "bitrate_kbps": 64}
    radio_cluster.create_served_mount(
        {"name": "live.ogg", "source_password": PASSWORD, "format": audio_format}
    )
    node = radio_cluster.nodes[1]
    listener = StreamRecorder(f"{node.front_door_url}/_stream/live.ogg", max_seconds=30).start()
    wait_for(lambda: listener.arrivals, timeout=10, what="the first bytes")
    started = listener.arrivals[0][0]
    wait_for(
        lambda: listener.arrivals[-1][0] - started > 12,
        timeout=20,
        what="twelve seconds of holding audio",
    )
    listener.stop()
    body = bytes(listener.body)
    report = analyse_ogg(body)
    assert report.problems(min_pages=20) == []
    assert report.codecs == {codec}
    first_second = sum(size for at, size in listener.arrivals if at - started < 1.0)
    first_chains = body[:first_second].count(b"OggS\x00\x02")  # pages starting a chain
    assert first_chains <= 2, first_chains
    assert listener.longest_gap(started, listener.arrivals[-1][0]) <= 2.5
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "ogg", "-i", "pipe:0", "-f", "null", "-"],
        input=body,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert decoded.returncode == 0, decoded.stderr[-500:]


def chained_ogg(path: Path, chains: int, seconds: float) -> AudioSample:
    """`chains` Vorbis streams of `seconds` each, one after the other (each its own
    serial), as a playout that starts a new chain at every title sends them."""
    parts = []
    for index in range(chains):
        part = path.with_name(f"{path.stem}-{index}.ogg")
        make_ogg_vorbis(part, seconds)
        parts.append(part.read_bytes())
        part.unlink()
    path.write_bytes(b"".join(parts))
    return AudioSample(path, "application/ogg", chains * seconds)


def test_a_new_listener_gets_the_current_chain_not_icecasts_burst_of_old_ones(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    tmp_path: Path,
) -> None:
    """Icecast gives a new connection its last 64 KiB at once: with short chains, several
    of them, each with its header pages. A node's first listener starts with the current
    chain only, as later joiners do."""
    audio = chained_ogg(tmp_path / "chains.ogg", chains=40, seconds=0.5)
    radio_cluster.create_served_mount(
        {"name": "live.ogg", "source_password": PASSWORD, "format": {"codec": "vorbis"}}
    )
    source = radio_cluster.nodes[0].front_door_source(
        source_client_factory, "/live.ogg", PASSWORD, content_type=audio.content_type
    )
    source.connect()
    source.start_streaming(audio.data, audio.bytes_per_second, burst_seconds=0.5)
    node = radio_cluster.nodes[2]
    wait_for(  # Icecast's queue on the listener's node holds several chains by then
        lambda: source.bytes_sent > len(audio.data) // 2,
        timeout=20,
        what="half the chains sent",
    )
    listener = StreamRecorder(f"{node.front_door_url}/_stream/live.ogg", max_seconds=10).start()
    wait_for(lambda: listener.arrivals, timeout=10, what="the first bytes")
    started = listener.arrivals[0][0]
    wait_for(lambda: listener.arrivals[-1][0] - started > 1.5, timeout=10, what="more audio")
    listener.stop()
    first = sum(size for at, size in listener.arrivals if at - started < 0.5)
    chains_at_once = bytes(listener.body[:first]).count(b"OggS\x00\x02")
    assert 1 <= chains_at_once <= 2, chains_at_once
    assert analyse_ogg(bytes(listener.body)).problems(min_pages=4) == []
