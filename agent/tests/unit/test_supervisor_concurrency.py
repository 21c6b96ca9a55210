"""The cycle's converge and the fence's stop_all run from two tasks: one at a time, and a
converge that waited behind a stop for a cut-off node starts nothing. Real processes
(`sh`, slow to stop like Liquidsoap) stand in for Liquidsoap."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from radioagent.transcoding.script import TranscoderJob
from radioagent.transcoding.supervisor import TranscoderSupervisor

# Stops 0.3 s after SIGTERM, as Liquidsoap takes its time to shut down; no child of its
# own, so nothing of it outlives the test.
SLOW_TO_STOP = (
    "python3",
    "-c",
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.3), sys.exit(0)))\n"
    "time.sleep(30)",
    "liquidsoap",
)
JOBS = {mount: TranscoderJob(mount, "# script", "node1", "pw") for mount in ("a.mp3", "b.mp3")}
BOUND_S = 5.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")


def catches_sigterm(pid: int) -> bool:
    """Its handler is in place (/proc's mask of caught signals has SIGTERM's bit)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


async def running_pids(supervisor: TranscoderSupervisor) -> list[int]:
    """Once every process runs and would take its time to stop."""

    def pids() -> list[int]:
        return [t._process.pid for t in supervisor._transcoders.values() if t._process]

    async with asyncio.timeout(BOUND_S):
        while len(pids()) < len(supervisor._transcoders) or not all(
            catches_sigterm(pid) for pid in pids()
        ):
            await asyncio.sleep(0.02)  # polling a condition, bounded by the timeout
    return pids()


def test_a_stop_all_during_a_converge_that_stops_everything_raises_nothing_and_ends_all(
    tmp_path: Path,
) -> None:
    async def scenario() -> tuple[list[BaseException | None], list[int]]:
        supervisor = TranscoderSupervisor(SLOW_TO_STOP, None, tmp_path)
        await supervisor.converge(JOBS)
        pids = await running_pids(supervisor)
        assert len(pids) == len(JOBS)
        results = await asyncio.gather(
            supervisor.converge({}), supervisor.stop_all(), return_exceptions=True
        )
        assert not supervisor.running_any()
        return list(results), pids

    results, pids = asyncio.run(scenario())
    assert results == [None, None]
    assert [pid for pid in pids if alive(pid)] == []


def test_a_converge_that_waited_behind_a_stop_starts_nothing_once_disallowed(
    tmp_path: Path,
) -> None:
    async def scenario() -> bool:
        supervisor = TranscoderSupervisor(SLOW_TO_STOP, None, tmp_path)
        await supervisor.converge(JOBS)
        await running_pids(supervisor)
        cut_off = False

        async def fence() -> None:
            nonlocal cut_off
            cut_off = True
            await supervisor.stop_all()

        stopping = asyncio.create_task(fence())
        await asyncio.sleep(0)  # the fence takes the supervisor first
        await supervisor.converge(JOBS, allowed=lambda: not cut_off)
        await stopping
        return supervisor.running_any()

    assert asyncio.run(scenario()) is False


def test_an_allowed_converge_runs_its_jobs(tmp_path: Path) -> None:
    async def scenario() -> int:
        supervisor = TranscoderSupervisor(SLOW_TO_STOP, None, tmp_path)
        try:
            await supervisor.converge(JOBS, allowed=lambda: True)
            return len(await running_pids(supervisor))
        finally:
            await supervisor.stop_all()

    assert asyncio.run(scenario()) == len(JOBS)
