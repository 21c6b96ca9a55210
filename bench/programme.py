"""Programme benchmark: how fast a programme moves between its inputs, heard on every node.

Three nodes on loopback (ttl 4 s, as the tests); four studios, each a distinct tone through
a given node's front door (main 440 Hz, backup 660 Hz, a manual override, automation
880 Hz); a listener on every node's Icecast detects the tone it hears. The programme keeps
its defaults: silence -40 dBFS for 10 s, hold 5 s. Each round:
- the main studio disconnects: the backup's tone heard on every node (loss_switch_s);
- the main studio comes back: its tone again after the hold (switch_back_s);
- the main studio sends digital silence, still connected (silence_switch_s, against
  silence_time_s), then sound again;
- an operator prefers the backup, and the agent running the programme is SIGKILLed: the
  backup's tone back on every surviving node (owner_kill_recovery_s), with no other input
  heard in between (preference_kept); on the way, when another node claims it
  (owner_kill_claimed_s), its new Liquidsoap feeds the leader (owner_kill_feeding_s) and
  says the preferred input is on air (owner_kill_on_air_s, asked over its socket);
- the same with the owner's whole machine killed (agent and Icecast: owner_crash_*),
  which, when the owner also leads, costs a leader election too;
- the leadership handed to a node that neither owns nor stands by: every programme
  restarts for the new leader; the seconds of the programme's audio listeners missed
  (leader_elsewhere_silence_s, counted in 0.1 s slices of no tone);
- the leadership handed to the programme's owner: the owner hands the programme over
  (leader_onto_owner_handed_s: when the claim moved), the audio missed
  (leader_onto_owner_silence_s, against the one before), and in how many rounds the new
  owner's process had started as a standby (leader_onto_owner_promoted_rounds).
Times run from the event to the arrival, at the last node, of the first audio of the
new input. Liquidsoap's own start (liquidsoap_start_s: from its spawn to a script's first
line running, the interpreter and its library loaded) is measured in the same run, for
the owner-kill target (ttl plus Liquidsoap's start). Prints one JSON object as its last
line; bench/results/programme.json gets the same.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

from benchlib import RESULTS_DIR, report, require_root, resident_mib

from radioagent.programmes.control import ControlError, read_state
from radioagent.programmes.script import socket_path
from radioagent.programmes.state import ProgrammeState
from tests.harness.agents import TEST_TIMING, RadioCluster
from tests.harness.processes import ServiceDirectory
from tests.harness.programmes import (
    CANDIDATES,
    PROGRAMME,
    TONES,
    ProgrammeCluster,
    input_away_from,
    programme_cluster_running,
)
from tests.harness.tones import STEP_SECONDS
from tests.harness.transcoders import (
    live_on_leader,
    owner,
    standby_processes,
    transcoder_processes,
)
from tests.harness.waiting import wait_for

SILENCE_SECONDS = 10.0  # the defaults an operator gets
HOLD_SECONDS = 5.0


def switch_seconds(
    running: ProgrammeCluster, mount: str, since: float, nodes: list[str] | None = None
) -> float:
    """From `since` to the first audio of `mount` at the last of `nodes` (default all)."""
    running.wait_hearing(mount, nodes)
    arrivals = [
        running.first_heard(name, TONES[mount], since)
        for name in (nodes if nodes is not None else list(running.listeners))
    ]
    if any(at is None for at in arrivals):
        raise RuntimeError(f"{mount} heard, but not found in every recording: {arrivals}")
    return max(at for at in arrivals if at is not None) - since


def liquidsoap_start_seconds() -> float:
    """From spawning Liquidsoap (as the transcoders' user) to its script's first line."""
    started = time.monotonic()
    with subprocess.Popen(
        ["runuser", "-u", "liquidsoap", "--", "liquidsoap", 'print("ready") shutdown()'],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as process:
        assert process.stdout is not None  # noqa: S101 - asked for above
        for line in process.stdout:
            if line.strip() == b"ready":
                took = time.monotonic() - started
                break
        else:
            raise RuntimeError("liquidsoap never ran its script")
        process.wait(timeout=30)
    return took


def programme_state(cluster: RadioCluster, node_name: str) -> ProgrammeState | None:
    """What `node_name`'s programme Liquidsoap says of itself; None: no answer."""
    run_dir = cluster.node(node_name).directory.path / "transcoders"
    try:
        return asyncio.run(read_state(socket_path(run_dir, PROGRAMME)))
    except ControlError:
        return None


def on_air_at(cluster: RadioCluster, node_name: str) -> str | None:
    state = programme_state(cluster, node_name)
    return state.on_air if state is not None else None


def every_input_usable(cluster: RadioCluster) -> bool:
    """Every studio back and heard by the programme: a round starts from the same place
    (a studio whose front door was restarted reconnects a little later)."""
    heir = owner(cluster, PROGRAMME)
    state = programme_state(cluster, heir) if heir is not None else None
    return state is not None and all(
        each.connected and each.ready and not each.silent for each in state.inputs
    )


def wait_new_owner(cluster: RadioCluster, old: str) -> str:
    """The node that claims the programme after `old`, polled every 0.05 s."""

    def other_owner() -> str | None:
        name = owner(cluster, PROGRAMME)
        return name if name != old else None

    return wait_for(other_owner, timeout=30, what=f"an owner other than {old}", interval=0.05)


def owner_kill(running: ProgrammeCluster, *, crash: bool) -> tuple[dict[str, float], bool]:
    """Prefer an input that does not stream through the owner, kill the owner's agent
    (`crash`: and its Icecast):
    seconds until another node claims the programme, until its Liquidsoap feeds the
    leader, and until that input is heard again on the survivors after the gap; and
    whether nothing else was heard meanwhile. The victim is started again."""
    cluster = running.cluster
    victim = wait_for(lambda: owner(cluster, PROGRAMME), timeout=20, what="an owner")
    preferred = input_away_from(victim)
    cluster.store().set_preference(PROGRAMME, preferred)
    running.wait_hearing(preferred)
    survivors = [node.name for node in cluster.nodes if node.name != victim]
    led = cluster.leader_name() == victim
    killed_at = time.monotonic()
    if crash:
        cluster.node(victim).crash()
    else:
        cluster.node(victim).kill()
    heir = wait_new_owner(cluster, victim)
    claimed = time.monotonic() - killed_at
    feeding, on_air = 0.0, 0.0
    deadline = time.monotonic() + 30
    while not (feeding and on_air) and time.monotonic() < deadline:
        if not feeding and live_on_leader(cluster, [PROGRAMME]):
            feeding = time.monotonic() - killed_at
        if not on_air and on_air_at(cluster, heir) == preferred:
            on_air = time.monotonic() - killed_at
        time.sleep(0.05)
    if not (feeding and on_air):
        raise RuntimeError(f"{heir}'s programme not back within 30 s: {feeding=} {on_air=}")
    running.wait_hearing(preferred, survivors)
    recoveries, kept = [], True
    for name in survivors:
        heard = running.listeners[name].tones_since(killed_at, CANDIDATES)
        # Audio from the new owner cannot come before it claimed the programme.
        back = next(
            at for at, tone in heard if at >= killed_at + claimed and tone == TONES[preferred]
        )
        recoveries.append(back - killed_at)
        if not {tone for _, tone in heard} <= {None, TONES[preferred]}:
            kept = False
            changes = [
                (round(at - killed_at, 2), tone)
                for index, (at, tone) in enumerate(heard)
                if index == 0 or heard[index - 1][1] != tone
            ]
            kept_audio = RESULTS_DIR / f"programme-not-kept-{name}-{int(time.time())}.mp3"
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            kept_audio.write_bytes(running.listeners[name].received(since=killed_at))
            print(
                f"{name} heard more than {preferred} after {victim} was killed and {heir}"
                f" claimed at {claimed:.2f} s: {changes}; its audio since: {kept_audio}",
                file=sys.stderr,
            )
    cluster.store().set_preference(PROGRAMME, None)
    if crash:
        cluster.node(victim).restore()
    else:
        cluster.node(victim).start()
    cluster.wait_all_present()
    cluster.node(victim).wait_serving(f"/{PROGRAMME}", timeout=30)
    for listener in running.listeners.values():
        listener.reconnect()  # an agent's restart drops its node's listeners (issue 19)
    running.wait_hearing("main.mp3")  # its studios reconnect to the restarted front door
    wait_for(lambda: every_input_usable(cluster), timeout=30, what="every input usable")
    return {
        "claimed": claimed,
        "feeding": feeding,
        "on_air": on_air,
        "heard": max(recoveries),
        "led": float(led),
    }, kept


def silences(heard: list[tuple[float, float | None]]) -> list[tuple[float, float, float]]:
    """Stretches with no tone: (first slice's arrival, last slice's arrival, seconds of
    audio), counted in slices, since a burst delivers many slices at once."""
    runs: list[tuple[float, float, float]] = []
    count, first, last = 0, 0.0, 0.0
    for at, tone in heard:
        if tone is None:
            first = at if count == 0 else first
            count, last = count + 1, at
        elif count:
            runs.append((first, last, count * STEP_SECONDS))
            count = 0
    if count:
        runs.append((first, last, count * STEP_SECONDS))
    return runs


def hand_leadership(
    running: ProgrammeCluster, *, onto_owner: bool
) -> tuple[dict[str, float], bool]:
    """Hand the leadership to the programme's owner (`onto_owner`) or to the third node:
    seconds until the claim moves (the owner hands it over), the programme's silence
    heard; and whether the new owner's process started as a standby."""
    cluster = running.cluster
    first_owner = wait_for(lambda: owner(cluster, PROGRAMME), timeout=20, what="an owner")
    wait_for(
        lambda: any(
            standby_processes(PROGRAMME, node) for node in cluster.nodes if node.name != first_owner
        ),
        timeout=20,
        what="a standby",
    )
    on_air = on_air_at(cluster, first_owner)
    if on_air is None:
        raise RuntimeError(f"{first_owner} does not say what is on air")
    store = cluster.store()
    leader = store.read_state().leader
    if leader is None or leader.name == first_owner:
        raise RuntimeError(f"the owner {first_owner} should not lead: {leader}")
    third = next(node.name for node in cluster.nodes if node.name not in (first_owner, leader.name))
    asked = time.monotonic()
    store.request_handover(leader, first_owner if onto_owner else third, 10)
    handed = 0.0
    if onto_owner:
        wait_new_owner(cluster, first_owner)
        handed = time.monotonic() - asked
    else:
        cluster.wait_leader(timeout=10, other_than=leader.name)
    heir = owner(cluster, PROGRAMME)
    promoted = heir is not None and bool(standby_processes(PROGRAMME, cluster.node(heir)))
    running.wait_hearing(on_air)
    silence = max(
        sum(seconds for _, _, seconds in silences(listener.tones_since(asked, CANDIDATES)))
        for listener in running.listeners.values()
    )
    return {"handed": handed, "silence": silence}, promoted


def owner_kills(running: ProgrammeCluster, results: dict[str, list[float]]) -> tuple[bool, bool]:
    """The owner's agent killed, then its machine: whether the preference was kept both
    times, and whether the crashed owner also led."""
    recovery, kept = owner_kill(running, crash=False)
    results["owner_kill_recovery_s"].append(recovery["heard"])
    results["owner_kill_claimed_s"].append(recovery["claimed"])
    results["owner_kill_feeding_s"].append(recovery["feeding"])
    results["owner_kill_on_air_s"].append(recovery["on_air"])
    crashed, kept_through_crash = owner_kill(running, crash=True)
    results["owner_crash_recovery_s"].append(crashed["heard"])
    results["owner_crash_claimed_s"].append(crashed["claimed"])
    results["owner_crash_on_air_s"].append(crashed["on_air"])
    return kept and kept_through_crash, bool(crashed["led"])


def leader_changes(running: ProgrammeCluster, results: dict[str, list[float]]) -> bool:
    """The leadership handed elsewhere, then onto the owner: whether the new owner's
    process had started as a standby."""
    elsewhere, _ = hand_leadership(running, onto_owner=False)
    results["leader_elsewhere_silence_s"].append(elsewhere["silence"])
    moved, promoted = hand_leadership(running, onto_owner=True)
    results["leader_onto_owner_handed_s"].append(moved["handed"])
    results["leader_onto_owner_silence_s"].append(moved["silence"])
    return promoted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    require_root(parser)
    results: dict[str, list[float]] = {
        name: []
        for name in (
            "loss_switch_s",
            "switch_back_s",
            "silence_switch_s",
            "owner_kill_recovery_s",
            "owner_kill_claimed_s",
            "owner_kill_feeding_s",
            "owner_kill_on_air_s",
            "owner_crash_recovery_s",
            "owner_crash_claimed_s",
            "owner_crash_on_air_s",
            "leader_elsewhere_silence_s",
            "leader_onto_owner_handed_s",
            "leader_onto_owner_silence_s",
            "liquidsoap_start_s",
        )
    }
    kept_every_time = True
    crashed_leaders = 0  # rounds whose crashed owner also led
    promoted_rounds = 0  # hand-overs to the leader's owner that promoted the standby
    rss_mb = 0.0
    cache = ServiceDirectory("bench-holding-cache")
    try:
        with programme_cluster_running(cache.path, SILENCE_SECONDS, HOLD_SECONDS) as running:
            running.wait_hearing("main.mp3")
            main_studio = running.studios["main.mp3"]
            for round_number in range(1, arguments.rounds + 1):
                stopped = time.monotonic()
                main_studio.process.stop()
                results["loss_switch_s"].append(switch_seconds(running, "backup.mp3", stopped))
                running.restart_studio("main.mp3")
                results["switch_back_s"].append(
                    switch_seconds(running, "main.mp3", time.monotonic())
                )
                silenced = time.monotonic()
                main_studio.set_level(0.0)
                results["silence_switch_s"].append(switch_seconds(running, "backup.mp3", silenced))
                main_studio.set_level(1.0)
                running.wait_hearing("main.mp3")
                results["liquidsoap_start_s"].append(liquidsoap_start_seconds())
                for pid in transcoder_processes(PROGRAMME, running.cluster):
                    rss_mb = max(rss_mb, resident_mib(pid))
                kept, crashed_leader = owner_kills(running, results)
                kept_every_time = kept_every_time and kept
                crashed_leaders += int(crashed_leader)
                promoted_rounds += int(leader_changes(running, results))
                print(
                    f"round {round_number}: "
                    + ", ".join(f"{name} {values[-1]:.2f}" for name, values in results.items()),
                    flush=True,
                )
    finally:
        cache.remove()
    summary: dict[str, object] = {
        "rounds": arguments.rounds,
        "ttl_s": TEST_TIMING["ttl"],
        "silence_time_s": SILENCE_SECONDS,
        "hold_s": HOLD_SECONDS,
        "preference_kept": kept_every_time,
        "owner_crash_also_leader_rounds": crashed_leaders,
        "leader_onto_owner_promoted_rounds": promoted_rounds,
        "liquidsoap_rss_mb": round(rss_mb, 1),
    }
    for name, values in results.items():
        summary[name] = round(statistics.median(values), 2)
        summary[name.removesuffix("_s") + "_max_s"] = round(max(values), 2)
    report("programme", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
