"""Where a listener of a mount goes: served here, redirected to a node, or told to come
back later. The policy engine over the cluster state, with predictive counts. No I/O:
the clock and the random source are injected."""

from __future__ import annotations

import contextlib
import ipaddress
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from radioagent.model import MountSpec, NodeStatus
from radioagent.settings import ClusterSettings
from radioagent.traffic.policy import (
    NodeLoad,
    Policy,
    Request,
    always_eligible,
    choose_node,
    parse_policy,
)
from radioagent.traffic.prediction import SentSinceReport


class Outcome(Enum):
    HERE = "here"  # this node serves it (passthrough)
    REDIRECT = "redirect"
    UNAVAILABLE = "unavailable"  # no eligible node: 503 with Retry-After


@dataclass(frozen=True)
class Direction:
    outcome: Outcome
    node: NodeStatus | None = None
    reason: str = ""


def address_families(address: str) -> frozenset[int]:
    """The IP families a listener can reach `address` with; a host name may have both."""
    try:
        return frozenset({ipaddress.ip_address(address).version})
    except ValueError:
        return frozenset({4, 6})


def node_load(status: NodeStatus, draining: bool) -> NodeLoad:
    """`draining` comes from the drain keys, not the node's report, which lags one loop
    (an undrained single node would answer 503 until its next loop)."""
    return NodeLoad(
        name=status.name,
        ip_families=address_families(status.listener_address),
        icecast_up=status.icecast_up,
        draining=draining,
        mounts=frozenset(status.mounts),
        listeners=sum(status.listeners.values()),
        listener_limit=status.listener_limit,
        bandwidth_kbps=status.bandwidth_kbps,
        bandwidth_limit_kbps=status.bandwidth_limit_kbps,
        https=bool(status.tls_ports),
    )


class Director:
    def __init__(
        self,
        node_name: str,
        prediction_window: float,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_name = node_name
        self.sent = SentSinceReport(prediction_window, clock, wall_clock)
        self.directed: Counter[str] = Counter()  # requests by outcome (Outcome values)
        self.rng = rng or random.Random()  # noqa: S311 - load spreading, not security
        self._nodes: dict[str, NodeStatus] = {}
        self._loads: list[NodeLoad] = []
        self._policy: Policy = parse_policy(ClusterSettings().policy)
        self._settings = ClusterSettings()
        self._user_agents: tuple[str, ...] = ()
        # Each node's load with what was sent to it since its report, as last made: on the
        # redirect path, only the node a listener just went to has a new count.
        self._with_sent: dict[str, NodeLoad] = {}
        # What does not change between two views, per kind of request (mount, bitrate, IP
        # family, TLS, served here only): the request and the nodes that could take it
        # before counting anything sent. Remade on update; a few entries per mount.
        self._candidates: dict[tuple[str, int, int, bool, bool], _Candidates] = {}
        self._directions: dict[str, Direction] = {}

    def update(
        self, nodes: dict[str, NodeStatus], draining: frozenset[str], settings: ClusterSettings
    ) -> None:
        """A fresh view of the cluster (every loop). Settings were validated on write; a
        policy that still fails to parse keeps the previous one."""
        self._nodes = dict(nodes)
        self._loads = [node_load(status, name in draining) for name, status in nodes.items()]
        self._with_sent = {}
        self._candidates = {}
        self._directions = {}
        for name, status in nodes.items():
            self.sent.on_report(name, status.without_count_time(), status.counted_at)
        if settings.policy != self._settings.policy:
            with contextlib.suppress(ValueError):
                self._policy = parse_policy(settings.policy)
        self._settings = settings
        self._user_agents = tuple(agent.lower() for agent in settings.no_redirect_user_agents)

    def _load_with_sent(self, load: NodeLoad) -> NodeLoad:
        sent = self.sent.sent(load.name)
        made = self._with_sent.get(load.name)
        if made is None or made.sent_since_report != sent:
            made = self._with_sent[load.name] = load.with_sent(sent)
        return made

    def serves_without_redirect(self, user_agent: str) -> bool:
        """The cluster proxies everything, or this client is known not to follow redirects
        (a case-insensitive substring of its User-Agent)."""
        if self._settings.proxy_everything:
            return True
        agent = user_agent.lower()
        return any(pattern in agent for pattern in self._user_agents)

    def direct(
        self,
        mount: MountSpec,
        client_family: int,
        user_agent: str,
        *,
        listens: bool = True,
        tls: bool = False,
    ) -> Direction:
        """`listens`: False for a HEAD request, which never becomes a listener and so is
        not counted as sent; `tls`: it came over HTTPS, and stays on HTTPS. Every request
        is counted in `directed` by its outcome."""
        bitrate = mount.format.bitrate_kbps
        only_here = self.serves_without_redirect(user_agent)
        key = (mount.name, bitrate, client_family, tls, only_here)
        candidates = self._candidates.get(key)
        if candidates is None:
            candidates = self._candidates[key] = self._candidates_for(
                Request(mount.name, client_family, float(bitrate), tls), only_here
            )
        loads = [self._load_with_sent(load) for load in candidates.loads]
        chosen = choose_node(self._policy, loads, candidates.request, self.rng)
        if chosen is None:
            self.directed[Outcome.UNAVAILABLE.value] += 1
            return UNAVAILABLE
        if listens:
            self.sent.on_sent(chosen)
        direction = self._directions.get(chosen)
        if direction is None:
            outcome = Outcome.HERE if chosen == self.node_name else Outcome.REDIRECT
            direction = self._directions[chosen] = Direction(outcome, self._nodes[chosen])
        self.directed[direction.outcome.value] += 1
        return direction

    def _candidates_for(self, request: Request, only_here: bool) -> _Candidates:
        loads = [
            load
            for load in self._loads
            if always_eligible(load, request) and (load.name == self.node_name or not only_here)
        ]
        return _Candidates(request, loads)


@dataclass(frozen=True)
class _Candidates:
    request: Request
    loads: list[NodeLoad]


UNAVAILABLE = Direction(Outcome.UNAVAILABLE, reason="no node can take a listener now")
