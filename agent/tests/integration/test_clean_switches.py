"""Clean switches: listeners get whole frames across every switch between a studio's live
audio and the holding audio (Icecast splices its fallback at an arbitrary byte; the
front door passes on only whole frames). A validating listener counts the breaks in the
chain of MP3 frames it receives, with and without ICY metadata."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.harness.agents import RadioCluster
from tests.harness.audio import analyse_mp3
from tests.harness.clients import SourceClient, StreamRecorder
from tests.harness.media import AudioSample
from tests.harness.waiting import wait_for
from tests.integration.test_front_door_listeners import PASSWORD, strip_icy

pytestmark = pytest.mark.integration


def test_listeners_get_whole_frames_across_live_and_holding_switches(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    radio_cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
    radio_cluster.wait_leader()
    for node in radio_cluster.nodes:
        node.wait_serving("/live.mp3")
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
