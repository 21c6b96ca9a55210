"""Where a listener handed over by a restarting agent goes on (frontdoor/handover.py)."""

from __future__ import annotations

import pytest

from radioagent.frontdoor.framing import IcyFramer
from radioagent.frontdoor.handover import (
    MAX_FD_NAME,
    TAIL_BYTES,
    Resume,
    ResumePoint,
    listener_fd_name,
    listening_fd_name,
    parse_listener_fd_name,
)

SLOT = b"\x01" + b"StreamTitle='x';".ljust(16, b"\x00")


def stream(length: int, seed: int = 7) -> bytes:
    """Bytes that do not repeat within `length` (as compressed audio)."""
    state = seed
    out = bytearray()
    for _ in range(length):
        state = (state * 1103515245 + 12345) % 2**31
        out.append(state >> 16 & 0xFF)
    return bytes(out)


def test_a_point_survives_its_name() -> None:
    point = ResumePoint("/live.mp3", True, 12345, bytes(range(TAIL_BYTES)))
    name = listener_fd_name(point)
    assert name is not None
    assert ":" not in name
    assert len(name) <= MAX_FD_NAME
    assert parse_listener_fd_name(name) == point


@pytest.mark.parametrize(
    "name",
    [
        "listen.80.MC4wLjAuMA==",
        "listener.2.0.AAAA.L2E=",
        "listener.1.-3.AAAA.L2E=",
        "listener.1.0.AAAA",
        "listener.1.0.!!!!.L2E=",
        "listener.1.0.AAAA.YQ==",  # a path that does not start with /
        "",
    ],
)
def test_a_name_that_is_not_a_listener_point_is_none(name: str) -> None:
    assert parse_listener_fd_name(name) is None


def test_a_path_too_long_for_a_name_is_not_handed_over() -> None:
    assert listener_fd_name(ResumePoint("/" + "a" * 200, False, 0, b"x" * TAIL_BYTES)) is None


def test_listening_names_differ_by_address_and_port() -> None:
    names = {listening_fd_name(a, p) for a in ("0.0.0.0", "::") for p in (80, 8000)}  # noqa: S104
    assert len(names) == 4
    assert all(":" not in name for name in names)


def test_it_goes_on_right_after_the_last_bytes_sent() -> None:
    audio = stream(6000)
    sent_until = 4000
    resume = Resume(ResumePoint("/a", False, 0, audio[sent_until - TAIL_BYTES : sent_until]))
    got = b"".join(resume.feed(audio[i : i + 700], None, lambda: b"") for i in range(0, 6000, 700))
    assert resume.found
    assert got == audio[sent_until:]


def test_without_its_place_it_waits_then_starts_live_when_given_up() -> None:
    audio = stream(3000)
    resume = Resume(ResumePoint("/a", False, 0, b"\x00" * TAIL_BYTES))
    assert resume.feed(audio[:1000], None, lambda: b"") == b""
    resume.give_up()
    assert resume.feed(audio[1000:], None, lambda: b"") == audio[1000:]
    assert resume.tail == audio[-TAIL_BYTES:]


def test_icy_listeners_keep_their_own_metadata_interval() -> None:
    """A listener 70 bytes into its 100-byte interval gets 30 bytes, a slot, then a slot
    after every 100: read as an ICY client reads, the audio is the upstream's, unbroken."""
    metaint = 100
    audio = stream(1000)
    resume = Resume(ResumePoint("/a", True, 70, audio[200 - TAIL_BYTES : 200]))
    out = b"".join(resume.feed(audio[i : i + 130], metaint, lambda: SLOT) for i in (0, 130, 260))
    assert out[:30] == audio[200:230]
    assert out[30 : 30 + len(SLOT)] == SLOT
    assert out[30 + len(SLOT) : 130 + len(SLOT)] == audio[230:330]
    assert out[130 + len(SLOT) : 130 + 2 * len(SLOT)] == SLOT
    assert resume.phase(metaint) == (390 - 200 - 30) % metaint


def test_a_slot_due_comes_before_more_audio() -> None:
    audio = stream(500)
    resume = Resume(ResumePoint("/a", True, 100, audio[100 - TAIL_BYTES : 100]))
    out = resume.feed(audio, 100, lambda: SLOT)
    assert out.startswith(SLOT + audio[100:200] + SLOT)


def test_the_framer_says_how_far_into_its_interval_it_is() -> None:
    framer = IcyFramer(16)
    assert framer.audio_since_slot == 0
    framer.feed(b"a" * 10)
    assert framer.audio_since_slot == 10
    framer.feed(b"b" * 6)
    assert framer.audio_since_slot == 16  # a slot is due before the next audio
