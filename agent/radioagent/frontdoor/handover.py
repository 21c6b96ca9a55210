"""An agent restart that drops no listener: where each listener is, and how it goes on. Pure.

The stopping agent leaves its listeners' sockets in systemd's file descriptor store, under
a name that says where they are in their mount's stream (the store keeps names, not
state, and names survive a crash of the next process as well). The next agent takes them
back and writes on from that point: the new upstream's first seconds (Icecast's burst)
hold the audio the old one sent last, found by its last bytes, so a listener hears no gap
and no repeat when the restart is shorter than the burst (4 s at 128 kbps), and the live
audio with a gap otherwise. ICY listeners keep their metadata interval: their own
count of audio bytes goes on, with a slot wherever it falls.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass

LISTENER_PREFIX = "listener"
LISTENING_PREFIX = "listen"
TAIL_BYTES = 32  # enough to be found once in a few seconds of compressed audio
MAX_FD_NAME = 255  # systemd's limit on a stored descriptor's name


@dataclass(frozen=True)
class ResumePoint:
    path: str  # the Icecast path
    icy: bool
    phase: int  # audio bytes the listener got since its last ICY slot (0 without ICY)
    tail: bytes  # the last audio bytes it got


def listener_fd_name(point: ResumePoint) -> str | None:
    """The store's name for listeners at `point`; None when it does not fit a name.
    systemd takes printable ASCII but ':' (its separator), hence base64's URL alphabet."""
    name = ".".join(
        (
            LISTENER_PREFIX,
            "1" if point.icy else "0",
            str(point.phase),
            _encode(point.tail),
            _encode(point.path.encode()),
        )
    )
    return name if len(name) <= MAX_FD_NAME else None


def parse_listener_fd_name(name: str) -> ResumePoint | None:
    parts = name.split(".")
    if len(parts) != 5 or parts[0] != LISTENER_PREFIX or parts[1] not in ("0", "1"):
        return None
    if not parts[2].isdigit():
        return None
    try:
        tail, path = _decode(parts[3]), _decode(parts[4]).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    if not path.startswith("/"):
        return None
    return ResumePoint(path, parts[1] == "1", int(parts[2]), tail)


def listening_fd_name(bind_address: str, port: int) -> str:
    """The store's name for a listening socket: a changed address or port does not match."""
    return f"{LISTENING_PREFIX}.{port}.{_encode(bind_address.encode())}"


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), altchars=b"-_", validate=True)


class Resume:
    """Where listeners handed over from the last process go on in the new upstream.

    Until their last bytes are found in the new upstream's audio, they get nothing; after
    that, what follows them. `give_up` (the burst came without them: the restart took
    longer than it holds) starts them at the next audio."""

    def __init__(self, point: ResumePoint) -> None:
        self.point = point
        self.found = False
        self.gave_up = False
        self.tail = point.tail  # the last audio they got, for a handover of our own
        self._seen = bytearray()  # audio searched so far (its end only)
        self._until_slot = point.phase  # turned into bytes left once the interval is known

    @property
    def started(self) -> bool:
        return self.found or self.gave_up

    def phase(self, metaint: int | None) -> int:
        return 0 if metaint is None else metaint - self._left(metaint)

    def give_up(self) -> None:
        if not self.found:
            self.gave_up = True

    def feed(self, audio: bytes, metaint: int | None, slot: Callable[[], bytes]) -> bytes:
        """What the listeners get of the upstream's next `audio` (ICY slots put in)."""
        if not self.started:
            audio = self._search(audio)
            if not self.found:
                return b""
        if not audio:
            return b""
        self.tail = (self.tail + audio[-TAIL_BYTES:])[-TAIL_BYTES:]
        return audio if metaint is None else self._with_slots(audio, metaint, slot)

    def _search(self, audio: bytes) -> bytes:
        tail = self.point.tail
        seen = self._seen
        seen += audio
        at = seen.find(tail) if tail else -1
        if at < 0:
            del seen[: max(0, len(seen) - len(tail) + 1)]
            return b""
        self.found = True
        rest = bytes(seen[at + len(tail) :])
        seen.clear()
        return rest

    def _left(self, metaint: int) -> int:
        """Audio bytes before the listeners' next slot."""
        return metaint - min(self._until_slot, metaint)

    def _with_slots(self, audio: bytes, metaint: int, slot: Callable[[], bytes]) -> bytes:
        out = bytearray()
        left = self._left(metaint)
        position = 0
        while position < len(audio):
            if left == 0:
                out += slot()
                left = metaint
            taken = min(left, len(audio) - position)
            out += audio[position : position + taken]
            left -= taken
            position += taken
        self._until_slot = metaint - left
        return bytes(out)
