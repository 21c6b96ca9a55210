"""The event loop's lag histogram (looplag.py): Prometheus's cumulative buckets."""

from __future__ import annotations

import asyncio
import time

from radioagent.looplag import BUCKETS_S, LagHistogram, measure_forever


def test_lags_fall_in_cumulative_buckets() -> None:
    histogram = LagHistogram()
    for lag in (0.0, 0.0005, 0.001, 0.03, 7.0):
        histogram.add(lag)
    buckets = dict(histogram.cumulative())
    assert len(buckets) == len(BUCKETS_S) + 1
    assert buckets["0.001"] == 3  # an upper bound includes its own value
    assert buckets["0.02"] == 3
    assert buckets["0.05"] == 4
    assert buckets["5.0"] == 4
    assert buckets["+Inf"] == histogram.count == 5
    assert histogram.worst_seconds == 7.0


def test_a_blocked_loop_shows_as_lag() -> None:
    async def block_once() -> LagHistogram:
        histogram = LagHistogram()
        task = asyncio.create_task(measure_forever(histogram))
        await asyncio.sleep(0.15)
        time.sleep(0.3)  # the loop held: the timer due meanwhile fires late
        await asyncio.sleep(0.15)
        task.cancel()
        return histogram

    histogram = asyncio.run(block_once())
    assert histogram.worst_seconds >= 0.15
