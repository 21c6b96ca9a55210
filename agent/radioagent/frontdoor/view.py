"""What the front door reads from the agent, as one snapshot per request."""

from __future__ import annotations

from dataclasses import dataclass

from radioagent.coordination.state import ClusterState
from radioagent.icecast.stats import IcecastStats


@dataclass(frozen=True)
class AgentSnapshot:
    node_name: str
    version: str
    leading: bool
    epoch: int | None
    etcd_reachable: bool
    state: ClusterState | None
    stats: IcecastStats | None
    seconds_since_cycle: float
    loop_wait: float
    cycles: int
    last_cycle_seconds: float
    etcd_errors: int
    icecast_errors: int
    icecast_reloads: int
    unexpected_errors: int
    sources_allowed: int
    sources_refused: int

    @property
    def alive(self) -> bool:
        """The loop ran recently (a wedged loop would not)."""
        return self.seconds_since_cycle <= 3 * self.loop_wait + 10

    def readiness(self) -> tuple[bool, str]:
        """Can this node serve listeners now?"""
        if self.state is None:
            return False, "has not read the cluster state from etcd yet"
        if self.stats is None:
            return False, "its Icecast does not answer"
        return True, "ready"
