"""This node's outgoing bandwidth, from the front door's byte counter."""

from __future__ import annotations

from collections.abc import Callable


class BandwidthMeter:
    """Outgoing kbit/s from a byte counter, measured between two loops."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.kbps = 0.0
        self._last: tuple[float, int] | None = None

    def measure(self, total_bytes: int) -> None:
        now = self.clock()
        if self._last is not None and now > self._last[0]:
            self.kbps = (total_bytes - self._last[1]) * 8 / 1000 / (now - self._last[0])
        self._last = (now, total_bytes)
