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
    TONES,
    ProgrammeCluster,
    input_away_from,
    programme_cluster_running,
)
from tests.harness.tones import ToneListener
from tests.harness.transcoders import owner, standby_processes, transcoder_processes
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
        heard = each.tones_since(back, CANDIDATES)
        main_at = next(at for at, tone in heard if tone == TONES["main.mp3"])
        before = {tone for at, tone in heard if at < main_at and tone is not None}
        assert before == {TONES["backup.mp3"]}, (name, heard)
        assert main_at - back >= HOLD_SECONDS - 0.5, (name, heard)


def test_a_silent_input_hands_the_air_to_the_next_after_the_silence_time(
    programme_cluster: ProgrammeCluster,
) -> None:
    programme_cluster.wait_hearing("main.mp3")
    main = programme_cluster.studios["main.mp3"]
    main.set_level(0.0)  # still connected, sending digital silence
    silent_since = time.monotonic()
    programme_cluster.wait_hearing("backup.mp3")
    for name, each in programme_cluster.listeners.items():
        heard = each.tones_since(silent_since, CANDIDATES)
        backup_at = next(at for at, tone in heard if tone == TONES["backup.mp3"])
        # The silence went on air until the silence time ran out (dead air, not a tone).
        assert backup_at - silent_since >= SILENCE_SECONDS - 1.0, (name, heard)

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
    try:
        programme_cluster.wait_hearing("override.mp3")
        wait_for(
            lambda: programme_cluster.report()["real_output"] == "override.mp3",
            timeout=10,
            what="the status to say override.mp3 is on air",
        )
        assert programme_cluster.report(node=2)["preferred"] == "override.mp3"
    finally:
        store.set_preference(PROGRAMME, None)  # the module's next tests start automatic
    programme_cluster.wait_hearing("main.mp3")
    assert programme_cluster.report()["preferred"] is None


def test_a_transcoded_mount_of_the_programme_plays_the_input_on_air_and_metrics_say_it(
    programme_cluster: ProgrammeCluster,
) -> None:
    cluster = programme_cluster.cluster
    programme_cluster.wait_hearing("main.mp3")
    transcode = {"parent": PROGRAMME, "format": {"codec": "mp3", "bitrate_kbps": 64}}
    cluster.store().create_mount(
        {"name": "radio-low.mp3", "source_password": "low-secret", "transcode": transcode}
    )
    node = cluster.nodes[1]
    low = ToneListener(f"{node.icecast.base_url}/radio-low.mp3", seconds=60)
    try:
        node.wait_serving("/radio-low.mp3", timeout=30)
        low.start()
        wait_for(
            lambda: low.tone_now(CANDIDATES, nbytes=8000) == TONES["main.mp3"],
            timeout=30,
            what="the programme's tone in its transcoded mount",
            explain=lambda: f"{low.error}\n{cluster.log_tails(30)}",
        )
    finally:
        low.stop()
        cluster.store().delete_mount("radio-low.mp3")  # its Liquidsoap: not for the next tests
    # Every node exports the programme's state, from its owner's report in etcd.
    for each in cluster.nodes:
        assert (
            each.metric("radio_programme_input_on_air", programme=PROGRAMME, input="main.mp3")
            == 1.0
        )
        assert (
            each.metric("radio_programme_input_on_air", programme=PROGRAMME, input="backup.mp3")
            == 0.0
        )
        assert each.metric("radio_programme_fallback", programme=PROGRAMME) == 0.0
        assert each.metric("radio_mount_programme_input", mount="backup.mp3") == 1.0
        assert (
            each.metric(
                "radio_programme_input_automatic", programme=PROGRAMME, input="override.mp3"
            )
            == 0.0
        )


def wait_for_one_standby(programme_cluster: ProgrammeCluster, programme_owner: str) -> list[str]:
    """The nodes but the owner running a standby of the programme, once there is one.
    (The owner's process may be a promoted standby: its environment still says so.)"""
    cluster = programme_cluster.cluster

    def standing() -> list[str]:
        return [
            node.name
            for node in cluster.nodes
            if node.name != programme_owner and standby_processes(PROGRAMME, node)
        ]

    wait_for(
        lambda: len(standing()) == 1, timeout=10, what="one standby", explain=cluster.log_tails
    )
    return standing()


def test_an_owner_made_leader_hands_the_programme_to_a_node_standing_by(
    programme_cluster: ProgrammeCluster,
) -> None:
    """The leadership moves onto the owner. Every programme restarts for the new leader
    anyway, and the owner gives its programme to another node at once, so one machine's
    death never costs both the leader and the programme's owner."""
    cluster = programme_cluster.cluster
    first_owner = owner(cluster, PROGRAMME)
    assert first_owner is not None
    on_air = programme_cluster.report()["real_output"]
    store = cluster.store()
    leader = store.read_state().leader
    assert leader is not None
    assert leader.name != first_owner  # programmes avoid the leader
    store.request_handover(leader, first_owner, 10)
    cluster.wait_leader(timeout=10, other_than=leader.name)
    assert cluster.leader_name() == first_owner
    wait_for(
        lambda: owner(cluster, PROGRAMME) not in (None, first_owner),
        timeout=20,
        what="another node to take the programme from the new leader",
        explain=cluster.log_tails,
    )
    new_owner = owner(cluster, PROGRAMME)
    assert new_owner is not None
    assert transcoder_processes(PROGRAMME, cluster.node(first_owner)) == []
    programme_cluster.wait_hearing(on_air)
    for name, listener in programme_cluster.listeners.items():
        assert listener.error is None, (name, listener.error)
    # And a new standby on the third node: not on the leader.
    wait_for_one_standby(programme_cluster, new_owner)
    assert standby_processes(PROGRAMME, cluster.node(first_owner)) == []


def test_the_preference_survives_the_death_of_the_programmes_owner(
    programme_cluster: ProgrammeCluster,
) -> None:
    """Last: it kills a node's agent. The node that takes over is the one that kept a
    standby: its Liquidsoap, already running, goes on air (no restart)."""
    cluster = programme_cluster.cluster
    first_owner = owner(cluster, PROGRAMME)
    assert first_owner is not None
    # An input whose studio does not stream through the node that dies.
    preferred = input_away_from(first_owner)
    cluster.store().set_preference(PROGRAMME, preferred)
    programme_cluster.wait_hearing(preferred)
    survivors = [node.name for node in cluster.nodes if node.name != first_owner]
    (standby,) = wait_for_one_standby(programme_cluster, first_owner)
    (standby_pid,) = standby_processes(PROGRAMME, cluster.node(standby))
    killed_at = time.monotonic()
    cluster.node(first_owner).kill()  # its Liquidsoap dies with it (PR_SET_PDEATHSIG)
    wait_for(
        lambda: owner(cluster, PROGRAMME) not in (None, first_owner),
        timeout=30,
        what="another node to take the programme over",
        explain=cluster.log_tails,
    )
    claimed_at = time.monotonic()
    assert owner(cluster, PROGRAMME) == standby
    programme_cluster.wait_hearing(preferred, nodes=survivors)
    # Promoted, not restarted.
    assert transcoder_processes(PROGRAMME, cluster.node(standby)) == [standby_pid], cluster.node(
        standby
    ).log_tail()
    for name in survivors:
        listener = programme_cluster.listeners[name]
        assert listener.error is None, (name, listener.error)
        heard = listener.tones_since(killed_at, CANDIDATES)
        # The old programme went off the air (holding silence), and the preferred input
        # came back from the new owner: never the first automatic input in between.
        assert any(tone is None for at, tone in heard if at < claimed_at), (name, heard)
        assert any(tone == TONES[preferred] for at, tone in heard if at > claimed_at), name
        assert {tone for _, tone in heard} <= {None, TONES[preferred]}, (name, heard)
    wait_for(
        lambda: (
            programme_cluster.report(node=int(survivors[0].removeprefix("node")) - 1)["real_output"]
            == preferred
        ),
        timeout=10,
        what="the new owner to report the preferred input on air",
    )
