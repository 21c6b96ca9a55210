"""The faults bench/chaos injects into testbed machines, each with its way back.

A fault picks its victim from the cluster as it is (the radio leader, etcd's raft leader,
any node), breaks it, holds, then heals; what "healed" means is the fault's: a killed
service is restarted by systemd on its own, a killed machine boots again, a cut link
comes back up. Everything here acts on machines the testbed created.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import checks
import testbed


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
    exempt: bool = True  # the victim's listener may drop (False: not even there)


def systemctl_kill(node: str, unit: str, signum: int, whom: str = "main") -> None:
    testbed.run_in(node, ["systemctl", "kill", f"--kill-whom={whom}", f"--signal={signum}", unit])


def raft_leader(nodes: Sequence[str]) -> str | None:
    """The node whose etcd member leads raft, asked of the first node that answers."""
    for node in nodes:
        try:
            leader_id = checks.etcdctl(node, "endpoint status -w json")[0]["Status"]["leader"]
            members = checks.etcdctl(node, "member list -w json")["members"]
        except (testbed.TestbedError, ValueError, KeyError, IndexError):
            continue  # that node's etcd does not answer now
        for member in members:
            if member["ID"] == leader_id:
                return str(member["name"])
    return None


def etcd_members(nodes: Sequence[str]) -> list[str]:
    """The nodes that run an etcd member (the others run the gateway)."""
    for node in nodes:
        try:
            members = checks.etcdctl(node, "member list -w json")["members"]
        except (testbed.TestbedError, ValueError, KeyError):
            continue
        return sorted(str(member["name"]) for member in members if member["name"] in nodes)
    return []


def parent_pid(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in status.splitlines() if line[:5] == "PPid:"), None)


def liquidsoap_pids(node: str, script_part: str) -> list[int]:
    """PIDs of the node's Liquidsoap processes whose command line names `script_part`
    (the host's /proc sees the machines' processes; their cgroup says whose). A child a
    Liquidsoap forked is the same one: between its fork and its exec it still has
    Liquidsoap's command line (at start Liquidsoap forks GStreamer's plugin scanner and
    a shell, which once made one transcoder count twice)."""
    found = []
    for pid in testbed.cgroup_pids(node):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"liquidsoap") and any(script_part.encode() in a for a in argv):
            found.append(pid)
    return [pid for pid in found if parent_pid(pid) not in found]


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


def agent_restart(cluster: Cluster, rng: random.Random) -> Fault:
    """`systemctl restart radio-agent`, as an upgrade or a changed setting does: the
    agent hands its listeners to the next process, so not even the victim's may drop."""
    victim = rng.choice(cluster.nodes)
    testbed.run_in(victim, ["systemctl", "restart", "radio-agent"])
    return Fault("agent_restart", victim, 0.0, nothing, exempt=False)


def agent_pause(cluster: Cluster, rng: random.Random) -> Fault:
    """SIGSTOP for longer than the lease (ttl + 3 s): systemd's watchdog kills the frozen
    agent, its Liquidsoaps with it, well before, and starts it again; the SIGCONT at the
    heal then reaches the new agent, which it does not harm."""
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


def icecast_hang(cluster: Cluster, rng: random.Random) -> Fault:
    """Icecast stops answering but keeps its port (SIGSTOP, never resumed): what Icecast
    2.4.4's reload deadlock does (icecast/hang.py). systemd sees nothing wrong; the
    node's agent must have it restarted, or the node's listeners hear nothing forever."""
    victim = rng.choice(cluster.nodes)
    systemctl_kill(victim, "icecast2", signal.SIGSTOP)
    return Fault("icecast_hang", victim, 0.0, nothing)


def liquidsoap_kill(cluster: Cluster, rng: random.Random) -> Fault:
    """The transcoder's Liquidsoap, wherever it runs (any node if none runs now)."""
    owners = [node for node in cluster.nodes if liquidsoap_pids(node, "transcoder-")]
    victim = rng.choice(owners or list(cluster.nodes))
    for pid in liquidsoap_pids(victim, "transcoder-"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return Fault("liquidsoap_kill", victim, 0.0, nothing)


LIQUIDSOAP = "/usr/bin/liquidsoap"
BROKEN_LIQUIDSOAP = "#!/bin/sh\necho 'liquidsoap: broken by bench/chaos' >&2\nexit 1\n"


def liquidsoap_crash_at_start(cluster: Cluster, rng: random.Random) -> Fault:
    """The transcoder's owner can no longer start Liquidsoap (its binary replaced by one
    that fails at once), and its running one is killed: the agent restarts it, fails
    three times, gives the claim up, and another node takes the mount over. The binary
    comes back at the heal."""
    owners = [node for node in cluster.nodes if liquidsoap_pids(node, "transcoder-")]
    victim = rng.choice(owners or list(cluster.nodes))
    testbed.run_in(victim, ["mv", LIQUIDSOAP, f"{LIQUIDSOAP}.real"])
    testbed.run_in(
        victim,
        ["sh", "-c", f'printf %s "$0" > {LIQUIDSOAP} && chmod 755 {LIQUIDSOAP}', BROKEN_LIQUIDSOAP],
    )
    for pid in liquidsoap_pids(victim, "transcoder-"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def mend() -> None:
        testbed.run_in(victim, ["mv", "-f", f"{LIQUIDSOAP}.real", LIQUIDSOAP])

    return Fault("liquidsoap_crash_at_start", victim, cluster.ttl_s + 15, mend)


FILLER = "/var/radio-testbed-filler"


def disk_full(cluster: Cluster, rng: random.Random) -> Fault:
    """The node's /var (state and logs: etcd's data, the agent's state, the journal; a
    filesystem of its own on the testbed) filled to its last block while everything
    runs, past the lease; the heal deletes the filler."""
    victim = rng.choice(cluster.nodes)
    free = "$(( $(stat -f -c '%a * %S' /var) ))"
    testbed.run_in(
        victim,
        ["sh", "-c", f"fallocate -l {free} {FILLER}; dd if=/dev/zero of={FILLER}.rest bs=4k"],
        check=False,  # dd ends on ENOSPC: that is the point
    )

    def empty() -> None:
        testbed.run_in(victim, ["rm", "-f", FILLER, f"{FILLER}.rest"])

    return Fault("disk_full", victim, cluster.ttl_s + 15, empty)


def machine_kill(cluster: Cluster, rng: random.Random) -> Fault:
    victim = rng.choice(cluster.nodes)
    testbed.kill_node(victim)
    return Fault("machine_kill", victim, 5.0, boot(cluster.nodes))


def leader_machine_kill(cluster: Cluster, rng: random.Random) -> Fault:
    """Down past its lease: a machine back sooner resigns its previous life's leadership
    at once, which would hide the crash failover's cost."""
    testbed.kill_node(cluster.leader)
    return Fault("leader_machine_kill", cluster.leader, cluster.ttl_s + 5, boot(cluster.nodes))


def raft_leader_kill(cluster: Cluster, rng: random.Random) -> Fault:
    """The machine whose etcd member leads raft."""
    victim = raft_leader(cluster.nodes) or rng.choice(cluster.nodes)
    testbed.kill_node(victim)
    return Fault("raft_leader_kill", victim, 5.0, boot(cluster.nodes))


def raft_collocated_kill(cluster: Cluster, rng: random.Random) -> Fault:
    """The radio leader's machine while it also leads etcd's raft (moved there first, and
    killed before its agent's guard can move it off), down past its lease. A leader on
    an etcd gateway (5 nodes: 3 members) has no member to lead raft: its machine's death
    is struck and recorded as what it is, `leader_machine_kill`."""
    if cluster.leader not in etcd_members(cluster.nodes):
        return leader_machine_kill(cluster, rng)
    checks.make_etcd_leader(cluster.leader)
    testbed.kill_node(cluster.leader)
    return Fault("raft_collocated_kill", cluster.leader, cluster.ttl_s + 5, boot(cluster.nodes))


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


def etcd_majority(cluster: Cluster, rng: random.Random) -> Fault:
    """Etcd without quorum (a majority of its members frozen past the lease) while every
    machine, agent and link is fine: the failsafe keeps the leader taking sources. The
    victim names the frozen members; no node is exempt from the checker."""
    members = etcd_members(cluster.nodes) or list(cluster.nodes)
    frozen = sorted(rng.sample(members, len(members) // 2 + 1))
    for node in frozen:
        systemctl_kill(node, "etcd", signal.SIGSTOP)

    def thaw() -> None:
        for node in frozen:
            systemctl_kill(node, "etcd", signal.SIGCONT)

    return Fault("etcd_majority", "+".join(frozen), cluster.ttl_s + 5, thaw)


FAULTS: dict[str, Callable[[Cluster, random.Random], Fault]] = {
    "agent_kill": agent_kill,
    "agent_restart": agent_restart,
    "agent_pause": agent_pause,
    "leader_pause": leader_pause,
    "icecast_kill": icecast_kill,
    "icecast_hang": icecast_hang,
    "liquidsoap_kill": liquidsoap_kill,
    "liquidsoap_crash_at_start": liquidsoap_crash_at_start,
    "disk_full": disk_full,
    "machine_kill": machine_kill,
    "leader_machine_kill": leader_machine_kill,
    "raft_leader_kill": raft_leader_kill,
    "raft_collocated_kill": raft_collocated_kill,
    "leader_cut": leader_cut,
    "minority_cut": minority_cut,
    "etcd_majority": etcd_majority,
}
