"""Looking at transcoders from outside: their Liquidsoap processes, their claims in etcd,
their audio on the wire. Shared by the tests and bench/transcoder."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .agents import AgentNode, RadioCluster
from .clients import listen
from .media import loudness_db

LOUD_DB = -50.0  # pink noise or a tone is far above; digital silence is about -91 dB


def transcoder_processes(mount: str, scope: RadioCluster | AgentNode) -> list[int]:
    """PIDs of Liquidsoap processes running the transcoder script of `mount`, started by
    the agents of `scope` (a whole cluster or one node): their scripts live under their
    directories. Scoped so that other clusters on the machine (another test run, the
    testbed's machines, whose processes this host's /proc shows too) never count."""
    return transcoder_processes_by_mount([mount], scope)[mount]


def transcoder_processes_by_mount(
    mounts: list[str], scope: RadioCluster | AgentNode
) -> dict[str, list[int]]:
    """transcoder_processes of several mounts, from one pass over /proc (a few ms: fast
    enough to see an overlap of two Liquidsoaps that lasts a tenth of a second). A child
    Liquidsoap forks (to run a command) shows its parent's command line until it execs:
    it is not a second transcoder, and is left out."""
    scripts = {f"transcoder-{mount}.liq".encode(): mount for mount in mounts}
    nodes = scope.nodes if isinstance(scope, RadioCluster) else [scope]
    where = tuple(str(node.directory.path).encode() for node in nodes)
    found: dict[str, list[int]] = {mount: [] for mount in mounts}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv[0].endswith(b"liquidsoap"):
            continue
        for part in argv:
            mount = scripts.get(part.rsplit(b"/", 1)[-1])
            if mount is not None and part.startswith(where):
                found[mount].append(int(entry.name))
                break
    return {
        mount: [pid for pid in pids if parent_of(pid) not in pids] for mount, pids in found.items()
    }


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # gone meanwhile
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def standby_processes(mount: str, scope: RadioCluster | AgentNode) -> list[int]:
    """Those of transcoder_processes started as a programme's standby (their environment
    says so; it stays so after the standby goes on air)."""
    found = []
    for pid in transcoder_processes(mount, scope):
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"RADIO_PROGRAMME_STANDBY=1" in environment:
            found.append(pid)
    return found


def owner(cluster: RadioCluster, mount: str) -> str | None:
    """The node holding the transcoder claim of `mount` in etcd."""
    value, _ = cluster.client().get(cluster.layout.transcoder(mount))
    return value.decode() if value is not None else None


def live_on_leader(cluster: RadioCluster, mounts: list[str]) -> bool:
    """Every one of `mounts` has its source connected on the current leader's Icecast."""
    leader = cluster.leader_name()
    if leader is None:
        return False
    sources = cluster.node(leader).icecast.all_sources()
    return all(f"/_live/{mount}" in sources for mount in mounts)


FRONT_DOOR_BURST_BYTES = 64 * 1024  # the recent past a new listener gets at once


def plays_sound(
    node: AgentNode, mount: str, container: str, nbytes: int = 24000, *, fresh: bool = False
) -> bytes | None:
    """Audio with sound in it (not holding silence) from `node`'s front door, or None.
    `fresh`: judge only what comes after the burst (the front door's recent past)."""
    wanted = nbytes + (FRONT_DOOR_BURST_BYTES if fresh else 0)
    received = listen(
        f"{node.front_door_url}/{mount}", wanted, timeout=4 + wanted / 8000, follow_redirects=True
    )
    if received.status != 200 or len(received.body) < wanted:
        return None
    judged = received.body[-nbytes:]
    return judged if loudness_db(judged, container) > LOUD_DB else None


@dataclass
class Life:
    """A Liquidsoap's life as seen: seconds since boot (CLOCK_BOOTTIME's clock)."""

    start: float
    last_seen: float
    script: str


class TranscoderCensus:
    """Watches each mount's Liquidsoaps in a thread, pass after pass over /proc for at
    most `seconds` (a bound, stopped earlier on leaving the `with`). Each process's life
    is known from its start (the kernel's, exact to a clock tick) to the last pass that
    saw it, so two lives of one mount that overlapped are found even when no single pass
    fell inside the overlap (a pass takes tens of ms; an overlap may be as short).
    `overlaps`: per mount, the first pair found, each as PID, script and life."""

    def __init__(self, mounts: list[str], scope: RadioCluster, seconds: float) -> None:
        self._mounts, self._scope, self._seconds = mounts, scope, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._count, name="transcoder-census")
        self.passes = 0
        self.lives: dict[str, dict[int, Life]] = {mount: {} for mount in mounts}

    def __enter__(self) -> TranscoderCensus:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seen(self) -> set[str]:
        """Mounts seen running at all."""
        return {mount for mount, lives in self.lives.items() if lives}

    @property
    def overlaps(self) -> dict[str, str]:
        found = {}
        for mount, lives in self.lives.items():
            earlier: tuple[int, Life] | None = None  # the one seen last, of those started
            for pid, life in sorted(lives.items(), key=lambda item: item[1].start):
                if earlier is not None and life.start < earlier[1].last_seen:
                    found[mount] = f"{earlier[0]} {earlier[1]} and {pid} {life}"
                    break
                if earlier is None or life.last_seen > earlier[1].last_seen:
                    earlier = (pid, life)
        return found

    def _count(self) -> None:
        deadline = time.monotonic() + self._seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            running = transcoder_processes_by_mount(self._mounts, self._scope)
            now = time.clock_gettime(time.CLOCK_BOOTTIME)
            for mount, pids in running.items():
                for pid in pids:
                    life = self.lives[mount].get(pid)
                    if life is not None:
                        life.last_seen = now
                        continue
                    start = started_at(pid)
                    if start is not None:
                        self.lives[mount][pid] = Life(start, now, script_of(pid))
            self.passes += 1
            self._stop.wait(0.002)  # a breath for the agents on a 2-core machine


def started_at(pid: int) -> float | None:
    """When the process began, in seconds since boot (CLOCK_BOOTTIME's clock)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def script_of(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return next((part.decode() for part in argv if part.endswith(b".liq")), "?")
