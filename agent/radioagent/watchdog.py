"""systemd's watchdog (the unit's WatchdogSec): the agent says it is alive only while its
loop makes progress, so a hung agent is killed and started again by systemd.

Fed from a task on the agent's event loop: a blocked event loop feeds nothing; a cycle
stuck on an await (a call that never returns) stops the feeding after STUCK_CYCLE_SECONDS.
A slow etcd (its calls time out, the cycle goes on) is not stuck: a restart would drop
every listener of the node for nothing, so the bound is generous.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from systemd import daemon

log = logging.getLogger(__name__)
STUCK_CYCLE_SECONDS = 60.0


def feeding_interval(environment: dict[str, str]) -> float | None:
    """How often to feed systemd's watchdog: a third of its timeout (WATCHDOG_USEC, set
    by systemd for this very process), or None when there is no watchdog to feed."""
    usec = environment.get("WATCHDOG_USEC", "")
    pid = environment.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / 3


def loop_alive(seconds_since_cycle: float) -> bool:
    return seconds_since_cycle <= STUCK_CYCLE_SECONDS


def notify(message: str) -> None:
    """To systemd, if it listens (NOTIFY_SOCKET); a no-op otherwise."""
    daemon.notify(message)


async def feed_forever(interval: float, seconds_since_cycle: Callable[[], float]) -> None:
    stuck = False
    while True:
        since = seconds_since_cycle()
        if loop_alive(since):
            notify("WATCHDOG=1")
            stuck = False
        elif not stuck:
            log.error("the loop made no progress for %.0f s: no longer feeding the watchdog", since)
            stuck = True
        await asyncio.sleep(interval)  # the feeding period, not a wait for a condition
