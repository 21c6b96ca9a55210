"""A mount's fan-out across an agent restart: the old hub says where its listeners are,
a new hub (another upstream connection, the next process) goes on from there."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from radioagent.frontdoor.fanout import FanoutCounters, FanoutLimits, MountHub
from radioagent.frontdoor.handover import ResumePoint, listener_fd_name, parse_listener_fd_name
from radioagent.frontdoor.http import HttpError
from tests.harness.audio import strip_icy

FRAME_HEADER = bytes.fromhex("fffb9064")  # MPEG-1 layer III, 128 kbps, 44.1 kHz: 417 bytes
FRAME_BYTES = 417
METAINT = 1000
LIMITS = FanoutLimits(prime_seconds=0.01)


def frames(count: int) -> list[bytes]:
    rng = random.Random(5)
    return [FRAME_HEADER + rng.randbytes(FRAME_BYTES - 4) for _ in range(count)]


def with_icy(audio: bytes, metaint: int = METAINT) -> bytes:
    """As Icecast sends it: an empty block after every `metaint` audio bytes."""
    return b"".join(audio[i : i + metaint] + b"\x00" for i in range(0, len(audio), metaint))


def read_icy(data: bytes) -> bytes:
    """The audio, read strictly as an ICY player reads (AssertionError when out of step)."""
    audio, problems = strip_icy(data, METAINT)
    assert not problems
    return audio


def head(icy: bool) -> bytes:
    metaint = f"icy-metaint: {METAINT}\r\n" if icy else ""
    return f"HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\n{metaint}\r\n".encode()


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class FakeListener:
    def __init__(self) -> None:
        self.fake = FakeTransport()
        self.transport: asyncio.Transport = self.fake
        self.hub: MountHub | None = None
        self.failed: HttpError | None = None
        self.sent = 0

    def start_stream(self, data: bytes) -> None:
        self.fake.write(data)

    def fail(self, error: HttpError, retry_after: int | None = None) -> None:
        self.failed = error


def new_hub(icy: bool, stranded: list[Any] | None = None) -> MountHub:
    hub = MountHub(
        "/live.mp3",
        icy,
        LIMITS,
        FanoutCounters(),
        lambda hub: None,
        on_stranded=(stranded if stranded is not None else []).extend,
    )
    hub.connection_made(FakeTransport())
    return hub


async def primed() -> None:
    await asyncio.sleep(LIMITS.prime_seconds * 3)  # the hub's own priming timer runs out


def body_of(listener: FakeListener) -> bytes:
    return bytes(listener.fake.written).partition(b"\r\n\r\n")[2]


def across_a_restart(icy: bool) -> tuple[bytes, bytes, bytes, MountHub]:
    """A listener on one hub, handed over mid-stream to a second hub whose upstream starts
    (its burst) well before that point. The audio it got from each, and the whole."""
    stream = frames(60)
    audio = b"".join(stream)
    wire = with_icy(audio) if icy else audio

    async def scenario() -> tuple[bytes, bytes, MountHub]:
        old = new_hub(icy)
        old.data_received(head(icy) + wire[: 20 * FRAME_BYTES])
        await primed()
        listener = FakeListener()
        old.join(listener)
        old.data_received(wire[20 * FRAME_BYTES : 30 * FRAME_BYTES + 123])
        [(point, handed)] = old.hand_over()
        assert handed == [listener]
        before = body_of(listener)

        new = new_hub(icy)
        successor = FakeListener()  # the same socket, in the next process
        new.resume(successor, point)
        # Icecast counts each new connection's metadata interval from its first byte.
        burst = audio[10 * FRAME_BYTES :]
        new.data_received(head(icy) + (with_icy(burst) if icy else burst))
        await primed()
        return before, bytes(successor.fake.written), new

    before, after, new = asyncio.run(scenario())
    if icy:
        return read_icy(before + after), b"", audio, new
    return before, after, audio, new


def test_a_plain_listener_goes_on_right_where_it_was() -> None:
    before, after, audio, new = across_a_restart(icy=False)
    assert after  # it got audio from the new upstream
    assert before + after in audio  # no gap, no repeat
    assert new.counters.resumed_in_place == 1


def test_an_icy_listener_keeps_its_metadata_interval_and_its_place() -> None:
    heard, _, audio, new = across_a_restart(icy=True)
    assert len(heard) > 35 * FRAME_BYTES  # more than the old hub sent
    assert heard in audio
    assert new.counters.resumed_in_place == 1


def test_a_place_not_in_the_burst_starts_live_after_priming() -> None:
    async def scenario() -> tuple[FakeListener, MountHub]:
        hub = new_hub(icy=False)
        listener = FakeListener()
        hub.resume(listener, ResumePoint("/live.mp3", False, 0, b"\x01" * 32))
        stream = frames(20)
        hub.data_received(head(False) + b"".join(stream[:10]))
        await primed()
        hub.data_received(b"".join(stream[10:]))
        return listener, hub

    listener, hub = asyncio.run(scenario())
    assert listener.fake.written.startswith(FRAME_HEADER)  # live, from a frame
    assert not listener.fake.closed
    assert hub.counters.resumed_with_gap == 1


def test_listeners_handed_over_wait_when_the_mount_is_not_served_yet() -> None:
    """A leader that stopped: its Icecast serves the mount again only once the new agent
    leads. The hub fails; its handed-over listeners are given back, not hung up on."""
    stranded: list[Any] = []

    async def scenario() -> FakeListener:
        hub = new_hub(icy=False, stranded=stranded)
        listener = FakeListener()
        point = ResumePoint("/live.mp3", False, 0, b"\x01" * 32)
        hub.resume(listener, point)
        hub.data_received(b"HTTP/1.0 404 Not Found\r\n\r\n")
        return listener

    listener = asyncio.run(scenario())
    assert [handed for _, handed in stranded] == [[listener]]
    assert not listener.fake.closed
    assert listener.failed is None


def test_an_ogg_stream_hands_no_listener_over() -> None:
    async def scenario() -> list[Any]:
        hub = MountHub("/live.ogg", False, LIMITS, FanoutCounters(), lambda hub: None)
        hub.connection_made(FakeTransport())
        hub.data_received(b"HTTP/1.0 200 OK\r\nContent-Type: application/ogg\r\n\r\n")
        hub.join(FakeListener())
        return hub.hand_over()

    assert asyncio.run(scenario()) == []


def test_a_resumed_listener_whose_upstream_ends_is_given_back_where_it_is() -> None:
    """The node had led: its Icecast's stream ends again when the new agent makes it relay
    the new leader. The listener is not hung up on; it goes back with its new place."""
    stranded: list[Any] = []

    async def scenario() -> tuple[FakeListener, bytes]:
        hub = new_hub(icy=False, stranded=stranded)
        listener = FakeListener()
        audio = b"".join(frames(20))
        hub.resume(listener, ResumePoint("/live.mp3", False, 0, audio[2000:2032]))
        hub.data_received(head(False) + audio)
        await primed()
        hub.connection_lost(None)
        return listener, bytes(listener.fake.written)

    listener, got = asyncio.run(scenario())
    [(point, handed)] = stranded
    assert handed == [listener]
    assert not listener.fake.closed
    assert got
    assert point.tail == got[-32:]


def test_a_listener_answered_but_not_started_is_handed_over_to_start_live() -> None:
    async def scenario() -> tuple[FakeListener, list[Any]]:
        hub = new_hub(icy=True)
        listener = FakeListener()
        hub.join(listener)
        hub.data_received(head(True))  # answered; no audio yet
        return listener, hub.hand_over()

    listener, handed = asyncio.run(scenario())
    assert handed == [(ResumePoint("/live.mp3", True, 0, b""), [listener])]
    name = listener_fd_name(handed[0][0])
    assert name is not None
    assert parse_listener_fd_name(name) == handed[0][0]
