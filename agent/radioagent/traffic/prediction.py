"""Listeners sent to each node since its last status report: the predictive part of
utilization. State without I/O (the clock is injected): the front door records sends,
the loop records reports."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


def report_window(loop_wait: float) -> float:
    """How long a send counts at most: a sent listener shows in its node's report within
    about two loops."""
    return 2 * loop_wait + 2


# Sends within this many seconds of each other are kept as one batch: memory stays a few
# batches per node whatever the rate (one timestamp per listener was 4 MB at 34,000
# redirects/s), and a send counts at most this much longer than `window`.
BATCH_SECONDS = 0.1


@dataclass(slots=True)
class _Batch:
    first: float  # when its first send was
    last: float  # when its last send was: the batch counts until `window` after it
    count: int


class SentSinceReport:
    """A send counts until the node's next report (which includes the listener if it
    connected) or until `window` seconds pass (a report that did not change, e.g. the
    listener never arrived)."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._batches: dict[str, deque[_Batch]] = {}
        self._counted: dict[str, int] = {}  # the sum of each node's batches
        self._reports: dict[str, object] = {}

    def on_report(self, node: str, report: object) -> None:
        """A new report already counts the listeners sent before it: start over."""
        if self._reports.get(node) != report:
            self._reports[node] = report
            self._batches.pop(node, None)
            self._counted.pop(node, None)

    def on_sent(self, node: str) -> None:
        now = self.clock()
        batches = self._batches.setdefault(node, deque())
        if batches and now - batches[-1].first < BATCH_SECONDS:
            batches[-1].last = now
            batches[-1].count += 1
        else:
            batches.append(_Batch(now, now, 1))
        self._counted[node] = self._counted.get(node, 0) + 1

    def sent(self, node: str) -> int:
        batches = self._batches.get(node)
        if not batches:
            return 0
        oldest_counted = self.clock() - self.window
        while batches and batches[0].last <= oldest_counted:
            self._counted[node] -= batches.popleft().count
        return self._counted[node]
