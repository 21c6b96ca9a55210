"""What /metrics says of each mount, rendered from an agent snapshot (no services)."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client.parser import text_string_to_metric_families

from radioagent.config import Timing
from radioagent.coordination.state import ClusterState
from radioagent.deadair import AirReport
from radioagent.frontdoor.metrics import metrics_text
from radioagent.frontdoor.view import AgentSnapshot, FrontDoorStats
from radioagent.icecast.stats import IcecastStats
from radioagent.model import mount_from_json
from radioagent.transcoding.state import TranscoderState

LIVE = mount_from_json(b'{"name": "live.mp3", "source_password": "dj-secret-1"}')
LOW = mount_from_json(
    b'{"name": "low.mp3", "source_password": "tx-secret-1",'
    b' "transcode": {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 48}}}'
)
DOOR = FrontDoorStats(
    listeners={"live.mp3": 2},
    directions={},
    refused={},
    bytes_by_mount={"live.mp3": 4096},
    slow_listeners_dropped=0,
    sources_opened=0,
    sources_failed=0,
    sources_active=0,
    sources_repiped=0,
    sources_overflowed=0,
    sources_stalled=0,
    connections=2,
)
SNAPSHOT = AgentSnapshot(
    node_name="node2",
    version="test",
    leading=False,
    epoch=4,
    etcd_reachable=True,
    state=ClusterState(revision=1, leader=None, mounts={"live.mp3": LIVE, "low.mp3": LOW}),
    stats=IcecastStats({}, 0.0, frozenset({"/live.mp3"}), {"/live.mp3": 1.0}, {"/live.mp3": 999}),
    seconds_since_cycle=0.5,
    timing=Timing(),
    cycles=10,
    last_cycle_seconds=0.01,
    etcd_errors=0,
    icecast_errors=0,
    icecast_reloads=1,
    unexpected_errors=0,
    sources_allowed=0,
    sources_refused=0,
    leader=None,
    listener_limit=None,
    public_address="192.0.2.2",
    transcoders={},
    air={
        "live.mp3": AirReport(live=True, live_seconds=12.0, dead_air_seconds=0.0, dead_air=False),
        "low.mp3": AirReport(live=False, live_seconds=0.0, dead_air_seconds=45.0, dead_air=True),
    },
)


def samples(snapshot: AgentSnapshot) -> dict[tuple[str, str], float]:
    """(name, mount) -> value for the per-mount series."""
    text = metrics_text(snapshot, DOOR).decode()
    return {
        (sample.name, sample.labels.get("mount", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("node") == "node2"
    }


def test_each_mount_reports_its_audio_listeners_and_bytes() -> None:
    values = samples(SNAPSHOT)
    assert values["radio_mount_source_connected", "live.mp3"] == 1
    assert values["radio_mount_source_connected_seconds", "live.mp3"] == 12
    assert values["radio_mount_dead_air", "live.mp3"] == 0
    assert values["radio_mount_dead_air", "low.mp3"] == 1
    assert values["radio_mount_dead_air_seconds", "low.mp3"] == 45
    assert values["radio_mount_listeners", "live.mp3"] == 2
    assert values["radio_mount_listeners", "low.mp3"] == 0
    assert values["radio_mount_sent_bytes_total", "live.mp3"] == 4096
    assert values["radio_mount_received_bytes_total", "live.mp3"] == 999
    assert ("radio_mount_received_bytes_total", "low.mp3") not in values  # not fed here


def test_every_node_says_whether_it_runs_each_transcoder() -> None:
    assert samples(SNAPSHOT)["radio_transcoder_running", "low.mp3"] == 0
    assert ("radio_transcoder_running", "live.mp3") not in samples(SNAPSHOT)
    here = replace(SNAPSHOT, transcoders={"low.mp3": TranscoderState(running=True, silent=True)})
    assert samples(here)["radio_transcoder_running", "low.mp3"] == 1
    assert samples(here)["radio_mount_silent", "low.mp3"] == 1


def test_a_node_says_which_transcoders_it_gave_up() -> None:
    assert samples(SNAPSHOT)["radio_transcoder_given_up", "low.mp3"] == 0
    gave_up = replace(SNAPSHOT, given_up=("low.mp3",))
    assert samples(gave_up)["radio_transcoder_given_up", "low.mp3"] == 1
    assert ("radio_transcoder_given_up", "live.mp3") not in samples(gave_up)


def test_with_icecast_down_the_node_says_so_and_counts_no_bytes() -> None:
    down = replace(SNAPSHOT, stats=None)
    values = samples(down)
    assert values["radio_icecast_up", ""] == 0
    assert ("radio_mount_received_bytes_total", "live.mp3") not in values
    assert values["radio_mount_listeners", "live.mp3"] == 2  # the front door's own count


def test_a_node_says_how_many_etcd_endpoints_it_may_use() -> None:
    assert samples(replace(SNAPSHOT, etcd_endpoints=3))["radio_etcd_endpoints", ""] == 3


def test_a_node_says_whether_it_talks_to_its_own_etcd_endpoint() -> None:
    assert samples(SNAPSHOT)["radio_etcd_own_endpoint", ""] == 1
    assert samples(replace(SNAPSHOT, etcd_away=True))["radio_etcd_own_endpoint", ""] == 0


def test_a_node_counts_the_listeners_it_took_over_from_its_previous_process() -> None:
    text = metrics_text(SNAPSHOT, replace(DOOR, resumed_in_place=5, resumed_after_gap=1))
    resumed = {
        sample.labels["how"]: sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if sample.name == "radio_listeners_resumed_total"
    }
    assert resumed == {"in_place": 5, "after_gap": 1}
