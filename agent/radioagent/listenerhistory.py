"""Listeners over the last hour, per mount and cluster-wide, kept in each agent's memory
for the status page's charts. Pure: the loop records the totals it reads from etcd, with
the time; a minute keeps its highest count. Restarting an agent forgets its history (the
charts start again), which is all a glance at the last hour needs."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

MINUTES = 60
STEP_SECONDS = 60.0


class ListenerHistory:
    def __init__(self, minutes: int = MINUTES, step: float = STEP_SECONDS) -> None:
        self.minutes = minutes
        self.step = step
        self._points: dict[str, deque[tuple[int, int]]] = {}  # mount -> (minute, listeners)

    def record(self, now: float, totals: Mapping[str, int], mounts: list[str]) -> None:
        """`totals`: listeners by mount now; `mounts`: every mount (a mount gone is
        forgotten, one without listeners counts 0)."""
        minute = int(now // self.step)
        for gone in set(self._points) - set(mounts):
            del self._points[gone]
        for mount in mounts:
            points = self._points.setdefault(mount, deque(maxlen=self.minutes))
            count = totals.get(mount, 0)
            if points and points[-1][0] == minute:
                points[-1] = (minute, max(points[-1][1], count))
            else:
                points.append((minute, count))

    def series(self, mount: str, now: float) -> list[int | None]:
        """The last hour, one value a minute, oldest first; None for a minute not seen."""
        minute = int(now // self.step)
        known = dict(self._points.get(mount, ()))
        return [known.get(at) for at in range(minute - self.minutes + 1, minute + 1)]
