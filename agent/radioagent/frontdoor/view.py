"""What the front door reads from the agent, as one snapshot per request."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.core import Metric

from radioagent.config import Timing
from radioagent.coordination.state import ClusterState
from radioagent.deadair import AirReport
from radioagent.diskspace import DiskSpace
from radioagent.icecast.stats import IcecastStats
from radioagent.looplag import LagHistogram
from radioagent.model import NodeStatus
from radioagent.transcoding.state import TranscoderState


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
    timing: Timing  # what this agent follows now (the cluster's, else its own)
    cycles: int
    last_cycle_seconds: float
    etcd_errors: int
    icecast_errors: int
    icecast_reloads: int
    unexpected_errors: int
    sources_allowed: int
    sources_refused: int
    leader: NodeStatus | None  # the leader's status (this node's own when it leads)
    listener_limit: int | None
    public_address: str
    transcoders: dict[str, TranscoderState]  # transcoded mounts running here
    draining: bool = False
    air: dict[str, AirReport] = field(default_factory=dict)  # each mount's audio here
    # Transcoded mounts and programmes whose claims this node gave up lately (their
    # Liquidsoap kept failing here).
    given_up: tuple[str, ...] = ()
    dns_answers: dict[str, int] | None = None  # by rcode; None: this node answers no DNS
    dns_dropped: int = 0  # packets that got no reply
    certificate_orders: dict[str, int] | None = None  # by result; None: no ACME here
    # Cluster-wide listeners of each mount, a value a minute, oldest first (None: unseen).
    listeners_last_hour: dict[str, list[int | None]] = field(default_factory=dict)
    etcd_endpoints: int = 1  # it may use: configured, and the members etcd lists
    etcd_away: bool = False  # on another node's member, its own having failed
    # None: no failsafe key here. Else: held (cut off from etcd, acting on the failsafe),
    # the leader's rounds by result, and the pings answered by result.
    failsafe_held: bool | None = None
    failsafe_rounds: dict[str, int] = field(default_factory=dict)
    failsafe_answers: dict[str, int] = field(default_factory=dict)
    disks: tuple[DiskSpace, ...] = ()
    icecast_restarts_asked: int = 0  # hung Icecasts (icecast/hang.py)
    # Lease keepalives that failed or went late (loop.py), by which.
    keepalives_missed: dict[str, int] = field(default_factory=dict)
    loop_lag: LagHistogram = field(default_factory=LagHistogram)
    etcd_member_metrics: tuple[Metric, ...] = ()
    # When this node's etcd client certificate expires (Unix time); None: no TLS to etcd,
    # or not read.
    etcd_certificate_expiry: float | None = None  # the local member's, as etcd gives them

    @property
    def alive(self) -> bool:
        """The loop ran recently (a wedged loop would not)."""
        return self.seconds_since_cycle <= 3 * self.timing.loop_wait + 10

    def readiness(self) -> tuple[bool, str]:
        """Can this node serve listeners now?"""
        if self.state is None:
            return False, "has not read the cluster state from etcd yet"
        if self.stats is None:
            return False, "its Icecast does not answer"
        return True, "ready"


@dataclass(frozen=True)
class CertificateStats:
    not_after: float  # of the certificate new handshakes get
    reloads: int
    reload_failures: int


@dataclass(frozen=True)
class FrontDoorStats:
    listeners: dict[str, int]  # by mount, on this node
    directions: dict[str, int]  # listener requests by outcome: here, redirect, unavailable
    refused: dict[int, int]  # requests answered with an error, by status
    bytes_by_mount: dict[str, int]  # audio bytes written to listeners
    slow_listeners_dropped: int
    sources_opened: int
    sources_failed: int
    sources_active: int
    sources_repiped: int
    sources_overflowed: int
    sources_stalled: int
    connections: int
    hls_sessions: dict[str, int] = field(default_factory=dict)  # HLS players, by mount
    hls_bytes_by_mount: dict[str, int] = field(default_factory=dict)  # segment bytes sent
    hls_held_bytes: int = 0  # segments kept in memory, every mount
    certificate: CertificateStats | None = None  # None: no HTTPS here (yet)
    # Listeners taken over from the previous process: on at the next byte, or after a gap.
    resumed_in_place: int = 0
    resumed_after_gap: int = 0
    # Refused for their client address: over its bound, by kind; and locked out after
    # failed logins (frontdoor/limits.py).
    address_limited: dict[str, int] = field(default_factory=dict)
    locked_out: int = 0
