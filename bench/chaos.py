"""A fault campaign on the systemd-nspawn testbed: seeded random faults on a cluster the
project's own playbooks built, with a checker on the wire from outside (chaos_checker).

    bench/chaos [--up [--nodes N]] [--faults N] [--seed S] [--short] [--kinds K,..] [--down]

It runs on the testbed's cluster as it stands (`make demo`, or the cluster scenario's
machines); `--up` builds one first (image, N machines, 3 by default, site.yml and
radios.yml with inventory/demo's settings and radio, 3 etcd members) and `--down`
removes it after. The workload: two studios streaming through different nodes (each
moves to the next node when its own dies, as an encoder pointed at the cluster's name),
a listener on every node, the demo's transcoded mount. For each fault: wait for a
healthy cluster, inject, hold, heal, then wait (bounded) until every mount is heard on
every node; meanwhile the checker samples its invariants. `--short` is the CI campaign:
every kind once, fixed seed.

Prints JSON last (also bench/results/chaos.json) with seed, nodes, faults,
faults_by_kind, violations, recovery_p95_s, the per-kind rows and every fault's record;
writes the table to docs/reliability.md with `--write-doc`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import REPO_DIR, report, require_root

sys.path.insert(0, str(REPO_DIR / "molecule" / "testbed"))
import checks
import demo
import testbed
from campaign import FaultRecord, doc_with_section, schedule, summarise, table
from chaos_checker import Checker, orphaned_claims
from nemesis import FAULTS, Cluster, Fault

SHORT_SEED = 20261206
TTL_S = checks.TTL_S  # the agents' default lease (inventory/demo keeps the defaults)
LIQUIDSOAP_START_S = 10.0
RECOVERY_BOUND_S = 120.0
HEALTHY_BOUND_S = 180.0
MOUNTS = ("live.mp3", "chaos.mp3", "low.mp3")
BURST_BYTES = 64 * 1024  # Icecast's burst: the recent past, sent at once
HEARD_BYTES = 16 * 1024  # then this much in real time: 1 s at 128 kbps, 2.7 s at 48
TRANSCODED = ("low.mp3",)
ETCD_PREFIX = "/radio/v1/"
# A player keeps a stalled stream open for a while: a drop is the connection ending, and
# the gaps are measured apart (listener_gap_s).
LISTENER_PATIENCE_S = 30.0
CAMPAIGN_HOURS_MAX = 6  # listeners and studios stop by themselves after that
DOC = REPO_DIR / "docs" / "reliability.md"


def log(message: str) -> None:
    print(f"chaos: {message}", flush=True)


def running_nodes() -> tuple[str, ...]:
    state = testbed.load_state()
    return tuple(
        sorted(
            name for name, entry in state.get("nodes", {}).items() if testbed.node_running(entry)
        )
    )


def radio_leader(nodes: Sequence[str]) -> str | None:
    for node in nodes:
        with contextlib.suppress(testbed.TestbedError, ValueError, KeyError, TypeError):
            return str(checks.status(node)["leader"]["name"])
    return None


def heard(node: str, mount: str) -> bool:
    """The node's own stream of `mount` (`/_stream/`, no redirect) has sound past
    Icecast's burst of the recent past; an error status is "not yet"."""
    try:
        audio = checks.fetch(node, f"/_stream/{mount}", BURST_BYTES + HEARD_BYTES)
    except (checks.CheckFailed, OSError):
        return False
    tail = audio[BURST_BYTES:]
    return len(tail) == HEARD_BYTES and checks.loudness_db(tail, "mp3") > checks.LOUD_DB


def heard_everywhere(nodes: Sequence[str]) -> list[str]:
    """The (node, mount) pairs not heard now."""
    pairs = [(node, mount) for node in nodes for mount in MOUNTS]
    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        heard_now = list(pool.map(lambda pair: heard(*pair), pairs))
    return [f"{mount}@{node}" for (node, mount), ok in zip(pairs, heard_now, strict=True) if not ok]


def healthy(nodes: Sequence[str]) -> bool:
    """Every machine runs its services, one leader, every mount heard on every node."""
    if running_nodes() != tuple(sorted(nodes)):
        return False
    if not all(checks.services_up(node) for node in nodes):
        return False
    if radio_leader(nodes) is None:
        return False
    return not heard_everywhere(nodes)


def wait_healthy(nodes: Sequence[str], bound: float) -> float | None:
    """Seconds until healthy, or None past `bound`."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        if healthy(nodes):
            return time.monotonic() - started
        time.sleep(1)  # each look takes seconds of listening already
    return None


def ensure_mount(nodes: Sequence[str]) -> None:
    """The second studio's mount, created once (kept across campaigns)."""
    listed = checks.status(nodes[0])["mounts"]
    if "chaos.mp3" not in listed:
        testbed.run_in(
            nodes[0],
            [
                "radioctl",
                "mount",
                "create",
                "chaos.mp3",
                "--set",
                f"source_password={demo.SOURCE_PASSWORD}",
            ],
        )


@contextlib.contextmanager
def workload(
    nodes: Sequence[str],
) -> Iterator[tuple[dict[str, checks.Listener], list[demo.Studio]]]:
    """Two studios (live.mp3 through the first node, chaos.mp3 through the second), and
    the listeners dict the campaign fills; everything stops on the way out."""
    demo.make_tone(checks.TONE)
    seconds = CAMPAIGN_HOURS_MAX * 3600
    first = list(nodes)
    second = first[1:] + first[:1]
    studios = [
        demo.Studio(first, "live.mp3", demo.SOURCE_PASSWORD, checks.TONE).start(seconds),
        demo.Studio(second, "chaos.mp3", demo.SOURCE_PASSWORD, checks.TONE).start(seconds),
    ]
    listeners: dict[str, checks.Listener] = {}
    try:
        yield listeners, studios
    finally:
        for studio in studios:
            studio.stop()
        for listener in listeners.values():
            listener.close()


def refill_listeners(checker: Checker, nodes: Sequence[str]) -> None:
    """A listener on every node that has none (or lost its own). A node that refuses one
    is a violation of its own, and the campaign goes on (the next refill tries again)."""
    for node in nodes:
        current = checker.listeners.get(node)
        if current is not None and current.connected():
            continue
        if current is not None:
            current.close()
        try:
            listener = checks.Listener(
                node, "/_stream/live.mp3", CAMPAIGN_HOURS_MAX * 3600, LISTENER_PATIENCE_S
            )
        except checks.CheckFailed as error:
            checker.report("listener_refused", str(error))
            continue
        checker.listen(node, listener)


def heal_everything(nodes: Sequence[str]) -> None:
    """After a fault that failed half way (its own heal unknown): every machine up, every
    link up, every agent running."""
    testbed.up(nodes)
    for node in nodes:
        testbed.restore(node)
        testbed.run_in(node, ["systemctl", "kill", "--signal=SIGCONT", "radio-agent"], check=False)


def one_fault(  # noqa: PLR0917 - the campaign's parts, each needed here
    number: int,
    kind: str,
    nodes: Sequence[str],
    checker: Checker,
    rng: random.Random,
    studios: Sequence[demo.Studio],
) -> FaultRecord:
    leader = radio_leader(nodes) or nodes[0]
    record = FaultRecord(number, kind, "", round(checker.now(), 2), leader=leader)
    record.studios = {s.mount: s.connections[-1] for s in studios if s.connections}
    checker.current = record
    checker.exempt = set(nodes)  # the victim is known once the fault has struck
    try:
        fault = FAULTS[kind](Cluster(tuple(nodes), leader, TTL_S), rng)
    except (testbed.TestbedError, checks.CheckFailed, subprocess.SubprocessError) as error:
        # It failed half way: counted (it may be the cluster's doing), the cluster made
        # whole again, and the campaign goes on.
        checker.report("fault_failed", f"{kind}: {error}")
        heal_everything(nodes)
        fault = Fault(kind, "", 0.0, lambda: None)
    record.victim = fault.victim
    # Drops elsewhere while striking are still seen; an agent restart exempts nobody.
    checker.exempt = {fault.victim} if fault.exempt else set()
    log(f"fault {number}: {kind} on {fault.victim} (leader {leader}); hold {fault.hold_s:.0f} s")
    time.sleep(fault.hold_s)  # the fault's own duration: that is the experiment
    fault.heal()
    healed = time.monotonic()
    record.healed_s = round(checker.now(), 2)
    recovered = wait_healthy(nodes, RECOVERY_BOUND_S)
    if recovered is None:
        checker.report("not_heard", f"after {kind}: not heard {heard_everywhere(nodes)}")
    else:
        record.recovered_s = round(time.monotonic() - healed, 2)
        try:
            for orphan in orphaned_claims(nodes, ETCD_PREFIX):
                checker.report("orphaned_claim", orphan)
        except testbed.TestbedError as error:
            checker.report("claims_unreadable", f"after {kind}: {error}")
    log(
        f"fault {number}: healed; recovered after {record.recovered_s} s; "
        f"{len(record.violations)} violation(s)"
    )
    checker.forgive(fault.victim)
    checker.current = None
    return record


def campaign(
    kinds: Sequence[str], seed: int, rng: random.Random, max_minutes: float | None = None
) -> dict:
    nodes = running_nodes()
    if len(nodes) < 3:
        raise testbed.TestbedError(f"the testbed runs {list(nodes)}: 3 nodes or more (--up)")
    ensure_mount(nodes)
    records: list[FaultRecord] = []
    with workload(nodes) as (listeners, studios):
        if wait_healthy(nodes, HEALTHY_BOUND_S) is None:
            raise testbed.TestbedError(
                f"not healthy before the first fault: {heard_everywhere(nodes)}"
            )
        checker = Checker(nodes, TRANSCODED, TTL_S + LIQUIDSOAP_START_S + 15, listeners)
        refill_listeners(checker, nodes)
        checker.start()
        try:
            started = time.monotonic()
            for number, kind in enumerate(kinds, start=1):
                if max_minutes is not None and time.monotonic() - started > max_minutes * 60:
                    log(f"{max_minutes:g} min are up: {number - 1} faults of {len(kinds)}")
                    break
                try:
                    records.append(one_fault(number, kind, nodes, checker, rng, studios))
                except (testbed.TestbedError, checks.CheckFailed) as error:
                    # The harness itself failed: what ran so far is still reported.
                    checker.report("harness_failed", f"fault {number} ({kind}): {error}")
                    break
                refill_listeners(checker, nodes)
        finally:
            checker.stop()
    summary = summarise(records, checker.between, seed, len(nodes))
    summary["samples"] = checker.samples
    return summary


def site_for(nodes: Sequence[str]) -> Path:
    """inventory/demo for `nodes` (its settings and radio; PKI and credentials made anew
    by site.yml), in the testbed's directory: its hosts as the testbed addresses them."""
    site = testbed.BASE_DIR / "chaos-site"
    shutil.rmtree(site, ignore_errors=True)
    for part in ("group_vars", "radios"):
        shutil.copytree(demo.INVENTORY / part, site / part)
    hosts = "".join(
        f"        {node}:\n"
        f"          radio_node_address: 10.77.0.{10 + testbed.node_index(node)}\n"
        "          ansible_nsenter_pid: \"{{ lookup('ansible.builtin.file', "
        f"'/run/radio-testbed/{node}.pid') }}}}\"\n"
        for node in nodes
    )
    (site / "hosts.yml").write_text(
        "---\nall:\n  children:\n    radio_nodes:\n      hosts:\n"
        + hosts
        + "      vars:\n        ansible_connection: community.docker.nsenter\n"
        "        ansible_python_interpreter: /usr/bin/python3\n"
    )
    return site


def build(nodes: Sequence[str]) -> None:
    """The testbed's machines, built by the project's own playbooks."""
    testbed.build_image()
    testbed.up(nodes)
    site = demo.INVENTORY if tuple(nodes) == demo.NODES else site_for(nodes)
    demo.build_agent_package()
    for name in ("site.yml", "radios.yml"):
        started = time.monotonic()
        subprocess.run(
            [str(demo.VENV_BIN / "ansible-playbook"), "-i", str(site), f"playbooks/{name}"],
            cwd=REPO_DIR,
            env={**os.environ, "PATH": f"{demo.VENV_BIN}:{os.environ['PATH']}"},
            check=True,
            timeout=3600,
        )
        log(f"{name}: {time.monotonic() - started:.0f} s")


def write_doc(summary: dict) -> None:
    """The table with its seed in docs/reliability.md, in the section of its cluster's
    size, every fault's record beside it."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    history = DOC.with_name(f"reliability-{summary['nodes']}-nodes.json")
    history.write_text(json.dumps(summary, indent=1) + "\n")
    section = (
        f"`{summary['command']}` ran {summary['faults']} faults on "
        f"{summary['nodes']} testbed machines, {time.strftime('%Y-%m-%d %H:%M')}: "
        f"{summary['violations']} violations, recovery p95 {summary['recovery_p95_s']} s "
        "(from the heal until every mount is heard on every node). Every fault's record: "
        f"[{history.name}]({history.name}).\n\n" + table(summary)
    )
    existing = DOC.read_text() if DOC.exists() else ""
    DOC.write_text(doc_with_section(existing, summary["nodes"], section))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--faults", type=int, default=len(FAULTS))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--short", action="store_true", help="every kind once, fixed seed")
    parser.add_argument("--up", action="store_true", help="build a cluster on the testbed first")
    parser.add_argument("--nodes", type=int, default=3, help="with --up: how many machines")
    parser.add_argument("--down", action="store_true", help="remove the testbed after")
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="stop starting faults after that"
    )
    parser.add_argument("--write-doc", action="store_true", help=f"the table to {DOC.name}")
    parser.add_argument(
        "--kinds", default=None, help=f"comma-separated kinds to draw from (of {', '.join(FAULTS)})"
    )
    arguments = parser.parse_args(argv)
    require_root(parser)
    if arguments.faults < 1:
        parser.error("--faults must be at least 1")
    if not 3 <= arguments.nodes <= 9:
        parser.error("--nodes: 3 to 9 (the testbed's addresses and etcd's 3 members)")
    drawn = list(FAULTS) if arguments.kinds is None else arguments.kinds.split(",")
    if unknown := [kind for kind in drawn if kind not in FAULTS]:
        parser.error(f"--kinds: no such kind {', '.join(unknown)}")
    seed = SHORT_SEED if arguments.short else arguments.seed
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 32)
    rng = random.Random(seed)  # noqa: S311 - a replayable campaign, not a secret
    kinds = schedule(drawn, len(drawn) if arguments.short else arguments.faults, rng)
    log(f"seed {seed}: {len(kinds)} faults")
    try:
        if arguments.up:
            build([f"node{index}" for index in range(1, arguments.nodes + 1)])
        demo.enter_controller_namespace()
        summary = campaign(kinds, seed, rng, arguments.max_minutes)
        summary["command"] = " ".join(["bench/chaos", *(argv or sys.argv[1:])])
    finally:
        if arguments.down:
            testbed.down()
    if arguments.write_doc:
        write_doc(summary)
    report("chaos", summary)
    return 1 if summary["violations"] or summary["unrecovered"] else 0


if __name__ == "__main__":
    sys.exit(main())
