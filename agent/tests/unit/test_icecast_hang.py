"""When the agent asks for its Icecast's restart (radioagent/icecast/hang.py)."""

from __future__ import annotations

from radioagent.icecast.hang import HUNG_AFTER_S, RESTART_AGAIN_AFTER_S, restart_due


def test_only_a_run_of_timeouts_as_long_as_the_bound_asks_for_a_restart() -> None:
    assert not restart_due(None, None, now=1000.0)  # answering, or refusing
    assert not restart_due(1000.0, None, now=1000.0 + HUNG_AFTER_S - 0.1)
    assert restart_due(1000.0, None, now=1000.0 + HUNG_AFTER_S)
    assert restart_due(1000.0, None, now=1010.0, hung_after=5.0)


def test_a_restart_is_asked_again_only_after_a_minute_of_still_hanging() -> None:
    since, asked = 1000.0, 1000.0 + HUNG_AFTER_S
    assert not restart_due(since, asked, now=asked + RESTART_AGAIN_AFTER_S - 0.1)
    assert restart_due(since, asked, now=asked + RESTART_AGAIN_AFTER_S)
