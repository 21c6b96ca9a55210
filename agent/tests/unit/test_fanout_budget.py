"""Listeners that stop reading cost bounded memory: each its write_limit, and once the
node's listeners have queue_budget queued in all, each only the tight limit."""

from __future__ import annotations

import asyncio

from radioagent.frontdoor.fanout import FanoutCounters, FanoutLimits, MountHub
from tests.unit.test_fanout_handover import FakeListener, FakeTransport, frames, head

LIMITS = FanoutLimits(
    prime_seconds=0.01, write_limit=10_000, queue_budget=15_000, tight_write_limit=3_000
)


class BackedUp(FakeTransport):
    """A listener's transport with `backlog` bytes still queued (it stopped reading)."""

    def __init__(self, backlog: int) -> None:
        super().__init__()
        self.backlog = backlog

    def get_write_buffer_size(self) -> int:
        return self.backlog


def listener_with(backlog: int) -> FakeListener:
    listener = FakeListener()
    listener.fake = BackedUp(backlog)
    listener.transport = listener.fake
    return listener


def run(backlogs: list[int], chunks: int) -> tuple[list[bool], FanoutCounters]:
    """Listeners with those backlogs on one hub, then `chunks` pieces of audio: which
    listeners are still connected."""

    async def scenario() -> tuple[list[bool], FanoutCounters]:
        counters = FanoutCounters()
        hub = MountHub("/live.mp3", False, LIMITS, counters, lambda hub: None)
        hub.connection_made(FakeTransport())
        audio = frames(20 * (chunks + 1))
        hub.data_received(head(False) + b"".join(audio[:20]))
        await asyncio.sleep(LIMITS.prime_seconds * 3)
        listeners = [listener_with(backlog) for backlog in backlogs]
        for listener in listeners:
            hub.join(listener)
        for index in range(1, chunks + 1):
            hub.data_received(b"".join(audio[20 * index : 20 * (index + 1)]))
        return [not listener.fake.closed for listener in listeners], counters

    return asyncio.run(scenario())


def test_under_the_budget_each_listener_may_queue_its_write_limit() -> None:
    connected, counters = run([0, 8_000], chunks=3)
    assert connected == [True, True]
    assert counters.queued_bytes == 8_000
    assert counters.slow_listeners_dropped == 0


def test_past_its_write_limit_a_listener_is_cut() -> None:
    connected, counters = run([0, 12_000], chunks=2)
    assert connected == [True, False]
    assert counters.slow_listeners_dropped == 1


def test_over_the_budget_listeners_past_the_tight_limit_are_cut_and_the_others_kept() -> None:
    connected, counters = run([0, 2_000, 8_000, 8_000], chunks=3)
    assert connected == [True, True, False, False]
    assert counters.slow_listeners_dropped == 2
    assert counters.queued_bytes == 2_000  # back under the budget
