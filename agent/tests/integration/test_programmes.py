"""Programmes with real Liquidsoap: studios send distinct tones through different nodes'
front doors, listeners on every node's Icecast hear which input is on air. Loss, silence,
an operator's preference, switching back after the hold, and the preference kept when the
programme's owner dies. The tests share one cluster and run in order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.clients import listen
from tests.harness.programmes import (
    CANDIDATES,
    HOLD_SECONDS,
    PROGRAMME,
    SILENCE_SECONDS,
    STUDIO_NODE,
    TONES,
    ProgrammeCluster,
    programme_cluster_running,
)
from tests.harness.transcoders import owner
from tests.harness.waiting import wait_for

from .conftest import require_root

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def programme_cluster(holding_cache_dir: Path) -> Iterator[ProgrammeCluster]:
    require_root()
    with programme_cluster_running(holding_cache_dir) as running:
        yield running


def test_the_first_automatic_input_is_on_air_on_every_node(
    programme_cluster: ProgrammeCluster,
) -> None:
    programme_cluster.wait_hearing("main.mp3")

    def reported() -> bool:
        report = programme_cluster.report(node=2)
        return report["real_output"] == "main.mp3" and all(
            entry.get("connected") for entry in report["inputs"]
        )

    wait_for(reported, timeout=10, what="the status to say main.mp3 is on air")
    report = programme_cluster.report(node=1)
    assert report["preferred"] is None
    assert report["is_output_blank"] is False
    assert report["owner"] == owner(programme_cluster.cluster, PROGRAMME)
    assert [entry["mount"] for entry in report["inputs"]] == list(TONES)
    assert [entry["automatic"] for entry in report["inputs"]] == [True, True, False, True]
    # A full-scale sine is about -3 LUFS; silence reads as the floor, -120.
    assert -10 < report["lufs"] < 0
    page = listen(f"{programme_cluster.cluster.nodes[0].front_door_url}/status", 1 << 20)
    assert '<div class="input">from main.mp3</div>' in page.body.decode()


def test_a_lost_input_hands_the_air_to_the_next_and_takes_it_back_after_the_hold(
    programme_cluster: ProgrammeCluster,
) -> None:
    programme_cluster.wait_hearing("main.mp3")
    main = programme_cluster.studios["main.mp3"]
    main.process.stop()
    programme_cluster.wait_hearing("backup.mp3")
    programme_cluster.restart_studio("main.mp3")
    back = time.monotonic()
    programme_cluster.wait_hearing("main.mp3")
    # Until the hold ran out, the backup stayed on air.
    for name, each in programme_cluster.listeners.items():
        heard = [tone for _, tone in each.tones_since(back, CANDIDATES) if tone is not None]
        first_main = heard.index(TONES["main.mp3"])
        assert set(heard[:first_main]) == {TONES["backup.mp3"]}, (name, heard)
        seconds_of_backup = first_main * 0.25
        assert seconds_of_backup >= HOLD_SECONDS - 0.5, (name, heard)


def test_a_silent_input_hands_the_air_to_the_next_after_the_silence_time(
    programme_cluster: ProgrammeCluster,
) -> None:
    programme_cluster.wait_hearing("main.mp3")
    main = programme_cluster.studios["main.mp3"]
    main.set_level(0.0)  # still connected, sending digital silence
    silent_since = time.monotonic()
    programme_cluster.wait_hearing("backup.mp3")
    for name, each in programme_cluster.listeners.items():
        heard = [tone for _, tone in each.tones_since(silent_since, CANDIDATES)]
        first_backup = heard.index(TONES["backup.mp3"])
        # The silence went on air until the silence time ran out (dead air, not a tone).
        assert first_backup * 0.25 >= SILENCE_SECONDS - 1.0, (name, heard)

    def main_reported_silent() -> bool:
        report = programme_cluster.report()
        main_state = next(entry for entry in report["inputs"] if entry["mount"] == "main.mp3")
        return (
            main_state["connected"] is True
            and main_state["silent"] is True
            and main_state["lufs"] == -120.0
            and report["real_output"] == "backup.mp3"
        )

    # The owner polls its Liquidsoap every second and publishes with its next cycle.
    wait_for(main_reported_silent, timeout=10, what="the status to say main.mp3 is silent")
    main.set_level(1.0)
    programme_cluster.wait_hearing("main.mp3")


def test_an_operator_preference_puts_a_manual_input_on_air_and_auto_ends_it(
    programme_cluster: ProgrammeCluster,
) -> None:
    store = programme_cluster.cluster.store()
    programme_cluster.wait_hearing("main.mp3")
    store.set_preference(PROGRAMME, "override.mp3")
    programme_cluster.wait_hearing("override.mp3")
    wait_for(
        lambda: programme_cluster.report()["real_output"] == "override.mp3",
        timeout=10,
        what="the status to say override.mp3 is on air",
    )
    assert programme_cluster.report(node=2)["preferred"] == "override.mp3"
    store.set_preference(PROGRAMME, None)
    programme_cluster.wait_hearing("main.mp3")
    assert programme_cluster.report()["preferred"] is None


def test_the_preference_survives_the_death_of_the_programmes_owner(
    programme_cluster: ProgrammeCluster,
) -> None:
    """Last: it kills a node's agent."""
    cluster = programme_cluster.cluster
    first_owner = owner(cluster, PROGRAMME)
    assert first_owner is not None
    # An input whose studio does not stream through the node that dies.
    owner_index = int(first_owner.removeprefix("node")) - 1
    preferred = "auto.mp3" if STUDIO_NODE["backup.mp3"] == owner_index else "backup.mp3"
    cluster.store().set_preference(PROGRAMME, preferred)
    programme_cluster.wait_hearing(preferred)
    survivors = [node.name for node in cluster.nodes if node.name != first_owner]
    killed_at = time.monotonic()
    cluster.node(first_owner).kill()  # its Liquidsoap dies with it (PR_SET_PDEATHSIG)
    wait_for(
        lambda: owner(cluster, PROGRAMME) not in (None, first_owner),
        timeout=30,
        what="another node to take the programme over",
        explain=cluster.log_tails,
    )
    programme_cluster.wait_hearing(preferred, nodes=survivors)
    for name in survivors:
        heard = {
            tone for _, tone in programme_cluster.listeners[name].tones_since(killed_at, CANDIDATES)
        }
        # Never the first automatic input: the new owner started with the preference.
        assert heard <= {None, TONES[preferred]}, (name, heard)
    wait_for(
        lambda: (
            programme_cluster.report(node=int(survivors[0].removeprefix("node")) - 1)["real_output"]
            == preferred
        ),
        timeout=10,
        what="the new owner to report the preferred input on air",
    )
