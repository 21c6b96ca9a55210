"""Transcoded mounts with real Liquidsoap: one process per mount in the whole cluster,
playable from every node in the requested format, taken over when its node dies."""

from __future__ import annotations

import functools
import http.client
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness.agents import TEST_TIMING, AgentNode, RadioCluster, connect_source
from tests.harness.clients import SourceClient, connect_and_stream, listen
from tests.harness.etcd import EtcdCluster
from tests.harness.icecast import IcecastServer
from tests.harness.media import AudioSample, loudness_db
from tests.harness.ports import LOOPBACK
from tests.harness.transcoders import (
    live_on_leader,
    owner,
    plays_sound,
    transcoder_processes,
)
from tests.harness.waiting import wait_for
from tests.integration.conftest import started

pytestmark = pytest.mark.integration

PASSWORD = "dj-secret"
LIQUIDSOAP_START_S = 6.0  # Liquidsoap's start-up and first connection, with margin


def adts_chain(data: bytes, position: int) -> tuple[int, int]:
    """(frames, bytes) of the run of ADTS frames starting at `position`."""
    frames = total = 0
    while (
        position + 7 <= len(data) and data[position] == 0xFF and data[position + 1] & 0xF6 == 0xF0
    ):
        length = (
            ((data[position + 3] & 3) << 11) | (data[position + 4] << 3) | (data[position + 5] >> 5)
        )
        if length < 7 or position + length > len(data):
            break
        frames, total, position = frames + 1, total + length, position + length
    return frames, total


def adts_bitrate_kbps(data: bytes, samplerate: int) -> float:
    """Average bitrate of the longest run of ADTS frames (1024 samples each) in `data`,
    which starts anywhere in the stream."""
    frames, total = max(adts_chain(data, position) for position in range(min(len(data), 4096)))
    assert frames > 10, "no run of ADTS frames"
    return total * 8 / (frames * 1024 / samplerate) / 1000


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
    cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
    cluster.wait_leader()
    entry = cluster.nodes[0]
    entry.wait_front_door_serving("/live.mp3")
    source = entry.front_door_source(make, "/live.mp3", PASSWORD)
    return connect_and_stream(source, audio)


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
    radio_cluster.store().create_mount(
        {
            "name": name,
            "source_password": "transcoder-secret",
            "transcode": {"parent": "live.mp3", "format": spec},
        }
    )
    for node in radio_cluster.nodes:
        body = wait_for(
            functools.partial(plays_sound, node, name, container),
            timeout=20,
            what=f"{name} on {node.name}",
            explain=radio_cluster.log_tails,
        )
        stream = probe(body, container)
        assert stream["codec_name"] == codec_name
        assert int(stream["sample_rate"]) == spec["samplerate"]
        assert stream["channels"] == spec["channels"]
        if codec_name == "aac":
            # ffmpeg's AAC encoder aims at an average and spends less on simple audio
            # (pink noise: about a third): it must never exceed what was asked.
            assert adts_bitrate_kbps(body, spec["samplerate"]) <= 1.2 * spec["bitrate_kbps"]
        elif "bit_rate" in stream:  # MP3 frames and Vorbis headers carry it; Opus does not
            assert (
                abs(int(stream["bit_rate"]) / 1000 - spec["bitrate_kbps"])
                <= 0.2 * spec["bitrate_kbps"]
            )
    assert len(transcoder_processes(name, radio_cluster)) == 1


def test_the_owner_dies_another_node_transcodes_and_the_parent_gone_means_silence(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    long_mp3_audio: AudioSample,
) -> None:
    source = start_parent(radio_cluster, source_client_factory, long_mp3_audio)
    radio_cluster.store().create_mount(
        {
            "name": "low.mp3",
            "source_password": "transcoder-secret",
            "transcode": {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 64}},
        }
    )
    first = wait_for(lambda: owner(radio_cluster, "low.mp3"), timeout=10, what="an owner")
    listener_node = next(node for node in radio_cluster.nodes if node.name != first)
    wait_for(
        lambda: plays_sound(listener_node, "low.mp3", "mp3"),
        timeout=20,
        what="the transcoded mount",
    )

    killed = radio_cluster.node(first)
    killed_at = time.monotonic()
    killed.kill()  # SIGKILL: the kernel kills its Liquidsoap with it
    wait_for(
        lambda: not transcoder_processes("low.mp3", killed),
        timeout=2,
        what="the dead agent's Liquidsoap to die with it",
    )

    def another_owner() -> str | None:
        current = owner(radio_cluster, "low.mp3")
        return current if current != first else None

    second = wait_for(
        another_owner,
        timeout=TEST_TIMING["ttl"] + 5,
        what="another owner",
    )
    survivors = [node for node in radio_cluster.nodes if node is not killed]
    if first == radio_cluster.nodes[0].name:
        # The studio's entry node died with it: the studio reconnects, as encoders do.
        # (Had only the leader died, the studio would ride through to the new one.)
        radio_cluster.wait_leader(other_than=first)
        source = wait_for(
            lambda: connect_source(
                survivors[0], source_client_factory, "/live.mp3", PASSWORD, long_mp3_audio
            ),
            timeout=10,
            what="the parent's source back",
        )
    wait_for(
        lambda: plays_sound(survivors[1], "low.mp3", "mp3", fresh=True),
        timeout=TEST_TIMING["ttl"] + LIQUIDSOAP_START_S + 10,
        what="the transcoded mount back",
        explain=lambda: radio_cluster.log_tails(200),
    )
    takeover = time.monotonic() - killed_at
    assert takeover <= TEST_TIMING["ttl"] + LIQUIDSOAP_START_S + 10
    assert len(transcoder_processes("low.mp3", radio_cluster)) == 1

    def on_air() -> bool | None:
        status = json.loads(listen(f"{survivors[0].front_door_url}/api/v1/status", 1 << 20).body)
        return status["mounts"]["low.mp3"]["on_air"]

    wait_for(on_air, timeout=10, what="low.mp3 on air with its parent")

    source.stop()  # the parent goes away: the transcoded mount keeps playing silence
    owner_node = radio_cluster.node(second)
    # ... but it is dead air, like its parent: in the status and on every node's metrics.
    wait_for(lambda: on_air() is False, timeout=10, what="low.mp3 shown as dead air")
    for node in survivors:
        assert node.metric("radio_mount_source_connected", mount="low.mp3") == 0

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
    # Past the burst of the recent past: how much of it a new listener gets depends on
    # how long the node's relay has run (it restarts when the transcoder's output does),
    # so read for a while rather than expect a full 64 KiB at once. 64 kbps is 8 KB/s.
    silence = listen(
        f"{survivors[1].front_door_url}/low.mp3", 80000, timeout=12, follow_redirects=True
    )
    assert silence.status == 200
    assert len(silence.body) >= 48000
    assert loudness_db(silence.body[-16000:], "mp3") < -60


def create_transcoded(cluster: RadioCluster, name: str) -> None:
    cluster.store().create_mount(
        {
            "name": name,
            "source_password": "transcoder-secret",
            "transcode": {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 64}},
        }
    )


def test_the_transcoder_follows_a_new_leader_by_itself(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    radio_cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
    create_transcoded(radio_cluster, "low.mp3")
    wait_for(lambda: live_on_leader(radio_cluster, ["low.mp3"]), timeout=20, what="transcoder")
    leader = radio_cluster.node(radio_cluster.wait_leader())
    transcoding = owner(radio_cluster, "low.mp3")
    leader.stop()  # SIGTERM: hand-over well under a second
    new_leader = radio_cluster.wait_leader(other_than=leader.name)
    wait_for(
        lambda: live_on_leader(radio_cluster, ["low.mp3"]),
        timeout=LIQUIDSOAP_START_S + 5,
        what=f"the transcoder pushing to {new_leader}",
    )
    if transcoding != leader.name:
        assert owner(radio_cluster, "low.mp3") == transcoding  # it stayed where it was
    assert len(transcoder_processes("low.mp3", radio_cluster)) == 1


def test_an_owner_restarted_at_once_releases_its_previous_lives_claim_and_never_runs_it_twice(
    agent_icecasts: list[IcecastServer], etcd_cluster: EtcdCluster, holding_cache_dir: Path
) -> None:
    """As systemd restarts a crashed agent (1 s): the new life finds a claim with its
    name on the old lease. Running it would make two Liquidsoaps once that lease expires
    and another node claims the mount; the claim is released at once instead."""
    timing = {"ttl": 10.0, "loop_wait": 1.0, "retry_timeout": 2.0}
    cluster = RadioCluster(
        etcd_cluster, started(agent_icecasts), timing, holding_cache_dir=holding_cache_dir
    )
    try:
        cluster.start()
        cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
        create_transcoded(cluster, "low.mp3")
        wait_for(lambda: live_on_leader(cluster, ["low.mp3"]), timeout=20, what="transcoder")
        victim = cluster.node(owner(cluster, "low.mp3") or "")
        key = cluster.layout.transcoder("low.mp3")

        def claim_lease() -> int | None:
            value, metadata = cluster.client().get(key)
            return None if value is None else metadata.lease_id

        old_lease = claim_lease()
        killed_at = time.monotonic()
        victim.kill()  # with its Liquidsoap, as systemd ends the unit's processes
        victim.start()
        # Released by the new life (then claimed again, on a live lease) well before the
        # old lease would have expired.
        wait_for(
            lambda: claim_lease() != old_lease,
            timeout=timing["ttl"] / 2,
            what="the previous life's claim released",
            explain=cluster.log_tails,
        )
        most = 0
        # Past the old lease's expiry, when a second Liquidsoap would start.
        while time.monotonic() - killed_at < timing["ttl"] + LIQUIDSOAP_START_S:
            most = max(most, len(transcoder_processes("low.mp3", cluster)))
            time.sleep(0.1)  # sampling /proc: nothing to wait on
        assert most == 1
        wait_for(lambda: live_on_leader(cluster, ["low.mp3"]), timeout=10, what="transcoder")
    finally:
        cluster.stop()


# On real machines, with systemd's restarts and more kinds of faults, bench/chaos --short
# (the cluster scenario) churns too: here a dozen is enough to meet kill and stop alike.
CHURN_EVENTS = 12


@pytest.mark.timeout(480)
def test_churn_never_runs_a_transcoder_twice_and_always_brings_them_back(
    radio_cluster: RadioCluster,
) -> None:
    """Random SIGKILLs and SIGTERMs of agents, each followed by a restart. Between
    events, /proc is sampled: never two Liquidsoap processes for one mount."""
    radio_cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
    mounts = ["low.mp3", "tiny.mp3"]
    for name in mounts:
        create_transcoded(radio_cluster, name)
    rng = random.Random(20261121)
    samples = 0

    def no_duplicates_and_back(gone: str | None = None) -> bool:
        """Never two processes for a mount; back means: neither the leader nor a claim is
        still held by the node that went (its lease expired or was revoked), and every
        transcoder pushes to the leader."""
        nonlocal samples
        samples += 1
        for name in mounts:
            running = transcoder_processes(name, radio_cluster)
            assert len(running) <= 1, f"{name} transcoded by {running}"
        held_by_gone = gone is not None and (
            radio_cluster.leader_name() == gone
            or any(owner(radio_cluster, name) == gone for name in mounts)
        )
        return not held_by_gone and live_on_leader(radio_cluster, mounts)

    wait_for(no_duplicates_and_back, timeout=30, what="both transcoders", interval=0.1)
    # They spread: the node holding one does not take the second while others hold none.
    assert owner(radio_cluster, mounts[0]) != owner(radio_cluster, mounts[1])
    for event in range(CHURN_EVENTS):
        victim = rng.choice(radio_cluster.nodes)
        if rng.random() < 0.5:
            victim.kill()
        else:
            victim.stop()
        wait_for(
            functools.partial(no_duplicates_and_back, victim.name),
            timeout=TEST_TIMING["ttl"] + LIQUIDSOAP_START_S + 10,
            what=f"both transcoders back after event {event + 1}",
            interval=0.1,
            explain=radio_cluster.log_tails,
        )
        victim.start()
        radio_cluster.wait_all_present()
    assert samples > CHURN_EVENTS


def relay_answer(node: AgentNode, mount: str) -> tuple[int, str | None, float]:
    """The node's agent's answer to its Icecast's relay request: status, Location, and
    how long it took."""
    local_api = node.config["local_api"]
    assert isinstance(local_api, dict)
    connection = http.client.HTTPConnection(LOOPBACK, local_api["port"], timeout=15)
    started = time.monotonic()
    try:
        connection.request("GET", f"/relay/{mount}")
        response = connection.getresponse()
        return response.status, response.getheader("Location"), time.monotonic() - started
    finally:
        connection.close()


def leader_live_url(cluster: RadioCluster) -> str:
    leader = cluster.node(cluster.wait_leader())
    return f"{leader.icecast.base_url}/_live/"


def test_a_crashed_liquidsoap_is_restarted_and_a_node_cut_off_stops_its_transcoders(
    radio_cluster: RadioCluster,
) -> None:
    radio_cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
    create_transcoded(radio_cluster, "low.mp3")
    wait_for(lambda: live_on_leader(radio_cluster, ["low.mp3"]), timeout=20, what="transcoder")
    (crashed,) = transcoder_processes("low.mp3", radio_cluster)
    os.kill(crashed, signal.SIGKILL)
    wait_for(lambda: not live_on_leader(radio_cluster, ["low.mp3"]), timeout=5, what="source gone")
    # Meanwhile a relay of it (Icecast's, on any node) is held until the source is back,
    # not refused into Icecast's retry a second later; a studio's mount is not held.
    node = radio_cluster.nodes[1]
    assert relay_answer(node, "live.mp3")[:2] == (302, f"{leader_live_url(radio_cluster)}live.mp3")
    status, location, held_s = relay_answer(node, "low.mp3")
    assert (status, location) == (302, f"{leader_live_url(radio_cluster)}low.mp3")
    assert live_on_leader(radio_cluster, ["low.mp3"])
    assert held_s > 0.2  # it waited for the restart (1 s backoff, then Liquidsoap's start)
    assert transcoder_processes("low.mp3", radio_cluster) not in ([], [crashed])

    with radio_cluster.etcd.unreachable():
        cut_at = time.monotonic()
        wait_for(
            lambda: not transcoder_processes("low.mp3", radio_cluster),
            timeout=TEST_TIMING["ttl"],
            what="the transcoder stopped by its cut-off agent",
        )
        # Stopped before the claim could expire and be taken elsewhere.
        assert time.monotonic() - cut_at < TEST_TIMING["ttl"]
    wait_for(
        lambda: live_on_leader(radio_cluster, ["low.mp3"]),
        timeout=TEST_TIMING["ttl"] + LIQUIDSOAP_START_S + 10,
        what="the transcoder back once etcd answers",
    )


def test_a_node_whose_liquidsoap_cannot_start_gives_its_transcoder_to_another(
    radio_cluster: RadioCluster,
) -> None:
    """node1's Liquidsoap exits at once (its command is `false`): after three failures in
    a row it gives its claim up, another node runs the mount, and node1 says so in its
    metrics and does not take it back."""
    broken = radio_cluster.node("node1")
    broken.stop()
    transcoding = broken.config["transcoding"]
    assert isinstance(transcoding, dict)
    transcoding["liquidsoap_command"] = ["false"]
    broken.start()
    radio_cluster.wait_all_present()
    radio_cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
    names = ["a.mp3", "b.mp3", "c.mp3"]  # one each: the spread rule gives node1 one
    for name in names:
        create_transcoded(radio_cluster, name)

    def given_up_by_broken() -> str | None:
        return next(
            (name for name in names if broken.metric("radio_transcoder_given_up", mount=name)),
            None,
        )

    gave_up = wait_for(
        given_up_by_broken,
        timeout=40,
        what="node1 giving up the mount its Liquidsoap cannot run",
        explain=lambda: broken.log_tail(40),
    )
    wait_for(
        lambda: (
            live_on_leader(radio_cluster, names)
            and all(owner(radio_cluster, name) not in (None, "node1") for name in names)
        ),
        timeout=TEST_TIMING["ttl"] + LIQUIDSOAP_START_S + 10,
        what=f"{gave_up} run by another node, with the others",
        explain=radio_cluster.log_tails,
    )
    for name in names:
        assert len(transcoder_processes(name, radio_cluster)) == 1, name
    assert transcoder_processes(gave_up, broken) == []
    # It stays away (for 5 minutes): through three more of its loops, no claim of node1.
    loops_later = time.monotonic() + 3 * TEST_TIMING["loop_wait"]
    while time.monotonic() < loops_later:
        assert all(owner(radio_cluster, name) != "node1" for name in names)
        time.sleep(0.2)  # a polling period: the claims must stay away the whole time
    assert broken.metric("radio_transcoder_given_up", mount=gave_up) == 1
