"""How late the agent's event loop runs its callbacks: a timer due every PERIOD_S, and how
long after its time it fired. A loop busy with many clients shows here before anything
else does (the lease keepalive and the listeners share it)."""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass, field

PERIOD_S = 0.1
# Upper bounds in seconds (Prometheus buckets); the keepalive's own slack is seconds.
BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass
class LagHistogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))  # +Inf last
    total_seconds: float = 0.0
    worst_seconds: float = 0.0

    def add(self, lag: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS_S, lag)] += 1
        self.total_seconds += lag
        self.worst_seconds = max(self.worst_seconds, lag)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus's buckets: (upper bound, observations at or under it)."""
        running = 0
        buckets = []
        for bound, count in zip((*map(str, BUCKETS_S), "+Inf"), self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets


async def measure_forever(histogram: LagHistogram) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + PERIOD_S
        await asyncio.sleep(PERIOD_S)
        histogram.add(max(0.0, loop.time() - due))
