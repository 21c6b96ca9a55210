"""Feeding systemd's watchdog: how often, and only while the loop makes progress."""

from __future__ import annotations

import os

from radioagent.config import Timing, keepalive_interval
from radioagent.watchdog import (
    KILL_SECONDS,
    MIN_WATCHDOG_SECONDS,
    STUCK_CYCLE_SECONDS,
    feeding_interval,
    loop_alive,
    watchdog_fits,
    watchdog_seconds,
)


def test_the_watchdog_is_fed_three_times_per_timeout() -> None:
    assert feeding_interval({"WATCHDOG_USEC": "30000000"}) == 10.0
    assert feeding_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 10


def test_no_watchdog_no_feeding() -> None:
    assert feeding_interval({}) is None
    assert feeding_interval({"WATCHDOG_USEC": "0"}) is None
    assert feeding_interval({"WATCHDOG_USEC": "soon"}) is None
    # Meant for another process (a parent that did not unset it).
    assert feeding_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None


def test_a_loop_is_stuck_only_after_a_generous_bound() -> None:
    """A slow etcd makes slow cycles, not a stuck loop: a restart would drop listeners."""
    assert loop_alive(0.0)
    assert loop_alive(STUCK_CYCLE_SECONDS)
    assert not loop_alive(STUCK_CYCLE_SECONDS + 0.1)
    assert STUCK_CYCLE_SECONDS >= 60


def test_the_watchdog_kills_a_frozen_agent_before_its_lease_can_expire() -> None:
    """Renewed every keepalive interval (retry_timeout / 4), the lease outlives a freeze
    by ttl less that at least; the watchdog's timeout plus the kill fit in that."""
    for timing in (
        Timing(),
        Timing(ttl=8, loop_wait=1, retry_timeout=3),
        Timing(ttl=10, loop_wait=0.5, retry_timeout=4.75),  # renewal slower than a loop
        Timing(ttl=30),
    ):
        seconds = watchdog_seconds(timing, configured=30.0)
        assert seconds + KILL_SECONDS <= timing.ttl - keepalive_interval(timing)
        assert watchdog_fits(timing, seconds)
    assert watchdog_seconds(Timing(), configured=9.0) == 4.25  # 8 - 0.75 - 3, the defaults
    slower = Timing(ttl=15, loop_wait=3, retry_timeout=6)
    assert watchdog_seconds(slower, configured=9.0) == 9.0  # the unit's
    assert watchdog_seconds(slower, configured=30.0) == 10.5  # 15 - 1.5 - 3
    assert watchdog_seconds(Timing(ttl=30), configured=9.0) == 9.0  # never longer
    tiny = Timing(ttl=4, loop_wait=1, retry_timeout=1.5)
    assert watchdog_seconds(tiny, configured=30.0) == MIN_WATCHDOG_SECONDS
    assert not watchdog_fits(tiny, MIN_WATCHDOG_SECONDS)  # said in the log
