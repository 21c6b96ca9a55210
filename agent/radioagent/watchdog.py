"""systemd's watchdog (the unit's WatchdogSec): the agent says it is alive only while its
loop makes progress, so a hung agent is killed and started again by systemd.

Fed from a task on the agent's event loop: a blocked event loop feeds nothing; a cycle
stuck on an await (a call that never returns) stops the feeding after STUCK_CYCLE_SECONDS.
A slow etcd (its calls time out, the cycle goes on) is not stuck: a restart would drop
every listener of the node for nothing, so the bound is generous.

The watchdog is also the fence of a frozen agent (SIGSTOP, a VM paused): its Liquidsoaps
run on without it, and once its lease expires another node claims their mounts. So the
timeout follows the cluster's timing (WATCHDOG_USEC, sent at run time): systemd kills the
frozen unit, Liquidsoaps included, before the lease can expire.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from systemd import daemon

from radioagent.config import Timing, keepalive_interval

log = logging.getLogger(__name__)
STUCK_CYCLE_SECONDS = 60.0
# From the watchdog's timeout to the unit's last process gone: the unit's TimeoutAbortSec
# (2 s, after the SIGABRT a frozen process cannot act on), plus a second of slack.
KILL_SECONDS = 3.0
MIN_WATCHDOG_SECONDS = 3.0
FEEDS_PER_TIMEOUT = 3


def watchdog_seconds(timing: Timing, configured: float) -> float:
    """The lease is renewed every keepalive interval, so it outlives a freeze by at least
    ttl less that: the watchdog must fire and the kill finish within it. Only ever
    shorter than the unit's own WatchdogSec (`configured`); never under a floor that a
    busy but healthy loop keeps (below it, with a very short ttl, the bound does not
    hold, and the agent says so)."""
    fitting = timing.ttl - keepalive_interval(timing) - KILL_SECONDS
    return min(configured, max(MIN_WATCHDOG_SECONDS, fitting))


def watchdog_fits(timing: Timing, seconds: float) -> bool:
    """Whether a watchdog of `seconds` kills a frozen agent before its lease expires."""
    return seconds + KILL_SECONDS <= timing.ttl - keepalive_interval(timing)


def feeding_interval(environment: dict[str, str]) -> float | None:
    """How often to feed systemd's watchdog: a third of its timeout (WATCHDOG_USEC, set
    by systemd for this very process), or None when there is no watchdog to feed."""
    usec = environment.get("WATCHDOG_USEC", "")
    pid = environment.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / FEEDS_PER_TIMEOUT


def loop_alive(seconds_since_cycle: float) -> bool:
    return seconds_since_cycle <= STUCK_CYCLE_SECONDS


def notify(message: str) -> None:
    """To systemd, if it listens (NOTIFY_SOCKET); a no-op otherwise."""
    daemon.notify(message)


async def feed_forever(
    interval: float,
    seconds_since_cycle: Callable[[], float],
    timing: Callable[[], Timing],
) -> None:
    """Feed every `interval` while the loop makes progress; when the cluster's timing
    asks for another timeout, tell systemd (WATCHDOG_USEC) and feed at its pace."""
    stuck = False
    configured = timeout = interval * FEEDS_PER_TIMEOUT
    while True:
        now_timing = timing()
        wanted = watchdog_seconds(now_timing, configured)
        if wanted != timeout:
            notify(f"WATCHDOG_USEC={round(wanted * 1e6)}")
            timeout, interval = wanted, wanted / FEEDS_PER_TIMEOUT
            if watchdog_fits(now_timing, wanted):
                log.info("watchdog timeout %g s (the lease outlives a freeze by more)", wanted)
            else:
                log.warning(
                    "watchdog timeout %g s: with ttl %g s a frozen agent's lease may expire "
                    "before the watchdog kills it (its Liquidsoaps could run beside another's)",
                    wanted,
                    now_timing.ttl,
                )
        since = seconds_since_cycle()
        if loop_alive(since):
            notify("WATCHDOG=1")
            stuck = False
        elif not stuck:
            log.error("the loop made no progress for %.0f s: no longer feeding the watchdog", since)
            stuck = True
        await asyncio.sleep(interval)  # the feeding period, not a wait for a condition
