"""Listeners sent to each node since its last status report: the predictive part of
utilization. State without I/O (the clocks are injected): the front door records sends,
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
# A report counts a listener sent at least this long before the report's counts were
# read: a redirected player connects well within it, and NTP-synchronised clocks differ
# by far less. A send closer to the count stays predicted (counted twice for a moment,
# the safe side) until a later report or the window.
SEND_TO_ARRIVAL_SECONDS = 1.0


@dataclass(slots=True)
class _Batch:
    first: float  # when its first send was
    last: float  # when its last send was: the batch counts until `window` after it
    count: int


class SentSinceReport:
    """A send counts until a report of the node that counted its listeners after it
    (which includes the listener if it connected) or until `window` seconds pass (a
    report that did not change, e.g. the listener never arrived)."""

    def __init__(
        self,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self.clock = clock
        self.wall_clock = wall_clock  # the reports' counted_at is the node's wall clock
        self._batches: dict[str, deque[_Batch]] = {}
        self._counted: dict[str, int] = {}  # the sum of each node's batches
        self._reports: dict[str, object] = {}

    def on_report(self, node: str, report: object, counted_at: float | None) -> None:
        """A new report counts the listeners sent well before its count was read
        (`counted_at`, wall clock): those are forgotten, later ones still count. A report
        made before a burst of sends must not forget the burst. Without `counted_at`
        (an agent from before it was reported), every send is forgotten."""
        if self._reports.get(node) == report:
            return
        self._reports[node] = report
        batches = self._batches.get(node)
        if not batches:
            return
        if counted_at is None:
            self._batches.pop(node)
            self._counted.pop(node)
            return
        # The count's moment on this node's monotonic clock, less the margin.
        counted_before = self.clock() - (self.wall_clock() - counted_at) - SEND_TO_ARRIVAL_SECONDS
        while batches and batches[0].last <= counted_before:
            self._counted[node] -= batches.popleft().count

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
