"""The load-balancing policy engine, autoradio-compatible. Pure.

A policy string lists filters, then scorers, then one choice:
`listeners_available,listeners_score,weighted`. Filters always applied first: Icecast up,
serves the mount, same IP family as the client, not draining.

Utilization is predictive: listeners sent to a node since its last report count as if it
already had them, so a burst spreads instead of piling onto the node that looked
emptiest a second ago.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from radioagent.settings import policy_problems
from radioagent.validation import ValidationError


@dataclass(frozen=True)
class NodeLoad:
    """What the engine knows about a node: its last report plus what was sent since."""

    name: str
    ip_families: frozenset[int]  # 4 and/or 6: what its public address serves
    icecast_up: bool
    draining: bool
    mounts: frozenset[str]
    listeners: int
    listener_limit: int | None
    bandwidth_kbps: float
    bandwidth_limit_kbps: int | None
    sent_since_report: int = 0
    https: bool = False  # it serves HTTPS (under its https_name, which the config requires)

    def with_sent(self, sent: int) -> NodeLoad:
        """This load with `sent` listeners sent since its report. On every listener's
        request, so made by copying the fields: dataclasses.replace runs __init__ again
        over each of them, a tenth of a redirect's time."""
        made = object.__new__(NodeLoad)
        made.__dict__.update(self.__dict__, sent_since_report=sent)
        return made

    @property
    def predicted_listeners(self) -> int:
        return self.listeners + self.sent_since_report

    def predicted_kbps(self, stream_kbps: float) -> float:
        return self.bandwidth_kbps + self.sent_since_report * stream_kbps


@dataclass(frozen=True)
class Request:
    mount: str
    ip_family: int
    stream_kbps: float  # what one more listener of this mount costs
    tls: bool = False  # it came over HTTPS: it may only go where HTTPS is


Filter = Callable[[NodeLoad, Request], bool]
Scorer = Callable[[NodeLoad, Request], float]


def _listeners_available(node: NodeLoad, request: Request) -> bool:
    return node.listener_limit is None or node.predicted_listeners < node.listener_limit


def _bandwidth_available(node: NodeLoad, request: Request) -> bool:
    return node.bandwidth_limit_kbps is None or (
        node.predicted_kbps(request.stream_kbps) + request.stream_kbps <= node.bandwidth_limit_kbps
    )


def _utilization_score(used: float, limit: float | None) -> float:
    """1 for an idle node, falling toward 0 as it fills; without a limit, 1/(1+used)."""
    if limit is None or limit <= 0:
        return 1.0 / (1.0 + used)
    return max(0.0, 1.0 - used / limit)


def _listeners_score(node: NodeLoad, request: Request) -> float:
    return _utilization_score(node.predicted_listeners, node.listener_limit)


def _bandwidth_score(node: NodeLoad, request: Request) -> float:
    return _utilization_score(node.predicted_kbps(request.stream_kbps), node.bandwidth_limit_kbps)


FILTERS: dict[str, Filter] = {
    "listeners_available": _listeners_available,
    "bandwidth_available": _bandwidth_available,
}
SCORERS: dict[str, Scorer] = {
    "listeners_score": _listeners_score,
    "bandwidth_score": _bandwidth_score,
}


def always_eligible(node: NodeLoad, request: Request) -> bool:
    return (
        node.icecast_up
        and not node.draining
        and request.mount in node.mounts
        and request.ip_family in node.ip_families
        and (node.https or not request.tls)
    )


@dataclass(frozen=True)
class Policy:
    filters: tuple[str, ...]
    scorers: tuple[str, ...]
    choice: str


def parse_policy(text: str) -> Policy:
    problems = policy_problems(text)
    if problems:
        raise ValidationError(problems)
    parts = [part.strip() for part in text.split(",")]
    return Policy(
        tuple(part for part in parts if part in FILTERS),
        tuple(part for part in parts if part in SCORERS),
        parts[-1],
    )


def ranked_nodes(policy: Policy, nodes: Sequence[NodeLoad]) -> list[NodeLoad]:
    """The nodes that take listeners of any mount now, best score first (ties by name):
    the order a DNS answer gives them in. Filters and scorers as for one listener of
    no particular mount, costing nothing."""
    request = Request(mount="", ip_family=0, stream_kbps=0.0)
    eligible = [
        node
        for node in nodes
        if node.icecast_up
        and not node.draining
        and all(FILTERS[name](node, request) for name in policy.filters)
    ]

    def score(node: NodeLoad) -> float:
        product = 1.0
        for name in policy.scorers:
            product *= SCORERS[name](node, request)
        return product

    return sorted(eligible, key=lambda node: (-score(node), node.name))


def choose_node(
    policy: Policy, nodes: Sequence[NodeLoad], request: Request, rng: random.Random
) -> str | None:
    """The node for this listener, or None when no node is eligible (the caller answers
    503 with Retry-After)."""
    eligible = [
        node
        for node in nodes
        if always_eligible(node, request)
        and all(FILTERS[name](node, request) for name in policy.filters)
    ]
    if len(eligible) <= 1:
        return eligible[0].name if eligible else None
    if policy.choice == "random":
        return rng.choice(eligible).name
    scores = []
    for node in eligible:
        score = 1.0
        for name in policy.scorers:
            score *= SCORERS[name](node, request)
        scores.append(score)
    if policy.choice == "best":
        best = max(scores)
        return min(node.name for node, score in zip(eligible, scores, strict=True) if score == best)
    # weighted: in proportion to the score; all-zero scores (every node full) fall back
    # to an even spread among the eligible.
    if sum(scores) <= 0:
        return rng.choice(eligible).name
    return rng.choices(eligible, weights=scores, k=1)[0].name
