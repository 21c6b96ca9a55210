"""A cluster with a programme fed by four studios, each a distinct tone through a given
node's front door, and a listener on every node's Icecast that says which tone it hears.
Shared by tests/integration/test_programmes.py and bench/programme.py."""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .agents import RadioCluster, start_radio_cluster
from .clients import listen
from .liquidsoap import LiquidsoapTone
from .tones import ToneListener
from .transcoders import live_on_leader
from .waiting import wait_for

PASSWORD = "studio-secret"
PROGRAMME = "radio.mp3"
SILENCE_SECONDS = 3.0  # shorter than the 10 s default: the tests wait it out
# Longer than a return without any hold takes (reconnecting, about 1 s, and the chain,
# about 1.3 s), so that the test tells a hold from none.
HOLD_SECONDS = 6.0
# Each input's tone, and the node whose front door its studio streams through.
TONES = {"main.mp3": 440.0, "backup.mp3": 660.0, "override.mp3": 550.0, "auto.mp3": 880.0}
STUDIO_NODE = {"main.mp3": 0, "backup.mp3": 1, "override.mp3": 0, "auto.mp3": 2}
CANDIDATES = tuple(TONES.values())
SWITCH_TIMEOUT = 20.0  # generous: the targets are measured by bench/programme, not here


def input_away_from(node_name: str) -> str:
    """An automatic input below the first whose studio does not stream through
    `node_name`: preferred before that node dies, it must stay on air after."""
    index = int(node_name.removeprefix("node")) - 1
    return "auto.mp3" if STUDIO_NODE["backup.mp3"] == index else "backup.mp3"


@dataclass
class ProgrammeCluster:
    cluster: RadioCluster
    studios: dict[str, LiquidsoapTone]
    listeners: dict[str, ToneListener]  # by node name

    def hearing(self, frequency: float | None, nodes: list[str] | None = None) -> bool:
        names = nodes if nodes is not None else list(self.listeners)
        return all(self.listeners[name].tone_now(CANDIDATES) == frequency for name in names)

    def wait_hearing(self, mount: str, nodes: list[str] | None = None) -> float:
        """Seconds until every listener (of `nodes`) hears `mount`'s tone."""
        started = time.monotonic()
        wait_for(
            functools.partial(self.hearing, TONES[mount], nodes),
            timeout=SWITCH_TIMEOUT,
            interval=0.2,
            what=f"{mount}'s tone ({TONES[mount]:g} Hz) on every node",
            explain=self.explain,
        )
        return time.monotonic() - started

    def explain(self) -> str:
        heard = {name: each.tone_now(CANDIDATES) for name, each in self.listeners.items()}
        errors = {name: each.error for name, each in self.listeners.items() if each.error}
        return f"heard {heard}, listener errors {errors}\n{self.cluster.log_tails(30)}"

    def restart_studio(self, mount: str) -> None:
        """Start a stopped studio again; back once the current leader has its live mount
        (the leader may have changed since it first started)."""
        studio = self.studios[mount]
        studio.process.start()
        wait_for(
            lambda: live_on_leader(self.cluster, [mount]),
            timeout=30,
            what=f"{mount}'s studio back on the leader",
            explain=studio.process.log_tail,
        )

    def first_heard(self, name: str, frequency: float | None, since: float) -> float | None:
        """When `name`'s listener first received `frequency` after `since` (monotonic)."""
        for at, tone in self.listeners[name].tones_since(since, CANDIDATES):
            if tone == frequency:
                return at
        return None

    def report(self, node: int = 0) -> dict[str, Any]:
        """The programme as /api/v1/status says it, on a node's front door."""
        url = f"{self.cluster.nodes[node].front_door_url}/api/v1/status"
        document = json.loads(listen(url, 1 << 20).body)
        return document["mounts"][PROGRAMME]["programme_state"]


def programme_spec(silence_seconds: float, hold_seconds: float) -> dict[str, Any]:
    return {
        "name": PROGRAMME,
        "source_password": PASSWORD,
        "programme": {
            "inputs": [
                "main.mp3",
                "backup.mp3",
                {"mount": "override.mp3", "automatic": False},
                "auto.mp3",
            ],
            "silence": {"threshold_db": -40, "seconds": silence_seconds},
            "hold_seconds": hold_seconds,
        },
    }


@contextlib.contextmanager
def programme_cluster_running(
    holding_cache_dir: Path,
    silence_seconds: float = SILENCE_SECONDS,
    hold_seconds: float = HOLD_SECONDS,
) -> Iterator[ProgrammeCluster]:
    """Everything started, stopped in reverse however it ends."""
    with contextlib.ExitStack() as stack:
        cluster = start_radio_cluster(stack, holding_cache_dir)
        store = cluster.store()
        for name in TONES:
            store.create_mount({"name": name, "source_password": PASSWORD})
        store.create_mount(programme_spec(silence_seconds, hold_seconds))
        leader = cluster.node(cluster.wait_leader())
        studios = {}
        for name, frequency in TONES.items():
            studio = LiquidsoapTone(
                leader.icecast,
                f"/{name}",
                password=PASSWORD,
                frequency=frequency,
                port=cluster.nodes[STUDIO_NODE[name]].front_door_port,
                live_mount=f"/_live/{name}",
                level_file=True,
            )
            stack.callback(studio.stop)
            studio.start()
            studios[name] = studio
        listeners = {}
        for node in cluster.nodes:
            node.wait_serving(f"/{PROGRAMME}", timeout=30)
            each = ToneListener(f"{node.icecast.base_url}/{PROGRAMME}")
            stack.callback(each.stop)
            each.start()
            listeners[node.name] = each
        yield ProgrammeCluster(cluster, studios, listeners)
