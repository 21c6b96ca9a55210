"""What the cluster looks like, as read from the store: plain values, no etcd.

The store (`radioagent.store.records`) decodes etcd's bytes into these; everything else
(the cycle planner, the front door, radioctl's output) reads only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from radioagent.acme.state import AcmeState
from radioagent.model import MountSpec, NodeStatus
from radioagent.nowplaying import NowPlaying
from radioagent.settings import ClusterSettings


@dataclass(frozen=True)
class LeaderRecord:
    name: str
    epoch: int  # the leader key's create revision: a fencing token, new at every election
    lease: int


@dataclass(frozen=True)
class Handover:
    """An operator's request that the leader of `epoch` steps down, for `to` if named."""

    epoch: int
    from_node: str
    to: str | None
    revision: int = 0  # its mod revision in etcd, once read: deleted only while unchanged


@dataclass(frozen=True)
class ClusterState:
    revision: int
    leader: LeaderRecord | None
    nodes: dict[str, NodeStatus] = field(default_factory=dict)
    mounts: dict[str, MountSpec] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    draining: frozenset[str] = frozenset()
    handover: Handover | None = None
    settings: ClusterSettings = field(default_factory=ClusterSettings)
    transcoders: dict[str, str] = field(default_factory=dict)  # mount -> owning node
    titles: dict[str, NowPlaying] = field(default_factory=dict)  # mount -> its titles
    acme_challenges: dict[str, str] = field(default_factory=dict)  # token -> key authorization
    acme: AcmeState = field(default_factory=AcmeState)  # the certificate, and ordering it
    preferences: dict[str, str] = field(default_factory=dict)  # programme -> preferred input
    # Every node known to the cluster -> since when it is down (wall clock), as the
    # leader marked it; None: up, or not marked yet.
    known: dict[str, float | None] = field(default_factory=dict)
    transcoder_leases: dict[str, int] = field(default_factory=dict)  # mount -> its claim's lease

    def down_nodes(self) -> dict[str, float | None]:
        """Known nodes without a status (their lease expired), with since when."""
        return {name: since for name, since in sorted(self.known.items()) if name not in self.nodes}
