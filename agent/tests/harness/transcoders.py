"""Looking at transcoders from outside: their Liquidsoap processes, their claims in etcd,
their audio on the wire. Shared by the tests and bench/transcoder."""

from __future__ import annotations

import threading
import time
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
    enough to see an overlap of two Liquidsoaps that lasts a tenth of a second)."""
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
    return found


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


class TranscoderCensus:
    """Counts each mount's Liquidsoaps in a thread, pass after pass over /proc for at most
    `seconds` (a bound, stopped earlier on leaving the `with`): `doubled` keeps, for the
    first time a mount was seen running twice, each process's PID, parent, start (clock
    ticks since boot) and script path: enough to tell which nodes, and whether one was a
    fork of the other."""

    def __init__(self, mounts: list[str], scope: RadioCluster, seconds: float) -> None:
        self._mounts, self._scope, self._seconds = mounts, scope, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._count, name="transcoder-census")
        self.passes = 0
        self.seen: set[str] = set()  # mounts seen running at all
        self.doubled: dict[str, list[str]] = {}

    def __enter__(self) -> TranscoderCensus:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _count(self) -> None:
        deadline = time.monotonic() + self._seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            for mount, pids in transcoder_processes_by_mount(self._mounts, self._scope).items():
                if pids:
                    self.seen.add(mount)
                if len(pids) > 1 and mount not in self.doubled:
                    self.doubled[mount] = [describe_process(pid) for pid in pids]
            self.passes += 1
            self._stop.wait(0.002)  # a breath for the agents on a 2-core machine


def describe_process(pid: int) -> str:
    """PID, parent, start time and the script path of a Liquidsoap (for a failure's
    message); what could not be read says so."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError) as error:
        return f"{pid} ({error})"
    script = next((part.decode() for part in argv if part.endswith(b".liq")), "?")
    return f"{pid} parent {fields[1]} started {fields[19]} {script}"
