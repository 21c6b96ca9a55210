"""A programme's report (`radioctl programme`, `/api/v1/status`), read from the cluster
state: its owner's Liquidsoap's last word, the preference etcd holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from radioagent.cli.output import programmes_text, status_text
from radioagent.cli.programme_commands import programme_show_text as show_text
from radioagent.coordination.state import ClusterState, LeaderRecord
from radioagent.model import MountSpec, parse_mount
from radioagent.programmes.state import InputState, ProgrammeState
from radioagent.status import mount_document, programme_report, programme_reports
from tests.unit.builders import node_status


def mount(name: str, **fields: Any) -> MountSpec:
    return parse_mount({"name": name, "source_password": "pw-" + name, **fields})


MOUNTS = {
    "studio.mp3": mount("studio.mp3"),
    "backup.mp3": mount("backup.mp3"),
    "override.mp3": mount("override.mp3"),
    "radio.mp3": mount(
        "radio.mp3",
        programme={
            "inputs": [
                "studio.mp3",
                {"mount": "override.mp3", "automatic": False},
                "backup.mp3",
            ]
        },
    ),
}


def running(on_air: str, preferred: str = "") -> dict[str, Any]:
    """What the owner publishes of the programme: every input but the override reported."""
    return ProgrammeState(
        preferred=preferred,
        on_air=on_air,
        lufs=-19.5,
        inputs=(
            InputState("studio.mp3", connected=False, ready=False, silent=False, lufs=-120.0),
            InputState("override.mp3", connected=True, ready=True, silent=True, lufs=-80.0),
            InputState("backup.mp3", connected=True, ready=True, silent=False, lufs=-22.3),
        ),
    ).to_dict()


def cluster(
    report: dict[str, Any] | None,
    *,
    owner: str | None = "n2",
    preferences: dict[str, str] | None = None,
) -> ClusterState:
    nodes = {
        "n1": node_status("n1", role="leader"),
        "n2": node_status("n2", programmes={} if report is None else {"radio.mp3": report}),
    }
    return ClusterState(
        revision=7,
        leader=LeaderRecord("n1", 3, 1),
        nodes=nodes,
        mounts=MOUNTS,
        transcoders={} if owner is None else {"radio.mp3": owner},
        preferences=preferences or {},
    )


def test_the_report_says_what_the_owner_s_liquidsoap_plays() -> None:
    report = programme_report(cluster(running("backup.mp3")), "radio.mp3")
    assert report["owner"] == "n2"
    assert report["real_output"] == "backup.mp3"
    assert report["is_output_blank"] is False
    assert report["lufs"] == -19.5
    assert report["preferred"] is None


def test_the_report_lists_inputs_in_order_with_their_mode_and_state() -> None:
    report = programme_report(cluster(running("backup.mp3")), "radio.mp3")
    assert report["inputs"] == [
        {
            "mount": "studio.mp3",
            "automatic": True,
            "connected": False,
            "ready": False,
            "silent": False,
            "lufs": -120.0,
        },
        {
            "mount": "override.mp3",
            "automatic": False,
            "connected": True,
            "ready": True,
            "silent": True,
            "lufs": -80.0,
        },
        {
            "mount": "backup.mp3",
            "automatic": True,
            "connected": True,
            "ready": True,
            "silent": False,
            "lufs": -22.3,
        },
    ]


def test_a_blank_programme_reports_no_output_and_blank() -> None:
    report = programme_report(cluster(running("")), "radio.mp3")
    assert report["real_output"] is None
    assert report["is_output_blank"] is True


def test_the_preference_is_etcd_s_not_the_liquidsoap_s() -> None:
    state = cluster(running("override.mp3", preferred="studio.mp3"), preferences={})
    assert programme_report(state, "radio.mp3")["preferred"] is None
    state = cluster(running("studio.mp3"), preferences={"radio.mp3": "override.mp3"})
    assert programme_report(state, "radio.mp3")["preferred"] == "override.mp3"


def test_a_stored_preference_that_is_no_longer_an_input_is_ignored() -> None:
    state = cluster(running("studio.mp3"), preferences={"radio.mp3": "removed.mp3"})
    assert programme_report(state, "radio.mp3")["preferred"] is None


def test_without_an_owner_the_running_values_are_none() -> None:
    report = programme_report(cluster(running("studio.mp3"), owner=None), "radio.mp3")
    assert report["owner"] is None
    assert (report["real_output"], report["is_output_blank"], report["lufs"]) == (None, None, None)
    assert report["inputs"][0] == {"mount": "studio.mp3", "automatic": True}


def test_an_owner_that_does_not_report_the_programme_gives_none_values() -> None:
    report = programme_report(cluster(None), "radio.mp3")
    assert report["owner"] == "n2"
    assert (report["real_output"], report["is_output_blank"], report["lufs"]) == (None, None, None)
    assert [set(entry) for entry in report["inputs"]] == [{"mount", "automatic"}] * 3


def test_an_owner_without_a_status_gives_none_values() -> None:
    report = programme_report(cluster(running("studio.mp3"), owner="gone"), "radio.mp3")
    assert report["owner"] == "gone"
    assert report["real_output"] is None
    assert report["is_output_blank"] is None


def test_only_programmes_are_reported_by_name() -> None:
    state = cluster(running("studio.mp3"))
    assert list(programme_reports(state)) == ["radio.mp3"]
    assert programme_reports(replace(state, mounts={"studio.mp3": MOUNTS["studio.mp3"]})) == {}


def test_the_mount_document_of_a_programme_carries_its_report() -> None:
    state = cluster(running("studio.mp3"))
    document = mount_document(state, "radio.mp3")
    assert document is not None
    assert document["programme_state"] == programme_report(state, "radio.mp3")
    assert document["programme"]["hold_seconds"] == 5.0  # the spec stays beside the state
    assert "source_password" not in document


# radioctl's text

ShowText = Callable[[str, dict[str, Any]], str]


@pytest.fixture
def programme_show_text() -> ShowText:
    """radioctl's `programme_show_text` (its module loads without etcd3)."""
    return show_text


def test_show_text_of_a_running_programme_names_what_is_on_air_and_each_input(
    programme_show_text: ShowText,
) -> None:
    state = cluster(running("backup.mp3"), preferences={"radio.mp3": "override.mp3"})
    text = programme_show_text("radio.mp3", programme_report(state, "radio.mp3"))
    lines = text.splitlines()
    assert lines[:5] == [
        "programme /radio.mp3",
        "on air:    backup.mp3",
        "preferred: override.mp3",
        "runs on:   n2",
        "loudness:  -19.5 LUFS",
    ]
    rows = [line.split() for line in lines[5:]]
    assert rows == [
        ["INPUT", "MODE", "STATE", "LUFS"],
        ["studio.mp3", "automatic", "absent", "-120.0"],
        ["override.mp3", "manual", "silent", "-80.0"],
        ["backup.mp3", "automatic", "connected", "-22.3"],
    ]


def test_show_text_of_a_blank_programme_says_blank(
    programme_show_text: ShowText,
) -> None:
    text = programme_show_text("radio.mp3", programme_report(cluster(running("")), "radio.mp3"))
    assert "on air:    (blank)" in text.splitlines()


def test_show_text_of_a_programme_not_running_says_so_with_dashes(
    programme_show_text: ShowText,
) -> None:
    text = programme_show_text("radio.mp3", programme_report(cluster(None), "radio.mp3"))
    lines = text.splitlines()
    assert "on air:    (not running)" in lines
    assert "preferred: (automatic)" in lines
    assert "loudness:  -" in lines
    assert [line.split() for line in lines[6:]] == [
        ["studio.mp3", "automatic", "-", "-"],
        ["override.mp3", "manual", "-", "-"],
        ["backup.mp3", "automatic", "-", "-"],
    ]


def test_the_programmes_table_has_a_line_for_a_running_programme() -> None:
    text = programmes_text(cluster(running("backup.mp3")))
    header, row = text.splitlines()
    assert header.split() == ["PROGRAMME", "ON", "AIR", "PREFERRED", "INPUTS", "RUNS", "ON"]
    assert row.split() == [
        "/radio.mp3",
        "backup.mp3",
        "(automatic)",
        "studio.mp3,",
        "override.mp3,",
        "backup.mp3",
        "n2",
    ]


def test_the_programmes_table_says_when_no_liquidsoap_runs_the_programme() -> None:
    _, row = programmes_text(cluster(running("studio.mp3"), owner=None)).splitlines()
    assert row.split()[:3] == ["/radio.mp3", "(not", "running)"]
    assert row.split()[-1] == "-"


def test_the_status_text_lists_programmes_only_when_there_are_some() -> None:
    assert "PROGRAMME" in status_text(cluster(running("studio.mp3")))
    plain = replace(cluster(None), mounts={"studio.mp3": MOUNTS["studio.mp3"]}, transcoders={})
    assert "PROGRAMME" not in status_text(plain)
