"""The faults bench/chaos injects into testbed machines, each with its way back.

A fault picks its victim from the cluster as it is (the radio leader, etcd's raft leader,
any node), breaks it, holds, then heals; what "healed" means is the fault's: a killed
service is restarted by systemd on its own, a killed machine boots again, a cut link
comes back up. Everything here acts on machines the testbed created.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import testbed

# What a node's etcdctl needs: its own member, with the node's client certificate.
ETCDCTL = (
    "ETCDCTL_API=3 etcdctl --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/client.crt"
    " --key=/etc/etcd/pki/client.key --endpoints=https://127.0.0.1:2379 "
)


@dataclass(frozen=True)
class Cluster:
    """What a fault may aim at, as the checker saw it just before."""

    nodes: tuple[str, ...]
    leader: str  # the radio leader
    ttl_s: float


@dataclass
class Fault:
    kind: str
    victim: str
    hold_s: float
    heal: Callable[[], None]


def systemctl_kill(node: str, unit: str, signum: int, whom: str = "main") -> None:
    testbed.run_in(node, ["systemctl", "kill", f"--kill-whom={whom}", f"--signal={signum}", unit])


def raft_leader(nodes: Sequence[str]) -> str | None:
    """The node whose etcd member leads raft, asked of the first node that answers."""
    for node in nodes:
        result = testbed.run_in(
            node, ["sh", "-c", ETCDCTL + "endpoint status -w json"], check=False
        )
        if result.returncode != 0:
            continue
        leader_id = json.loads(result.stdout)[0]["Status"]["leader"]
        members = testbed.run_in(node, ["sh", "-c", ETCDCTL + "member list -w json"])
        for member in json.loads(members.stdout)["members"]:
            if member["ID"] == leader_id:
                return str(member["name"])
    return None


def move_raft_leadership(onto: str, nodes: Sequence[str]) -> bool:
    """etcd's MoveLeader, run on the current raft leader; False if it did not happen."""
    current = raft_leader(nodes)
    if current is None:
        return False
    if current == onto:
        return True
    members = json.loads(
        testbed.run_in(current, ["sh", "-c", ETCDCTL + "member list -w json"]).stdout
    )["members"]
    target = next(member["ID"] for member in members if member["name"] == onto)
    moved = testbed.run_in(current, ["sh", "-c", ETCDCTL + f"move-leader {target:x}"], check=False)
    return moved.returncode == 0


def liquidsoap_pids(node: str, script_part: str) -> list[int]:
    """PIDs of the node's Liquidsoap processes whose command line names `script_part`
    (the host's /proc sees the machines' processes; their cgroup says whose)."""
    found = []
    for pid in testbed.cgroup_pids(node):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"liquidsoap") and any(script_part.encode() in a for a in argv):
            found.append(pid)
    return found


def boot(nodes: Sequence[str]) -> Callable[[], None]:
    def start_stopped() -> None:
        testbed.up(nodes)  # starts only the machines that are not running

    return start_stopped


def nothing() -> None:
    """systemd restarts what was killed: the cluster heals by itself."""


def agent_kill(cluster: Cluster, rng: random.Random) -> Fault:
    victim = rng.choice(cluster.nodes)
    systemctl_kill(victim, "radio-agent", signal.SIGKILL)
    return Fault("agent_kill", victim, 0.0, nothing)


def agent_pause(cluster: Cluster, rng: random.Random) -> Fault:
    """SIGSTOP for longer than the lease: a paused leader wakes up to find another."""
    victim = rng.choice(cluster.nodes)
    systemctl_kill(victim, "radio-agent", signal.SIGSTOP)
    return Fault(
        "agent_pause",
        victim,
        cluster.ttl_s + 3,
        lambda: systemctl_kill(victim, "radio-agent", signal.SIGCONT),
    )


def leader_pause(cluster: Cluster, rng: random.Random) -> Fault:
    fault = agent_pause(Cluster((cluster.leader,), cluster.leader, cluster.ttl_s), rng)
    fault.kind = "leader_pause"
    return fault


def icecast_kill(cluster: Cluster, rng: random.Random) -> Fault:
    victim = rng.choice(cluster.nodes)
    systemctl_kill(victim, "icecast2", signal.SIGKILL)
    return Fault("icecast_kill", victim, 0.0, nothing)


def liquidsoap_kill(cluster: Cluster, rng: random.Random) -> Fault:
    """The transcoder's Liquidsoap, wherever it runs (any node if none runs now)."""
    owners = [node for node in cluster.nodes if liquidsoap_pids(node, "transcoder-")]
    victim = rng.choice(owners or list(cluster.nodes))
    for pid in liquidsoap_pids(victim, "transcoder-"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return Fault("liquidsoap_kill", victim, 0.0, nothing)


def machine_kill(cluster: Cluster, rng: random.Random) -> Fault:
    victim = rng.choice(cluster.nodes)
    testbed.kill_node(victim)
    return Fault("machine_kill", victim, 5.0, boot(cluster.nodes))


def leader_machine_kill(cluster: Cluster, rng: random.Random) -> Fault:
    testbed.kill_node(cluster.leader)
    return Fault("leader_machine_kill", cluster.leader, 5.0, boot(cluster.nodes))


def raft_leader_kill(cluster: Cluster, rng: random.Random) -> Fault:
    """The machine whose etcd member leads raft."""
    victim = raft_leader(cluster.nodes) or rng.choice(cluster.nodes)
    testbed.kill_node(victim)
    return Fault("raft_leader_kill", victim, 5.0, boot(cluster.nodes))


def raft_collocated_kill(cluster: Cluster, rng: random.Random) -> Fault:
    """The radio leader's machine while it also leads etcd's raft (moved there first)."""
    move_raft_leadership(cluster.leader, cluster.nodes)
    deadline = time.monotonic() + 10
    while raft_leader(cluster.nodes) != cluster.leader and time.monotonic() < deadline:
        time.sleep(0.5)  # etcd's transfer takes an election round; nothing to wait on
    testbed.kill_node(cluster.leader)
    return Fault("raft_collocated_kill", cluster.leader, 5.0, boot(cluster.nodes))


def link_cut(victim: str, kind: str, hold_s: float) -> Fault:
    testbed.cut(victim)
    return Fault(kind, victim, hold_s, lambda: testbed.restore(victim))


def leader_cut(cluster: Cluster, rng: random.Random) -> Fault:
    """The radio leader cut from the others (and from etcd's majority) past its lease."""
    return link_cut(cluster.leader, "leader_cut", cluster.ttl_s + 5)


def minority_cut(cluster: Cluster, rng: random.Random) -> Fault:
    """A node that does not lead, cut off: etcd's minority partition."""
    others = [node for node in cluster.nodes if node != cluster.leader]
    return link_cut(rng.choice(others), "minority_cut", cluster.ttl_s + 5)


FAULTS: dict[str, Callable[[Cluster, random.Random], Fault]] = {
    "agent_kill": agent_kill,
    "agent_pause": agent_pause,
    "leader_pause": leader_pause,
    "icecast_kill": icecast_kill,
    "liquidsoap_kill": liquidsoap_kill,
    "machine_kill": machine_kill,
    "leader_machine_kill": leader_machine_kill,
    "raft_leader_kill": raft_leader_kill,
    "raft_collocated_kill": raft_collocated_kill,
    "leader_cut": leader_cut,
    "minority_cut": minority_cut,
}
