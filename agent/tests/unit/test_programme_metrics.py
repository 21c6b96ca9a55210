"""What /metrics says of each programme, from its owner's report in the cluster state
(every agent says the same, labelled with its own node)."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client.parser import text_string_to_metric_families

from radioagent.coordination.state import ClusterState
from radioagent.frontdoor.metrics import metrics_text
from radioagent.frontdoor.view import AgentSnapshot
from radioagent.model import parse_mount
from radioagent.programmes.state import InputState, ProgrammeState
from radioagent.transcoding.state import TranscoderState
from tests.unit.builders import node_status
from tests.unit.test_metrics_text import DOOR, SNAPSHOT

STUDIO = parse_mount({"name": "studio.mp3", "source_password": "pw-1"})
OVERRIDE = parse_mount({"name": "override.mp3", "source_password": "pw-2"})
BACKUP = parse_mount({"name": "backup.mp3", "source_password": "pw-3"})
RADIO = parse_mount(
    {
        "name": "radio.mp3",
        "source_password": "pw-4",
        "programme": {
            "inputs": [
                "studio.mp3",
                {"mount": "override.mp3", "automatic": False},
                "backup.mp3",
            ],
            "loudness": {"min_lufs": -28, "max_lufs": -10},
        },
    }
)
INPUTS = ("studio.mp3", "override.mp3", "backup.mp3")


def owner_report(on_air: str) -> dict:
    return ProgrammeState(
        preferred="",
        on_air=on_air,
        lufs=-18.5,
        inputs=(
            InputState("studio.mp3", connected=False, ready=False, silent=False, lufs=-120.0),
            InputState("override.mp3", connected=True, ready=True, silent=True, lufs=-70.0),
            InputState("backup.mp3", connected=True, ready=True, silent=False, lufs=-21.0),
        ),
    ).to_dict()


def snapshot(
    on_air: str | None,
    *,
    preferences: dict[str, str] | None = None,
    owner: str | None = "n3",
) -> AgentSnapshot:
    """node2's snapshot; n3 runs the programme and reports it playing `on_air` (None:
    reports nothing)."""
    reports = {} if on_air is None else {"radio.mp3": owner_report(on_air)}
    state = ClusterState(
        revision=1,
        leader=None,
        nodes={"n3": node_status("n3", transcoders=("radio.mp3",), programmes=reports)},
        mounts={mount.name: mount for mount in (STUDIO, OVERRIDE, BACKUP, RADIO)},
        transcoders={} if owner is None else {"radio.mp3": owner},
        preferences=preferences or {},
    )
    # The metrics test's snapshot, with this cluster: only the state matters here.
    return replace(SNAPSHOT, node_name="node2", state=state, stats=None, air={})


def programme_samples(now: AgentSnapshot) -> dict[tuple[str, ...], float]:
    """(name, programme[, input]) -> value for the radio_programme_ series; every one
    labelled with this node."""
    values: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(metrics_text(now, DOOR).decode()):
        for sample in family.samples:
            if not sample.name.startswith("radio_programme_"):
                continue
            assert sample.labels["node"] == "node2"
            key: tuple[str, ...] = (sample.name, sample.labels["programme"])
            if "input" in sample.labels:
                key = (*key, sample.labels["input"])
            values[key] = sample.value
    return values


def on_air_values(values: dict[tuple[str, ...], float]) -> list[float]:
    return [values["radio_programme_input_on_air", "radio.mp3", name] for name in INPUTS]


def test_the_first_choice_on_air_is_no_fallback() -> None:
    values = programme_samples(snapshot("studio.mp3"))
    assert on_air_values(values) == [1, 0, 0]
    assert values["radio_programme_fallback", "radio.mp3"] == 0
    assert values["radio_programme_blank", "radio.mp3"] == 0


def test_a_backup_on_air_is_a_fallback() -> None:
    values = programme_samples(snapshot("backup.mp3"))
    assert on_air_values(values) == [0, 0, 1]
    assert values["radio_programme_fallback", "radio.mp3"] == 1
    assert values["radio_programme_blank", "radio.mp3"] == 0


def test_the_safe_blank_is_blank_and_a_fallback_with_no_input_on_air() -> None:
    values = programme_samples(snapshot(""))
    assert on_air_values(values) == [0, 0, 0]
    assert values["radio_programme_blank", "radio.mp3"] == 1
    assert values["radio_programme_fallback", "radio.mp3"] == 1


def test_a_preferred_manual_input_on_air_is_no_fallback() -> None:
    values = programme_samples(snapshot("override.mp3", preferences={"radio.mp3": "override.mp3"}))
    assert on_air_values(values) == [0, 1, 0]
    assert values["radio_programme_fallback", "radio.mp3"] == 0
    preferred = [values["radio_programme_input_preferred", "radio.mp3", name] for name in INPUTS]
    assert preferred == [0, 1, 0]


def test_the_first_automatic_input_on_air_while_another_is_preferred_is_a_fallback() -> None:
    values = programme_samples(snapshot("studio.mp3", preferences={"radio.mp3": "backup.mp3"}))
    assert values["radio_programme_fallback", "radio.mp3"] == 1


def test_inputs_connection_silence_and_loudness_come_from_the_owner_s_report() -> None:
    values = programme_samples(snapshot("backup.mp3"))
    connected = [values["radio_programme_input_connected", "radio.mp3", name] for name in INPUTS]
    silent = [values["radio_programme_input_silent", "radio.mp3", name] for name in INPUTS]
    loudness = [values["radio_programme_input_loudness_lufs", "radio.mp3", name] for name in INPUTS]
    assert connected == [0, 1, 1]
    assert silent == [0, 1, 0]
    assert loudness == [-120, -70, -21]
    assert values["radio_programme_output_loudness_lufs", "radio.mp3"] == -18.5


def test_the_loudness_range_comes_from_the_spec() -> None:
    values = programme_samples(snapshot("studio.mp3"))
    assert values["radio_programme_loudness_min_lufs", "radio.mp3"] == -28
    assert values["radio_programme_loudness_max_lufs", "radio.mp3"] == -10


def test_without_a_report_no_state_is_told_but_the_spec_and_preference_are() -> None:
    for now in (snapshot(None), snapshot("studio.mp3", owner=None)):
        values = programme_samples(now)
        assert ("radio_programme_blank", "radio.mp3") not in values
        assert ("radio_programme_fallback", "radio.mp3") not in values
        assert ("radio_programme_input_on_air", "radio.mp3", "studio.mp3") not in values
        assert values["radio_programme_loudness_min_lufs", "radio.mp3"] == -28
        assert values["radio_programme_input_preferred", "radio.mp3", "studio.mp3"] == 0


def test_without_a_cluster_state_no_programme_is_told() -> None:
    assert programme_samples(replace(snapshot("studio.mp3"), state=None)) == {}


def mount_samples(now: AgentSnapshot) -> dict[str, float]:
    """name -> value for the per-mount series of the programme's mount."""
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics_text(now, DOOR).decode())
        for sample in family.samples
        if sample.labels.get("mount") == "radio.mp3"
    }


def test_the_node_running_a_programme_says_so_like_a_transcoder() -> None:
    running = TranscoderState(running=True, silent=True)
    here = replace(snapshot(""), transcoders={"radio.mp3": running})
    assert mount_samples(snapshot(""))["radio_transcoder_running"] == 0
    assert mount_samples(here)["radio_transcoder_running"] == 1
    assert "radio_mount_silent" not in mount_samples(here)  # a programme's blank: its own
