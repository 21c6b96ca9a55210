"""Transcoded mounts with real Liquidsoap: one process per mount in the whole cluster,
playable from every node in the requested format, taken over when its node dies."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness.agents import TEST_TIMING, AgentNode, RadioCluster
from tests.harness.clients import SourceClient, connect_and_stream, listen
from tests.harness.media import AudioSample, loudness_db
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

PASSWORD = "dj-secret"
LIQUIDSOAP_START_S = 6.0  # Liquidsoap's start-up and first connection, with margin


def transcoder_processes(mount: str, node: AgentNode | None = None) -> list[int]:
    """PIDs of Liquidsoap processes running the transcoder script of `mount` (started by
    `node`'s agent, if given)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and argv[0].endswith(b"liquidsoap")
            and any(part.endswith(f"transcoder-{mount}.liq".encode()) for part in argv)
        ):
            found.append(int(entry.name))
    return found


def owner(cluster: RadioCluster, mount: str) -> str | None:
    value, _ = cluster.client().get(f"{cluster.layout.transcoders}{mount}")
    return value.decode() if value is not None else None


def probe(audio: bytes, container: str) -> dict:
    """ffprobe's view of the first audio stream in `audio`."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-f", container, "-show_streams", "-of", "json", "pipe:0"],
        input=audio,
        capture_output=True,
        timeout=30,
        check=False,
    )
    streams = json.loads(result.stdout or b"{}").get("streams", [])
    assert streams, result.stderr[-500:]
    return streams[0]


def start_parent(
    cluster: RadioCluster, make: Callable[..., SourceClient], audio: AudioSample
) -> SourceClient:
    cluster.mounts().create({"name": "live.mp3", "source_password": PASSWORD})
    cluster.wait_leader()
    entry = cluster.nodes[0]
    entry.wait_front_door_serving("/live.mp3")
    source = entry.front_door_source(make, "/live.mp3", PASSWORD)
    return connect_and_stream(source, audio)


def reconnect(
    node: AgentNode, make: Callable[..., SourceClient], audio: AudioSample
) -> SourceClient | None:
    source = node.front_door_source(make, "/live.mp3", PASSWORD)
    if source.connect(timeout=2).status != 200:
        source.stop()
        return None
    source.start_streaming(audio.data, audio.bytes_per_second)
    return source


def plays(node: AgentNode, mount: str, container: str, nbytes: int = 24000) -> bytes | None:
    """Transcoded sound (not the holding silence) from `node`, or None."""
    received = listen(f"{node.front_door_url}/{mount}", nbytes, timeout=4, follow_redirects=True)
    if received.status != 200 or len(received.body) < nbytes:
        return None
    return received.body if loudness_db(received.body, container) > -50 else None


@pytest.mark.parametrize(
    ("name", "spec", "container", "codec_name"),
    [
        (
            "low.mp3",
            {"codec": "mp3", "bitrate_kbps": 64, "samplerate": 22050, "channels": 1},
            "mp3",
            "mp3",
        ),
        (
            "live.opus",
            {"codec": "opus", "bitrate_kbps": 48, "samplerate": 48000, "channels": 2},
            "ogg",
            "opus",
        ),
        (
            "live.ogg",
            {"codec": "vorbis", "bitrate_kbps": 96, "samplerate": 44100, "channels": 2},
            "ogg",
            "vorbis",
        ),
        (
            "live.aac",
            {"codec": "aac", "bitrate_kbps": 96, "samplerate": 44100, "channels": 2},
            "aac",
            "aac",
        ),
    ],
)
def test_a_transcoded_mount_plays_on_every_node_in_its_format(  # noqa: PLR0917 - fixtures
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
    name: str,
    spec: dict,
    container: str,
    codec_name: str,
) -> None:
    start_parent(radio_cluster, source_client_factory, mp3_audio)
    radio_cluster.mounts().create(
        {
            "name": name,
            "source_password": "transcoder-secret",
            "transcode": {"parent": "live.mp3", "format": spec},
        }
    )
    for node in radio_cluster.nodes:
        body = wait_for(
            lambda node=node: plays(node, name, container),
            timeout=20,
            what=f"{name} on {node.name}",
            explain=radio_cluster.log_tails,
        )
        stream = probe(body, container)
        assert stream["codec_name"] == codec_name
        assert int(stream["sample_rate"]) == spec["samplerate"]
        assert stream["channels"] == spec["channels"]
        if "bit_rate" in stream:  # MP3 frames and Vorbis headers carry it; Opus does not
            assert (
                abs(int(stream["bit_rate"]) / 1000 - spec["bitrate_kbps"])
                <= 0.2 * spec["bitrate_kbps"]
            )
    assert len(transcoder_processes(name)) == 1


def test_the_owner_dies_another_node_transcodes_and_the_parent_gone_means_silence(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    source = start_parent(radio_cluster, source_client_factory, mp3_audio)
    radio_cluster.mounts().create(
        {
            "name": "low.mp3",
            "source_password": "transcoder-secret",
            "transcode": {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 64}},
        }
    )
    first = wait_for(lambda: owner(radio_cluster, "low.mp3"), timeout=10, what="an owner")
    listener_node = next(node for node in radio_cluster.nodes if node.name != first)
    wait_for(
        lambda: plays(listener_node, "low.mp3", "mp3"), timeout=20, what="the transcoded mount"
    )

    leader_before = radio_cluster.leader_name()
    killed = radio_cluster.node(first)
    killed_at = time.monotonic()
    killed.kill()  # SIGKILL: the kernel kills its Liquidsoap with it
    wait_for(
        lambda: not transcoder_processes("low.mp3", killed),
        timeout=2,
        what="the dead agent's Liquidsoap to die with it",
    )
    second = wait_for(
        lambda: (current := owner(radio_cluster, "low.mp3")) != first and current,
        timeout=TEST_TIMING["ttl"] + 5,
        what="another owner",
    )
    survivors = [node for node in radio_cluster.nodes if node is not killed]
    if leader_before == first:
        # The leader died with the owner: the studio reconnects, to the new leader.
        radio_cluster.wait_leader(other_than=first)
        source = wait_for(
            lambda: reconnect(survivors[0], source_client_factory, mp3_audio),
            timeout=10,
            what="the parent's source back",
        )
    wait_for(
        lambda: plays(survivors[1], "low.mp3", "mp3"),
        timeout=TEST_TIMING["ttl"] + LIQUIDSOAP_START_S + 10,
        what="the transcoded mount back",
    )
    takeover = time.monotonic() - killed_at
    assert takeover <= TEST_TIMING["ttl"] + LIQUIDSOAP_START_S + 10
    assert len(transcoder_processes("low.mp3")) == 1

    source.stop()  # the parent goes away: the transcoded mount keeps playing silence
    owner_node = radio_cluster.node(second)

    def silent_in_metrics() -> bool:
        metrics = listen(f"{owner_node.front_door_url}/metrics", 1 << 20).body.decode()
        return f'radio_mount_silent{{mount="low.mp3",node="{second}"}} 1.0' in metrics

    wait_for(
        silent_in_metrics,
        timeout=20,
        what="the silence in the metrics",
        explain=lambda: owner_node.log_tail(30),
    )
    # The first 64 KiB a listener gets are the recent past (the burst): judge the end.
    silence = listen(
        f"{survivors[1].front_door_url}/low.mp3", 80000, timeout=8, follow_redirects=True
    )
    assert silence.status == 200
    assert len(silence.body) == 80000
    assert loudness_db(silence.body[-16000:], "mp3") < -60
