"""bench/chaos's pure part: which faults a campaign runs, what each fault's record holds,
and the summary (JSON and a Markdown table) made from the records."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Violation:
    at_s: float  # since the campaign started
    kind: str
    detail: str


@dataclass
class FaultRecord:
    number: int
    kind: str
    victim: str
    started_s: float
    healed_s: float | None = None
    recovered_s: float | None = None  # from the heal until everything is heard again
    violations: list[Violation] = field(default_factory=list)
    # The longest a listener on a node the fault did not touch went without a byte.
    listener_gap_s: float = 0.0
    # The longest no node answered /leader (took sources), from a stretch's first sample
    # without one to the first with one: what a leader's loss costs studios.
    leaderless_s: float = 0.0
    leader: str = ""  # the radio leader when the fault struck
    studios: dict[str, str] = field(default_factory=dict)  # mount -> the node it came through


@dataclass
class Stretch:
    """How long a condition has held without a break, sample after sample."""

    since: float | None = None

    def observe(self, holds: bool, now: float) -> float:
        """The stretch's length as of this sample: from its first sample to this one, the
        first that ends it included (0 when no stretch runs or ends here)."""
        since = self.since
        if holds:
            self.since = now if since is None else since
            return round(now - self.since, 2)
        self.since = None
        return 0.0 if since is None else round(now - since, 2)


def schedule(kinds: Sequence[str], count: int, rng: random.Random) -> list[str]:
    """`count` fault kinds: every kind once in a shuffled round, then random ones, so a
    short campaign still meets each kind."""
    first_round = list(kinds)
    rng.shuffle(first_round)
    more = [rng.choice(list(kinds)) for _ in range(max(0, count - len(first_round)))]
    return (first_round + more)[:count]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (the smallest value with `fraction` of them at or below
    it); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summarise(records: Sequence[FaultRecord], between: FaultRecord, seed: int, nodes: int) -> dict:
    """The campaign's JSON: the required fields first, then each fault's record."""
    kinds: dict[str, list[FaultRecord]] = {}
    for record in records:
        kinds.setdefault(record.kind, []).append(record)
    recoveries = [r.recovered_s for r in records if r.recovered_s is not None]
    violations = [v for r in [*records, between] for v in r.violations]
    return {
        "seed": seed,
        "nodes": nodes,
        "faults": len(records),
        "faults_by_kind": {kind: len(found) for kind, found in sorted(kinds.items())},
        "violations": len(violations),
        "violations_by_kind": _count(v.kind for v in violations),
        "recovery_p50_s": _rounded(statistics.median(recoveries) if recoveries else None),
        "recovery_p95_s": _rounded(percentile(recoveries, 0.95)),
        "recovery_max_s": _rounded(max(recoveries, default=None)),
        "unrecovered": sum(1 for r in records if r.recovered_s is None),
        "per_kind": {kind: _kind_row(found) for kind, found in sorted(kinds.items())},
        "history": [asdict(record) for record in [*records, between]],
    }


def _kind_row(records: Sequence[FaultRecord]) -> dict:
    recoveries = [r.recovered_s for r in records if r.recovered_s is not None]
    return {
        "count": len(records),
        "violations": sum(len(r.violations) for r in records),
        "recovery_p50_s": _rounded(statistics.median(recoveries) if recoveries else None),
        "recovery_p95_s": _rounded(percentile(recoveries, 0.95)),
        "recovery_max_s": _rounded(max(recoveries, default=None)),
        "unrecovered": len(records) - len(recoveries),
        "listener_gap_max_s": max(r.listener_gap_s for r in records),
        "leaderless_max_s": max(r.leaderless_s for r in records),
    }


def _count(kinds: Iterable[str]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for kind in kinds:
        counted[kind] = counted.get(kind, 0) + 1
    return dict(sorted(counted.items()))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def table(summary: dict) -> str:
    """The per-kind table, as Markdown."""
    lines = [
        "| fault | count | violations | recovery p50 (s) | p95 (s) | max (s) | unrecovered "
        "| longest listener gap (s) | longest without a leader (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, row in summary["per_kind"].items():
        cells = [row[k] for k in ("count", "violations", "recovery_p50_s", "recovery_p95_s")]
        cells += [row["recovery_max_s"], row["unrecovered"], row["listener_gap_max_s"]]
        cells += [row["leaderless_max_s"]]
        lines.append(
            f"| {kind} | " + " | ".join("-" if c is None else str(c) for c in cells) + " |"
        )
    return "\n".join(lines)


DOC_TITLE = "# Reliability: the fault campaign"


def doc_with_section(existing: str, nodes: int, section: str) -> str:
    """docs/reliability.md with the campaign on `nodes` machines replaced by `section`
    (a `## <nodes> machines` heading and its text); the other sizes' sections stay, in
    order of size. A document without sections (the first campaign's) is replaced."""
    sections: dict[int, str] = {}
    for part in existing.split("\n## ")[1:]:
        heading, _, _ = part.partition("\n")
        count = heading.split(" ")[0]
        if count.isdigit():
            sections[int(count)] = "## " + part.strip() + "\n"
    sections[nodes] = f"## {nodes} machines\n\n{section.strip()}\n"
    return DOC_TITLE + "\n\n" + "\n".join(sections[size] for size in sorted(sections))
