"""A transcoder's Liquidsoap that keeps failing is counted, so its node gives the claim
up (transcoding/assignment.py); one that ran long enough starts the count again."""

from __future__ import annotations

import asyncio

import pytest

from radioagent.transcoding import supervisor
from radioagent.transcoding.script import TranscoderJob
from radioagent.transcoding.state import TranscoderState
from radioagent.transcoding.supervisor import Transcoder

JOB = TranscoderJob("low.mp3", "# script", "source", "pw")


async def cannot_start(job: TranscoderJob) -> asyncio.subprocess.Process:
    raise OSError(f"no liquidsoap for {job.mount}")


async def exits_at_once(job: TranscoderJob) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec("false", stdout=asyncio.subprocess.PIPE)


async def counted(launch: supervisor.Launch, until: int) -> TranscoderState:
    """Run a transcoder until it has restarted `until` times (at most 5 s)."""
    transcoder = Transcoder(JOB, launch)
    transcoder.start()
    try:
        async with asyncio.timeout(5):
            while transcoder.state.restarts < until:
                await asyncio.sleep(0.01)
    finally:
        await transcoder.stop()
    return transcoder.state


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_FIRST_S", 0.01)
    monkeypatch.setattr(supervisor, "BACKOFF_MAX_S", 0.01)


def test_a_liquidsoap_that_cannot_start_counts_each_failure() -> None:
    assert asyncio.run(counted(cannot_start, until=3)).failures >= 3


def test_a_liquidsoap_that_exits_at_once_counts_each_failure() -> None:
    state = asyncio.run(counted(exits_at_once, until=3))
    assert state.failures >= 3
    assert not state.running


def test_a_run_that_lasted_starts_the_count_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "STABLE_AFTER_S", 0.0)  # every run counts as stable
    assert asyncio.run(counted(exits_at_once, until=3)).failures == 0
