"""Bounded waiting for a condition: tests wait for what they need, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ConditionTimeout(AssertionError):
    """The awaited condition did not hold in time; the message says what was awaited."""


class StopWaiting(AssertionError):
    """Raised by a condition that can never become true (the process it waits for died)."""


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    explain: Callable[[], str] | None = None,
) -> T:
    """Call `condition` until it returns a truthy value; return that value (never None,
    which is falsy: a condition may answer "not yet" with None).

    Exceptions from `condition` count as "not yet" (a service that is still starting refuses
    connections); the last one is reported if time runs out, with `explain()` (say, a
    service's log tail) appended. StopWaiting ends the wait.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = condition()
        except StopWaiting:
            raise
        except Exception as error:
            last_error = error
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            if explain is not None:
                detail += f"\n{explain()}"
            raise ConditionTimeout(f"timed out after {timeout:.1f} s waiting for {what}{detail}")
        time.sleep(interval)
