"""Studios ride through a leader change: a source connected to a node that stays up is
not disconnected when leadership moves (graceful stop or crash of the leader), its audio
goes on from where the old leader stopped, and listeners on other nodes hear it again.
Real etcd, Icecast and agents; the studio is a socket-level SOURCE or PUT client."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest

from radioagent.frontdoor.sources import STALLED_STUDIO_SECONDS
from tests.harness.agents import TEST_TIMING, AgentNode, RadioCluster
from tests.harness.audio import analyse_ogg
from tests.harness.clients import SourceClient, StreamRecorder, connect_and_stream, listen
from tests.harness.media import AudioSample, loudness_db
from tests.harness.waiting import wait_for
from tests.integration.conftest import PASSWORD
from tests.integration.test_front_door_sources import roles, wait_heard

pytestmark = pytest.mark.integration

BLOCK = 1024  # bytes matched at a time against what the studio sent
# The studio's last byte, STALLED_STUDIO_SECONDS, then a loop at most.
STALL_CUT_WITHIN = 25.0
HOLDING_WATCHED_SECONDS = 10.0


def studio_jumps(received: bytes, sent: bytes) -> list[int]:
    """Where the studio's audio skipped in what a listener received: for each pair of
    consecutive blocks of the studio's own bytes (holding audio in between is not the
    studio's), how many studio bytes lie between them (0: none lost; negative: sent
    again). Alignment makes each at most 2 blocks over the truth."""
    found = [
        sent.find(received[start : start + BLOCK])
        for start in range(0, len(received) - BLOCK, BLOCK)
    ]
    positions = [position for position in found if position >= 0]
    return [later - (earlier + BLOCK) for earlier, later in itertools.pairwise(positions)]


def listening(node: AgentNode, mount: str) -> StreamRecorder:
    return StreamRecorder(f"{node.front_door_url}/_stream/{mount}", max_seconds=90).start()


@pytest.mark.parametrize(
    ("method", "how"), [("SOURCE", "stop"), ("PUT", "stop"), ("SOURCE", "crash")]
)
def test_a_studio_on_a_surviving_node_rides_through_a_leader_change(  # noqa: PLR0917 - fixtures
    radio_cluster: RadioCluster,
    live_mount: str,
    source_client_factory: Callable[..., SourceClient],
    long_mp3_audio: AudioSample,
    method: str,
    how: str,
) -> None:
    leader, entry, other = roles(radio_cluster)
    source = entry.front_door_source(
        source_client_factory, f"/{live_mount}", PASSWORD, method=method
    )
    connect_and_stream(source, long_mp3_audio)
    wait_heard(leader, other, live_mount, long_mp3_audio.data)
    listener = listening(other, live_mount)
    wait_for(lambda: len(listener.body) > 64000, timeout=10, what="the listener's audio")

    if how == "crash":
        leader.crash()  # agent and Icecast killed: no goodbye
    else:
        leader.stop()  # graceful: the agent resigns; its Icecast stays up
    new_leader = radio_cluster.node(
        radio_cluster.wait_leader(timeout=TEST_TIMING["ttl"] + 5, other_than=leader.name)
    )
    wait_heard(new_leader, other, live_mount, long_mp3_audio.data)
    resumed = len(listener.body)
    wait_for(
        lambda: len(listener.body) > resumed + 64000,
        timeout=15,
        what="the listener to go on with the studio",
    )
    listener.stop()

    # The studio never noticed: no error on its socket, still sending.
    assert source.stream_error is None
    assert source.bytes_sent < len(long_mp3_audio.data)
    assert listener.error is None
    jumps = studio_jumps(bytes(listener.body), long_mp3_audio.data)
    # Within a run each block follows the last (0); across the change nothing is lost
    # (up to the replay margin may come twice: a negative jump).
    assert jumps.count(0) > len(jumps) * 0.9
    assert max(jumps) <= 2 * BLOCK, sorted(jumps)[-5:]


def test_a_studio_whose_backlog_overflows_is_cut(
    radio_cluster: RadioCluster,
    live_mount: str,
    source_client_factory: Callable[..., SourceClient],
    long_mp3_audio: AudioSample,
) -> None:
    """No leader for longer than the backlog holds: the studio is cut, counted, and its
    encoder's retry brings it back once a leader exists."""
    _, entry, _ = roles(radio_cluster)
    source = entry.front_door_source(source_client_factory, f"/{live_mount}", PASSWORD)
    connect_and_stream(source, long_mp3_audio)
    with radio_cluster.etcd.unreachable():
        wait_for(
            lambda: source.stream_error is not None,
            timeout=60,
            what="the studio to be cut once its backlog is full",
            explain=entry.log_tail,
        )
    assert entry.metric("radio_sources_overflowed_total") == 1
    radio_cluster.wait_leader()


def test_the_studio_is_counted_as_riding_through(
    radio_cluster: RadioCluster,
    live_mount: str,
    source_client_factory: Callable[..., SourceClient],
    long_mp3_audio: AudioSample,
) -> None:
    leader, entry, other = roles(radio_cluster)
    source = entry.front_door_source(source_client_factory, f"/{live_mount}", PASSWORD)
    connect_and_stream(source, long_mp3_audio)
    wait_heard(leader, other, live_mount, long_mp3_audio.data)
    leader.stop()
    radio_cluster.wait_leader(other_than=leader.name)
    wait_for(
        lambda: entry.metric("radio_sources_repiped_total") == 1,
        timeout=10,
        what="the re-pipe in the metrics",
    )
    assert entry.metric("radio_sources_piped") == 1
    assert source.stream_error is None


def test_an_ogg_studio_goes_on_with_its_header_pages(
    radio_cluster: RadioCluster,
    source_client_factory: Callable[..., SourceClient],
    ogg_audio: AudioSample,
) -> None:
    """Mid-chain, the new leader first gets the chain's header pages: its listeners can
    decode what follows."""
    radio_cluster.create_served_mount(
        {"name": "live.ogg", "source_password": PASSWORD, "format": {"codec": "vorbis"}}
    )
    leader, entry, other = roles(radio_cluster)
    source = entry.front_door_source(
        source_client_factory, "/live.ogg", PASSWORD, content_type=ogg_audio.content_type
    )
    connect_and_stream(source, ogg_audio)

    def heard_on_other() -> bytes | None:
        """Icecast re-pages Vorbis, so not the studio's bytes: its loud noise, decoded
        (the holding audio is silence). From the third node's Icecast itself: a new
        listener there gets the current source's headers and recent audio, where the
        front door's fan-out would give a late joiner its burst of the past."""
        received = listen(f"{other.icecast.base_url}/live.ogg", 40000, timeout=4)
        report = analyse_ogg(received.body)
        loud = received.status == 200 and report.pages >= 5 and report.codecs == {"vorbis"}
        return received.body if loud and loudness_db(received.body, "ogg") > -40 else None

    wait_for(heard_on_other, timeout=10, what="the Ogg studio on a third node")
    leader.stop()
    radio_cluster.wait_leader(other_than=leader.name)
    wait_for(
        lambda: "/_live/live.ogg" not in leader.icecast.all_sources(),
        timeout=10,
        what="the studio gone from the old leader",
    )
    body = wait_for(heard_on_other, timeout=15, what="the Ogg studio back on a third node")
    assert analyse_ogg(body).problems(min_pages=5) == []
    assert source.stream_error is None


def test_a_stalled_studio_is_cut_and_listeners_get_the_holding_audio_steadily(
    radio_cluster: RadioCluster,
    live_mount: str,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
) -> None:
    """An encoder that stays connected but sends nothing (hung, or its input gone): the
    leader's Icecast drops the idle source after its source_timeout, and the front door
    cuts the studio rather than piping it again, so the mount settles on its holding
    audio instead of coming back to silence after each timeout."""
    _, entry, other = roles(radio_cluster)
    source = entry.front_door_source(source_client_factory, f"/{live_mount}", PASSWORD)
    assert source.connect().status == 200
    four_seconds = mp3_audio.data[: int(4 * mp3_audio.bytes_per_second)]
    source.start_streaming(four_seconds, mp3_audio.bytes_per_second)  # then stays, silent
    # A patient player: it waits out the stall rather than give up after 5 s.
    listener = StreamRecorder(
        f"{other.front_door_url}/_stream/{live_mount}", max_seconds=60, read_timeout=20
    ).start()
    try:
        wait_for(lambda: len(listener.body) > 16000, timeout=10, what="the live audio")
        wait_for(
            source.closed_by_peer,
            timeout=STALL_CUT_WITHIN,
            what="the stalled studio cut by the front door",
            explain=entry.log_tail,
        )
        assert entry.metric("radio_sources_stalled_total") == 1
        assert source.stream_error is None  # it sent all it had before going quiet
        cut_at = time.monotonic()
        wait_for(
            lambda: time.monotonic() > cut_at + HOLDING_WATCHED_SECONDS,
            timeout=HOLDING_WATCHED_SECONDS + 1,
            what="the holding audio to play a while",
            interval=0.5,
        )
        # Re-piping the silent studio would give the listeners ~10 s of nothing after each
        # Icecast timeout; cut, they get the holding audio at its pace.
        assert listener.longest_gap(cut_at + 2, cut_at + HOLDING_WATCHED_SECONDS) < 2
        # The stall itself: the studio's silence until the cut, and a loop at most.
        stall = listener.longest_gap(listener.arrivals[0][0], cut_at + HOLDING_WATCHED_SECONDS)
        assert stall < STALLED_STUDIO_SECONDS + TEST_TIMING["loop_wait"] + 2
        assert listener.error is None
        assert listener.connected
    finally:
        listener.stop()
