"""A hung Icecast is restarted, a stopped one is not: the agent tells them apart on the
wire (reads that time out, against connections refused) and asks for a restart through
the file systemd's icecast2-restart.path watches on a node (tested on machines by
bench/chaos's icecast_hang)."""

from __future__ import annotations

import time

import pytest

from tests.harness.agents import ICECAST_HUNG_RESTART_S, RadioCluster
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

# The agent reads its Icecast's stats every loop_wait (1 s here), each read timing out
# after 2 s: a hang is noticed within 3 s, then asked about after ICECAST_HUNG_RESTART_S.
NOTICED_WITHIN_S = 3 + 2.0


def test_a_hung_icecast_gets_one_restart_asked_and_a_stopped_one_none(
    radio_cluster: RadioCluster,
) -> None:
    hung, stopped, _ = radio_cluster.nodes
    stopped.icecast.process.kill()
    hung.icecast.process.pause()  # keeps its port and answers nothing: a deadlock's look
    try:
        paused_at = time.monotonic()
        asked = wait_for(
            hung.restart_request_file.exists,
            timeout=ICECAST_HUNG_RESTART_S + NOTICED_WITHIN_S + 5,
            what=f"{hung.name}'s agent to ask for its Icecast's restart",
        )
        assert asked
        waited = time.monotonic() - paused_at
        assert waited >= ICECAST_HUNG_RESTART_S, f"asked after {waited:.1f} s only"
        assert hung.metric("radio_icecast_restarts_asked_total") == 1
        # The stopped one refused every read for as long: no restart is asked for it.
        assert stopped.metric("radio_icecast_restarts_asked_total") == 0
        assert not stopped.restart_request_file.exists()
    finally:
        hung.icecast.process.resume()
