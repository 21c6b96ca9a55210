"""Feeding systemd's watchdog: how often, and only while the loop makes progress."""

from __future__ import annotations

import os

from radioagent.watchdog import STUCK_CYCLE_SECONDS, feeding_interval, loop_alive


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
