"""Failsafe on quorum loss: etcd without quorum while every agent is up silences no
studio; one agent missing, the leader steps down as before; pings that are not the
cluster's change nothing."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import pytest

from radioagent.coordination.failsafe import PATH, Ping, ping_target
from radioagent.transcoding.assignment import first_taker
from tests.harness.agents import TEST_TIMING, AgentNode, RadioCluster, connect_source
from tests.harness.clients import SourceClient, StreamRecorder, listen
from tests.harness.etcd import EtcdCluster
from tests.harness.icecast import IcecastServer
from tests.harness.media import AudioSample
from tests.harness.transcoders import (
    TranscoderCensus,
    live_on_leader,
    owner,
    transcoder_processes,
)
from tests.harness.waiting import wait_for
from tests.integration.conftest import started

pytestmark = pytest.mark.integration

KEY = "failsafe-test-key-0123456789abcdef0123"
STUDIO = {"name": "live.mp3", "source_password": "dj-secret"}
PROBE = {"name": "probe.mp3", "source_password": "probe-secret"}  # taken only to probe
PROBE_LIVE = "/_live/probe.mp3"
LOW = {
    "name": "low.mp3",
    "source_password": "transcoder-secret",
    "transcode": {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 64}},
}
RETRY = TEST_TIMING["retry_timeout"]


@pytest.fixture
def failsafe_cluster(
    agent_icecasts: list[IcecastServer], etcd_cluster: EtcdCluster, holding_cache_dir: Path
) -> Iterator[RadioCluster]:
    cluster = RadioCluster(
        etcd_cluster,
        started(agent_icecasts),
        holding_cache_dir=holding_cache_dir,
        failsafe_key=KEY,
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def ask(node: AgentNode, target: str) -> tuple[int, dict[str, object]]:
    result = listen(f"{node.front_door_url}{target}", 4096, timeout=3)
    return result.status, json.loads(result.body or b"{}")


def on_air(
    cluster: RadioCluster, make: Callable[..., SourceClient], audio: AudioSample
) -> tuple[AgentNode, AgentNode, AgentNode, SourceClient, StreamRecorder]:
    """The leader; a studio through one replica's front door; a listener on the other's."""
    store = cluster.store()
    store.create_mount(STUDIO)
    store.create_mount(PROBE)
    leader = cluster.leader_taking_sources(PROBE_LIVE, "probe-secret")
    entry, other = (node for node in cluster.nodes if node is not leader)
    studio = wait_for(
        lambda: connect_source(entry, make, "/live.mp3", "dj-secret", audio),
        timeout=10,
        what="the studio to be taken through a replica",
    )
    listener = StreamRecorder(f"{other.front_door_url}/_stream/live.mp3").start()
    wait_for(
        lambda: hears_studio(listener, audio, time.monotonic() - 1),
        timeout=10,
        what="the studio heard on the other replica",
    )
    return leader, entry, other, studio, listener


def hears_studio(listener: StreamRecorder, audio: AudioSample, since: float) -> bool:
    """Bytes arrived since `since`, and the newest 2 KB of them are the studio's own."""
    return listener.bytes_since(since) > 4096 and bytes(listener.body[-2048:]) in audio.data


def test_pings_that_are_not_the_clusters_are_refused_and_change_nothing(
    failsafe_cluster: RadioCluster,
) -> None:
    failsafe_cluster.store().create_mount(PROBE)
    leader = failsafe_cluster.leader_taking_sources(PROBE_LIVE, "probe-secret")
    replica = next(node for node in failsafe_cluster.nodes if node is not leader)
    epoch = failsafe_cluster.statuses()[leader.name].epoch or 0
    now_ms = int(time.time() * 1000)
    good = ping_target(KEY.encode(), Ping(leader.name, epoch, replica.name, now_ms))
    fields = {name: values[0] for name, values in parse_qs(good.split("?", 1)[1]).items()}

    forged = ping_target(
        b"another-key-0123456789abcdef0123456", Ping(leader.name, epoch, replica.name, now_ms)
    )
    assert ask(replica, forged)[0] == 403
    stale = ping_target(KEY.encode(), Ping(leader.name, epoch, replica.name, now_ms - 60_000))
    assert ask(replica, stale)[0] == 403
    elsewhere = ping_target(KEY.encode(), Ping(leader.name, epoch, leader.name, now_ms))
    assert ask(replica, elsewhere)[0] == 403  # a ping for another node, replayed here
    missing = {name: value for name, value in fields.items() if name != "epoch"}
    status, body = ask(replica, f"{PATH}?{urlencode(missing)}")
    assert status == 400
    assert "epoch" in str(body["error"])
    assert ask(replica, f"{PATH}?{urlencode({**fields, 'epoch': 'x'})}")[0] == 400

    # Well formed and signed, but the replica reaches etcd: refused, saying why.
    status, body = ask(replica, good)
    assert status == 200
    assert body["acknowledged"] is False
    assert body["reason"] == "this node still reaches etcd"
    # None of it moved the leadership.
    assert failsafe_cluster.accepting_nodes(PROBE_LIVE, "probe-secret") == [leader.name]


def test_a_quorum_loss_with_every_node_up_silences_no_studio(
    failsafe_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    long_mp3_audio: AudioSample,
) -> None:
    cluster = failsafe_cluster
    leader, _, _, studio, listener = on_air(cluster, source_client_factory, long_mp3_audio)
    cluster.store().create_mount(LOW)
    (transcoder,) = wait_for(
        lambda: transcoder_processes("low.mp3", cluster),
        timeout=15,
        what="low.mp3's transcoder",
        explain=cluster.log_tails,
    )
    try:
        lost_at = time.monotonic()
        cluster.etcd.kill(0)
        cluster.etcd.kill(1)
        # Three leases' worth without quorum: only the leader ever takes a source.
        window = 3 * TEST_TIMING["ttl"]
        samples = 0
        while time.monotonic() < lost_at + window:  # bounded by the window
            assert cluster.accepting_nodes(PROBE_LIVE, "probe-secret") == [leader.name]
            samples += 1
            time.sleep(0.2)
        assert samples >= 10
        assert not studio.closed_by_peer()
        assert listener.connected
        assert hears_studio(listener, long_mp3_audio, time.monotonic() - 1)
        assert listener.longest_gap(lost_at, time.monotonic()) < 2.0
        # Nobody could claim it without quorum, so its owner kept it: the same process.
        assert transcoder_processes("low.mp3", cluster) == [transcoder]

        cluster.etcd.restart(0)
        cluster.etcd.restart(1)
        # Quorum back: the same leadership goes on, no election.
        cluster.etcd.wait_leader(among=[0, 1, 2], timeout=15)
        assert cluster.leader_name() == leader.name
        assert cluster.accepting_nodes(PROBE_LIVE, "probe-secret") == [leader.name]
        assert hears_studio(listener, long_mp3_audio, time.monotonic() - 1)
    finally:
        listener.stop()


def test_without_every_acknowledgement_the_leader_steps_down_as_before(
    failsafe_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    long_mp3_audio: AudioSample,
) -> None:
    cluster = failsafe_cluster
    leader, _, other, _, listener = on_air(cluster, source_client_factory, long_mp3_audio)
    try:
        cluster.etcd.kill(0)
        cluster.etcd.kill(1)
        # Held past the fence's bound while every node acknowledges.
        lost_at = time.monotonic()
        while time.monotonic() < lost_at + RETRY + 1:  # bounded
            assert cluster.accepting_nodes(PROBE_LIVE, "probe-secret") == [leader.name]
            time.sleep(0.2)

        other.kill()  # one agent can no longer acknowledge
        killed_at = time.monotonic()
        wait_for(
            lambda: cluster.accepting_nodes(PROBE_LIVE, "probe-secret") == [],
            timeout=RETRY + 2,
            what="the leader to step down",
            interval=0.05,
        )
        assert time.monotonic() - killed_at <= RETRY + 1.5

        cluster.etcd.restart(0)
        cluster.etcd.restart(1)
        new_leader = cluster.wait_leader(timeout=2 * TEST_TIMING["ttl"] + 10)
        wait_for(
            lambda: cluster.accepting_nodes(PROBE_LIVE, "probe-secret") == [new_leader],
            timeout=TEST_TIMING["ttl"] + 5,
            what="one leader taking sources again",
            explain=cluster.log_tails,
        )
    finally:
        listener.stop()


def test_a_raft_leader_frozen_past_the_ttl_never_gives_two_leaders_nor_transcoders_when_it_wakes(
    failsafe_cluster: RadioCluster,
) -> None:
    """The frozen raft leader wakes still leading and revokes every lease at once (they
    all ran out while it slept; etcd-io/etcd#15247), the failsafe leader's among them. A
    node that hears etcd again refuses to acknowledge and waits out any hold before it
    campaigns; a node that finds its lease gone claims no transcoder before every other
    owner has learnt that its own went too. Each node owns a transcoder whose first taker
    is another node, so whichever node learns of the revocation first, the mount it
    would take at once still runs on a node that has not learnt it yet."""
    cluster = failsafe_cluster
    store = cluster.store()
    store.create_mount(PROBE)
    store.create_mount(STUDIO)
    leader = cluster.leader_taking_sources(PROBE_LIVE, "probe-secret")
    names = [node.name for node in cluster.nodes]
    placed = {}  # mount -> the node it went to, away from its first taker
    for first in names:
        mount = next(
            f"low{number}.mp3"
            for number in range(50)
            if first_taker(f"low{number}.mp3", names, dict.fromkeys(names, 0)) == first
        )
        store.drain(first, int(time.time()))  # it takes no new transcoder meanwhile
        store.create_mount({**LOW, "name": mount})
        placed[mount] = wait_for(
            functools.partial(owner, cluster, mount),
            timeout=10,
            what=f"{mount} claimed",
            explain=cluster.log_tails,
        )
        assert placed[mount] != first
        assert store.undrain(first)
    transcoded = sorted(placed)
    wait_for(
        lambda: live_on_leader(cluster, transcoded),
        timeout=30,
        what="every transcoder pushing to the leader",
        explain=cluster.log_tails,
    )
    raft_leader = cluster.etcd.leader_index([0, 1, 2])
    # Woken follower first: the raft leader's first append on waking then commits (with
    # the revocations) before the third member's higher term reaches it.
    frozen = [(raft_leader + 1) % 3, raft_leader]
    for index in frozen:
        cluster.etcd.pause(index)
    try:
        frozen_at = time.monotonic()
        while time.monotonic() < frozen_at + TEST_TIMING["ttl"] + 2:  # bounded
            assert cluster.accepting_nodes(PROBE_LIVE, "probe-secret") == [leader.name]
            time.sleep(0.2)
    finally:
        for index in frozen:
            cluster.etcd.resume(index)
    woke_at = time.monotonic()
    # Two Liquidsoaps of a mount may overlap for well under a second: watched apart.
    with TranscoderCensus(transcoded, cluster, seconds=3 * TEST_TIMING["ttl"]) as census:
        while time.monotonic() < woke_at + 3 * TEST_TIMING["ttl"]:  # bounded
            accepting = cluster.accepting_nodes(PROBE_LIVE, "probe-secret")
            assert len(accepting) <= 1, accepting
            time.sleep(0.05)
    assert census.passes > 100
    assert census.seen == set(transcoded)
    assert census.overlaps == {}
    new_leader = cluster.wait_leader(timeout=10)
    wait_for(
        lambda: (
            cluster.accepting_nodes(PROBE_LIVE, "probe-secret") == [new_leader]
            and live_on_leader(cluster, transcoded)
        ),
        timeout=20,
        what="one leader taking sources, every transcoder pushing to it",
        explain=cluster.log_tails,
    )


ACKNOWLEDGE_ON_A_FULL_DISK = r"""
import json, sys, time
from pathlib import Path
from radioagent.coordination.election import Leadership, Role
from radioagent.coordination.failsafe import Ping, ping_target
from radioagent.failsafe_link import FailsafeLink
key, state = sys.argv[1], Path(sys.argv[2])
link = FailsafeLink(key, "node2", clock=time.monotonic, state_file=state)  # made: disk not full
filler, block = state.with_name("filler"), b"\0" * 4096
with filler.open("wb", buffering=0) as out:
    for _ in range(4096):  # bounded: the tmpfs holds far fewer blocks
        try:
            out.write(block)
        except OSError:
            break
    else:
        sys.exit("the filesystem never filled up")
ping = Ping("node1", 7, "node2", int(time.time() * 1000), held=True)
query = ping_target(key.encode(), ping).partition("?")[2]
status, body = link.answer(query, Leadership(Role.REPLICA, "node1", 7), cut_off=True)
print(json.dumps({"status": status, "body": json.loads(body), "state": state.read_text()}))
"""


def test_a_node_whose_disk_is_full_still_acknowledges(tmp_path: Path) -> None:
    """A full /var (the journal, etcd's data) must not turn this node's acknowledgements
    into refusals, which would make the leader step down: the state file made at start is
    rewritten in place. On a real filesystem, filled up: a 64 KiB tmpfs in a mount
    namespace of the test's own (gone with its process)."""
    mount = tmp_path / "var"
    mount.mkdir()
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {mount} && "
        f'exec "$0" -c "$1" {KEY} {mount}/failsafe-acknowledged'
    )
    answered = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            sys.executable,
            ACKNOWLEDGE_ON_A_FULL_DISK,
        ],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answered.returncode == 0, answered.stderr
    result = json.loads(answered.stdout)
    assert result["status"] == 200
    assert result["body"]["acknowledged"] is True, result["body"]
    assert abs(float(result["state"]) - time.time()) < 30
