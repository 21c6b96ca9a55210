"""Listeners sent to each node since its last status report: the predictive part of
utilization. State without I/O (the clock is injected): the front door records sends,
the loop records reports."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


def report_window(loop_wait: float) -> float:
    """How long a send counts at most: a sent listener shows in its node's report within
    about two loops."""
    return 2 * loop_wait + 2


class SentSinceReport:
    """A send counts until the node's next report (which includes the listener if it
    connected) or until `window` seconds pass (a report that did not change, e.g. the
    listener never arrived)."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._reports: dict[str, object] = {}

    def on_report(self, node: str, report: object) -> None:
        """A new report already counts the listeners sent before it: start over."""
        if self._reports.get(node) != report:
            self._reports[node] = report
            self._sent.pop(node, None)

    def on_sent(self, node: str) -> None:
        self._sent.setdefault(node, deque()).append(self.clock())

    def sent(self, node: str) -> int:
        times = self._sent.get(node)
        if not times:
            return 0
        oldest_counted = self.clock() - self.window
        while times and times[0] <= oldest_counted:
            times.popleft()
        return len(times)
