"""The cluster against etcd trouble: quorum lost and back, etcd restarted under the agents,
and leadership churn sampled over time."""

from __future__ import annotations

import contextlib
import functools
import itertools
import random
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.agents import TEST_TIMING, RadioCluster, start_live_source
from tests.harness.clients import SourceClient, StreamRecorder, listen
from tests.harness.media import AudioSample
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

MOUNT = {"name": "live.mp3", "source_password": "dj-secret"}


def serves(url: str) -> bool:
    return listen(url, 2048, timeout=2).status == 200


def test_quorum_loss_demotes_the_leader_keeps_listeners_and_recovers(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    radio_cluster.store().create_mount(MOUNT)
    leader = radio_cluster.leader_taking_sources("/_live/live.mp3", "dj-secret")
    source = start_live_source(source_client_factory, leader, mp3_audio)
    others = [node for node in radio_cluster.nodes if node is not leader]
    for node in others:
        node.wait_serving("/live.mp3")
    listeners = [StreamRecorder(f"{node.icecast.base_url}/live.mp3").start() for node in others]
    try:
        lost_at = time.monotonic()
        radio_cluster.etcd.kill(0)
        radio_cluster.etcd.kill(1)

        # Cut off from etcd, the leader stops taking sources within retry_timeout (and a
        # probe's own connect), though its lease may still be alive.
        wait_for(
            lambda: not leader.accepts_source("/_live/live.mp3", "dj-secret"),
            timeout=TEST_TIMING["retry_timeout"] + 1,
            what="the leader to step down",
            interval=0.02,
        )
        demoted_seconds = time.monotonic() - lost_at
        assert demoted_seconds <= TEST_TIMING["retry_timeout"] + 0.5
        # ... and it dropped the connected source: nothing feeds /_live/ any more.
        wait_for(
            lambda: source.stream_error is not None or source.bytes_sent >= len(mp3_audio.data),
            timeout=10,
            what="the source to be disconnected",
        )
        assert radio_cluster.accepting_nodes("/_live/live.mp3", "dj-secret") == []

        # Listeners elsewhere keep receiving audio (holding silence) without etcd.
        observed_from = time.monotonic()
        while time.monotonic() < observed_from + 3:  # a bounded observation window
            assert all(listener.connected for listener in listeners)
            time.sleep(0.1)
        for listener in listeners:
            assert listener.bytes_since(observed_from + 1) > 0, listener.url

        radio_cluster.etcd.restart(0)
        radio_cluster.etcd.restart(1)
        new_leader = radio_cluster.wait_leader(timeout=2 * TEST_TIMING["ttl"] + 10)
        wait_for(
            lambda: radio_cluster.accepting_nodes("/_live/live.mp3", "dj-secret") == [new_leader],
            timeout=TEST_TIMING["ttl"] + 5,
            what="one leader accepting sources again",
            explain=radio_cluster.log_tails,
        )
        for listener in listeners:
            assert listener.connected
    finally:
        for listener in listeners:
            listener.stop()


def test_a_mount_created_after_etcd_restarted_reaches_every_node(
    radio_cluster: RadioCluster,
) -> None:
    radio_cluster.wait_leader()
    for index in range(3):
        radio_cluster.etcd.kill(index)
    for index in range(3):
        member = radio_cluster.etcd.members[index]
        member.start(
            radio_cluster.etcd.initial_cluster,
            radio_cluster.etcd.token,
            radio_cluster.etcd.directory.path / f"{member.name}.log",
        )
    for member in radio_cluster.etcd.members:
        radio_cluster.etcd.wait_healthy(member)
    radio_cluster.wait_leader(timeout=2 * TEST_TIMING["ttl"] + 10)

    radio_cluster.store().create_mount({"name": "after.mp3", "source_password": "pw-after"})

    for node in radio_cluster.nodes:
        wait_for(
            functools.partial(serves, f"{node.icecast.base_url}/after.mp3"),
            timeout=TEST_TIMING["loop_wait"] + 5,
            what=f"{node.name} to serve the new mount",
            explain=radio_cluster.log_tails,
        )


@contextlib.contextmanager
def notify_socket(path: Path) -> Iterator[socket.socket]:
    """A datagram socket like systemd's NOTIFY_SOCKET, which the test reads."""
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        receiver.bind(str(path))
        yield receiver
    finally:
        receiver.close()
        path.unlink(missing_ok=True)


def notifications(receiver: socket.socket, seconds: float) -> list[tuple[float, str]]:
    """(arrival, message) of every datagram that arrives within `seconds`."""
    received = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        receiver.settimeout(left)
        try:
            message = receiver.recv(4096).decode()
        except TimeoutError:
            break
        received.append((time.monotonic(), message))
    return received


def test_the_agent_feeds_systemds_watchdog_only_while_its_loop_runs(
    radio_cluster: RadioCluster, tmp_path: Path
) -> None:
    """As under systemd (Type=notify, WatchdogSec): READY=1 after the first loop, then
    WATCHDOG=1 three times per watchdog timeout; none while the agent is frozen, so
    systemd would kill it; again once it runs."""
    node = radio_cluster.nodes[0]
    node.stop()
    with notify_socket(tmp_path / "notify") as receiver:
        node.environment.update(NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="1500000")
        node.start()
        ready = wait_for(
            lambda: any(message == "READY=1" for _, message in notifications(receiver, 0.5)),
            timeout=15,
            what="READY=1 from the restarted agent",
            explain=node.log_tail,
        )
        assert ready
        feeds = [at for at, message in notifications(receiver, 3) if message == "WATCHDOG=1"]
        assert len(feeds) >= 5, feeds  # every 0.5 s
        assert max(b - a for a, b in itertools.pairwise(feeds)) < 1.0
        assert node.process is not None
        node.process.pause()
        try:
            notifications(receiver, 0.2)  # what it sent before it froze
            assert notifications(receiver, 3) == []  # past the 1.5 s timeout: killed
        finally:
            node.process.resume()
        back = notifications(receiver, 2)
        assert "WATCHDOG=1" in [message for _, message in back]

    # A unit's WatchdogSec longer than the lease allows: the agent shortens it at once to
    # what kills it before its lease can expire (here ttl 4 s: the 3 s floor).
    node.stop()
    with notify_socket(tmp_path / "notify-long") as receiver:
        node.environment.update(
            NOTIFY_SOCKET=str(tmp_path / "notify-long"), WATCHDOG_USEC="30000000"
        )
        node.start()
        wait_for(
            lambda: (
                "WATCHDOG_USEC=3000000" in [message for _, message in notifications(receiver, 0.5)]
            ),
            timeout=15,
            what="the agent shortening its watchdog",
            explain=node.log_tail,
        )


def test_exactly_one_node_accepts_sources_at_every_sampled_instant_under_churn(
    radio_cluster: RadioCluster,
) -> None:
    radio_cluster.store().create_mount(MOUNT)
    radio_cluster.wait_leader()
    chooser = random.Random(2026)
    samples = 0
    both_seen = []
    deadline = time.monotonic() + 40
    for round_number in range(6):
        if time.monotonic() > deadline:
            break
        leader = radio_cluster.node(radio_cluster.wait_leader(timeout=TEST_TIMING["ttl"] + 5))
        if chooser.random() < 0.5:
            leader.stop()  # graceful: hands over at once
        else:
            leader.kill()  # crash: the lease must expire first
        settle_until = time.monotonic() + TEST_TIMING["ttl"] + 2
        while time.monotonic() < settle_until:  # bounded sampling window
            accepting = radio_cluster.accepting_nodes("/_live/live.mp3", "dj-secret")
            samples += 1
            if len(accepting) > 1:
                both_seen.append((round_number, accepting))
        leader.start()
    assert samples > 50
    assert both_seen == []
    assert len(radio_cluster.accepting_nodes("/_live/live.mp3", "dj-secret")) == 1
