"""A rolling upgrade on the testbed with listeners on every node: how many each node's
upgrade dropped (the target is 0: a restarting agent hands its listeners to the next).

    bench/upgrade [--up] [--listeners N] [--down]

It runs on the testbed's three machines built from inventory/demo as they stand (`make
demo`, or `bench/chaos --up` without `--down`); `--up` builds them first. The agents get a
new version for the run, as an upgrade brings: a marker line appended to the agent's
`__init__.py` (taken back after, also on failure), so the agent's package gets a new
version and `upgrade.yml` installs it on each node in turn, whose upgrade restarts the
agent. A studio streams live.mp3 through
the nodes; N listeners per node (half of them ICY) read `/_stream/live.mp3` from outside
from before the upgrade until 10 s after it.

Prints JSON last (also bench/results/upgrade.json) with nodes, listeners_per_node,
upgrade_s, restarted (nodes whose agent got a new PID), dropped_by_node, dropped_total,
icy_out_of_step, mp3_chain_breaks and longest_gap_s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from functools import partial

from benchlib import REPO_DIR, report, require_root

sys.path.insert(0, str(REPO_DIR / "molecule" / "testbed"))
import checks
import demo
import testbed
from chaos import build

AGENT_INIT = REPO_DIR / "agent" / "radioagent" / "__init__.py"
UPGRADE_BOUND_S = 1200.0
AFTER_S = 10.0  # listeners read on this long after the last node's upgrade
AFTER_BYTES = 150_000  # ~10 s of the 128 kbps stream
PLAYBOOK = "playbooks/upgrade.yml"


def log(message: str) -> None:
    print(f"upgrade: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def new_agent_version() -> Iterator[None]:
    original = AGENT_INIT.read_text()
    AGENT_INIT.write_text(f"{original}# bench/upgrade: a new version, {time.time():.0f}\n")
    try:
        yield
    finally:
        AGENT_INIT.write_text(original)


def agent_pids(nodes: Sequence[str]) -> dict[str, str]:
    shown = {
        node: testbed.run_in(node, ["systemctl", "show", "-p", "MainPID", "--value", checks.AGENT])
        for node in nodes
    }
    return {node: result.stdout.strip() for node, result in shown.items()}


def upgrade() -> float:
    started = time.monotonic()
    demo.build_agent_package()  # the new version's package, as a release would bring
    subprocess.run(
        [str(demo.VENV_BIN / "ansible-playbook"), "-i", str(demo.INVENTORY), PLAYBOOK],
        cwd=REPO_DIR,
        env={**os.environ, "PATH": f"{demo.VENV_BIN}:{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=UPGRADE_BOUND_S,
    )
    return time.monotonic() - started


def measure(nodes: Sequence[str], per_node: int) -> dict:
    checks.make_tone(checks.TONE)
    studio = demo.Studio(nodes, "live.mp3", demo.SOURCE_PASSWORD, checks.TONE)
    studio.start(UPGRADE_BOUND_S + 120)
    listeners: dict[str, list[checks.RecordingListener]] = {}
    everyone: list[checks.RecordingListener] = []
    try:
        for node in nodes:
            checks.wait_for(partial(checks.plays_sound, node, "/live.mp3"), 60, f"audio on {node}")
        listeners = {
            node: [
                checks.RecordingListener(node, "live.mp3", index % 2 == 1, UPGRADE_BOUND_S + 60)
                for index in range(per_node)
            ]
            for node in nodes
        }
        everyone = [listener for group in listeners.values() for listener in group]
        checks.wait_for(
            lambda: all(ls.received_since(0) > 96 * 1024 for ls in everyone), 30, "listeners"
        )
        before = agent_pids(nodes)
        log(f"upgrade.yml on {', '.join(nodes)} with {len(everyone)} listeners")
        took = upgrade()
        after = agent_pids(nodes)
        done_at = time.monotonic()
        checks.wait_for(
            lambda: all(ls.received_since(done_at) > AFTER_BYTES or ls.ended for ls in everyone),
            AFTER_S + 30,
            "audio after the upgrade",
        )
    finally:
        for group in listeners.values():
            for listener in group:
                listener.stop()
        studio.stop()
    problems = {
        node: [listener.stream_problems() for listener in group]
        for node, group in listeners.items()
    }
    return {
        "nodes": len(nodes),
        "listeners_per_node": per_node,
        "upgrade_s": round(took, 1),
        "restarted": sorted(node for node in nodes if after[node] != before[node]),
        "dropped_by_node": {
            node: sum(1 for listener in group if listener.ended)
            for node, group in listeners.items()
        },
        "dropped_total": sum(1 for ls in everyone if ls.ended),
        "icy_out_of_step": sum(
            1 for found in problems.values() for issues, _ in found if out_of_step(issues)
        ),
        "mp3_chain_breaks": sum(breaks for found in problems.values() for _, breaks in found),
        "longest_gap_s": round(max(listener.longest_gap() for listener in everyone), 2),
        "studio_connections": len(studio.connections),
    }


def out_of_step(issues: list[str]) -> bool:
    return any("ICY" in issue for issue in issues)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/upgrade", description=__doc__.split("\n")[0])
    parser.add_argument("--up", action="store_true", help="build the demo's machines first")
    parser.add_argument("--down", action="store_true", help="remove the testbed after")
    parser.add_argument("--listeners", type=int, default=6, help="per node (half ICY)")
    arguments = parser.parse_args(argv)
    require_root(parser)
    if not 1 <= arguments.listeners <= 200:
        parser.error("--listeners: 1 to 200")
    nodes = demo.NODES
    try:
        if arguments.up:
            build(nodes)
        demo.enter_controller_namespace()
        with new_agent_version():
            summary = measure(nodes, arguments.listeners)
    finally:
        if arguments.down:
            testbed.down()
    report("upgrade", summary)
    restarted_all = summary["restarted"] == sorted(nodes)
    if not restarted_all:
        log(f"only {summary['restarted']} restarted: the upgrade measured nothing there")
    return 0 if restarted_all and summary["dropped_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
