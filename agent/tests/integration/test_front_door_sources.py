"""Sources on any node's public port reach the leader; listeners anywhere hear them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.harness.agents import AgentNode, RadioCluster
from tests.harness.clients import (
    ResponseHead,
    SourceClient,
    connect_and_stream,
    is_slice_of,
    listen,
)
from tests.harness.liquidsoap import LiquidsoapTone
from tests.harness.media import AudioSample, loudness_db
from tests.harness.ports import LOOPBACK
from tests.harness.processes import ManagedProcess, ServiceDirectory
from tests.harness.waiting import wait_for
from tests.integration.conftest import PASSWORD

pytestmark = pytest.mark.integration


def roles(cluster: RadioCluster) -> tuple[AgentNode, AgentNode, AgentNode]:
    """(leader, a node the source connects to, a node the listener asks)."""
    leader = cluster.node(cluster.wait_leader())
    others = [node for node in cluster.nodes if node is not leader]
    return leader, others[0], others[1]


def listener_hears(node: AgentNode, mount: str, audio: bytes) -> bool:
    """A listener asking `node` (following its redirect) gets the source's own bytes."""
    received = listen(f"{node.front_door_url}/{mount}", 16384, timeout=3, follow_redirects=True)
    return received.status == 200 and is_slice_of(received.body[-4096:], audio)


def wait_heard(
    leader: AgentNode,
    listener_node: AgentNode,
    mount: str,
    audio: bytes,
    explain: Callable[[], str] | None = None,
) -> None:
    """Until the source is on the leader's live mount and a listener of `listener_node`
    gets its bytes."""
    wait_for(
        lambda: f"/_live/{mount}" in leader.icecast.all_sources(),
        timeout=10,
        what=f"the source on {leader.name}'s live mount",
        explain=explain,
    )
    wait_for(
        lambda: listener_hears(listener_node, mount, audio),
        timeout=10,
        what=f"the source's audio on {listener_node.name}",
    )


@pytest.mark.parametrize("method", ["SOURCE", "PUT"])
def test_a_source_on_a_non_leader_is_heard_on_a_third_node(
    radio_cluster: RadioCluster,
    live_mount: str,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
    method: str,
) -> None:
    leader, entry, listener_node = roles(radio_cluster)
    source = entry.front_door_source(
        source_client_factory, f"/{live_mount}", PASSWORD, method=method
    )
    connect_and_stream(source, mp3_audio)  # checks 200 (SOURCE) or 100 then 200 (PUT)
    wait_heard(leader, listener_node, live_mount, mp3_audio.data, radio_cluster.log_tails)


@pytest.fixture
def ffmpeg_source() -> Iterator[Callable[..., ManagedProcess]]:
    started: list[tuple[ManagedProcess, ServiceDirectory]] = []

    def start(url: str, audio: AudioSample, *, legacy: bool = False) -> ManagedProcess:
        directory = ServiceDirectory("ffmpeg-source")
        command = ["ffmpeg", "-nostdin", "-loglevel", "warning", "-re", "-i", str(audio.path)]
        command += ["-c:a", "copy", "-f", "mp3", "-content_type", "audio/mpeg"]
        command += ["-legacy_icecast", "1", url] if legacy else [url]
        process = ManagedProcess("ffmpeg", command, directory.path / "ffmpeg.log")
        started.append((process, directory))
        process.start()
        return process

    yield start
    for process, directory in started:
        process.stop()
        directory.remove()


@pytest.mark.parametrize("legacy", [False, True])
def test_ffmpeg_icecast_output_through_a_non_leader(
    radio_cluster: RadioCluster,
    live_mount: str,
    ffmpeg_source: Callable[..., ManagedProcess],
    mp3_audio: AudioSample,
    legacy: bool,
) -> None:
    """ffmpeg speaks PUT with Expect: 100-continue, or with `-legacy_icecast 1` SOURCE in
    HTTP/1.1; `-c:a copy` keeps the frames as sent."""
    leader, entry, listener_node = roles(radio_cluster)
    url = f"icecast://source:{PASSWORD}@{LOOPBACK}:{entry.front_door_port}/{live_mount}"
    process = ffmpeg_source(url, mp3_audio, legacy=legacy)
    wait_heard(leader, listener_node, live_mount, mp3_audio.data, process.log_tail)


def test_liquidsoap_output_icecast_through_a_non_leader(
    radio_cluster: RadioCluster,
    live_mount: str,
    liquidsoap_tone_factory: Callable[..., LiquidsoapTone],
) -> None:
    """Liquidsoap 2.1 sends SOURCE with no Host header. Its tone is loud; the holding
    silence is not, so a loud listener hears the tone."""
    leader, entry, listener_node = roles(radio_cluster)
    liquidsoap_tone_factory(
        leader.icecast,
        f"/{live_mount}",
        password=PASSWORD,
        port=entry.front_door_port,
        live_mount=f"/_live/{live_mount}",
    )

    def tone_heard() -> bool:
        received = listen(
            f"{listener_node.front_door_url}/{live_mount}", 48000, timeout=4, follow_redirects=True
        )
        return received.status == 200 and loudness_db(received.body[-32000:], "mp3") > -30

    wait_for(tone_heard, timeout=15, what="Liquidsoap's tone on the third node")


def test_a_wrong_password_gets_the_leaders_401(
    radio_cluster: RadioCluster,
    live_mount: str,
    source_client_factory: Callable[..., SourceClient],
) -> None:
    leader, entry, _ = roles(radio_cluster)
    for method in ("SOURCE", "PUT"):
        source = entry.front_door_source(
            source_client_factory, f"/{live_mount}", "wrong-password", method=method
        )
        answer = source.connect()  # Icecast checks before its 100 Continue
        assert answer.status == 401, answer
    assert f"/_live/{live_mount}" not in leader.icecast.all_sources()


def test_sources_for_unknown_mounts_or_without_a_leader_are_refused(
    radio_cluster: RadioCluster,
    live_mount: str,
    source_client_factory: Callable[..., SourceClient],
) -> None:
    _, entry, _ = roles(radio_cluster)
    source = entry.front_door_source(source_client_factory, "/nothing-here.mp3", PASSWORD)
    assert source.connect().status == 404
    internal = entry.front_door_source(source_client_factory, f"/_live/{live_mount}", PASSWORD)
    assert internal.connect().status == 404


def test_without_a_leader_sources_are_told_to_retry(
    radio_cluster: RadioCluster,
    live_mount: str,
    source_client_factory: Callable[..., SourceClient],
) -> None:
    """etcd unreachable: every agent steps back, no node knows a leader, and a source
    gets 503 with Retry-After instead of a pipe to a node that no longer leads."""
    _, entry, _ = roles(radio_cluster)

    def refused() -> ResponseHead | None:
        source = entry.front_door_source(source_client_factory, f"/{live_mount}", PASSWORD)
        answer = source.connect(timeout=2)
        source.stop()
        return answer if answer.status == 503 else None

    with radio_cluster.etcd.unreachable():
        answer = wait_for(refused, timeout=10, what="sources refused without a leader")
        assert answer.headers["retry-after"].isdigit()
    radio_cluster.wait_leader()
