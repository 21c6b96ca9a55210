"""When the agent asks for its Icecast's restart (radioagent/icecast/hang.py)."""

from __future__ import annotations

from radioagent.config import IcecastSettings
from radioagent.icecast.hang import RESTART_AGAIN_AFTER_S, restart_due

HUNG_AFTER_S = IcecastSettings.hung_restart_seconds  # the config's default, 15 s


def test_only_a_run_of_timeouts_as_long_as_the_bound_asks_for_a_restart() -> None:
    assert not restart_due(
        None, None, now=1000.0, hung_after=HUNG_AFTER_S
    )  # answering, or refusing
    assert not restart_due(1000.0, None, now=1000.0 + HUNG_AFTER_S - 0.1, hung_after=HUNG_AFTER_S)
    assert restart_due(1000.0, None, now=1000.0 + HUNG_AFTER_S, hung_after=HUNG_AFTER_S)
    assert restart_due(1000.0, None, now=1010.0, hung_after=5.0)


def test_a_restart_is_asked_again_only_after_a_minute_of_still_hanging() -> None:
    since, asked = 1000.0, 1000.0 + HUNG_AFTER_S
    assert not restart_due(since, asked, asked + RESTART_AGAIN_AFTER_S - 0.1, HUNG_AFTER_S)
    assert restart_due(since, asked, asked + RESTART_AGAIN_AFTER_S, HUNG_AFTER_S)
