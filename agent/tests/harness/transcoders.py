"""Looking at transcoders from outside: their Liquidsoap processes, their claims in etcd,
their audio on the wire. Shared by the tests and bench/transcoder."""

from __future__ import annotations

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
    script = f"transcoder-{mount}.liq".encode()
    nodes = scope.nodes if isinstance(scope, RadioCluster) else [scope]
    where = tuple(str(node.directory.path).encode() for node in nodes)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"liquidsoap") and any(
            part.endswith(script) and part.startswith(where) for part in argv
        ):
            found.append(int(entry.name))
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
