"""Listeners that read the titles a stream carries, as players do: ICY metadata blocks
(MP3, AAC) or Ogg comment headers (Vorbis, Opus) at each new chained stream.

Each reads on a thread of its own, bounded in time, and records when each title arrived;
an ICY stream out of step (a length byte where audio should be) is recorded as a problem.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from .rawstream import RawStream
from .waiting import wait_for

STREAM_TITLE = re.compile(rb"StreamTitle='(.*?)';", re.DOTALL)
COMMENT_MAGICS = (b"\x03vorbis", b"OpusTags")


@dataclass(frozen=True)
class Heard:
    title: str
    at: float  # time.monotonic() when it arrived


class TitleListener:
    """GET `url` (no redirects: point it at a node's /_stream/<mount>) and read titles."""

    def __init__(self, url: str, *, icy: bool = True, max_seconds: float = 90.0) -> None:
        self.url = url
        self.icy = icy
        self.heard: list[Heard] = []
        self.problems: list[str] = []
        self.headers: dict[str, str] = {}
        self.bytes_read = 0
        self._buffer = bytearray()
        parsed = urlparse(url)
        self._stream = RawStream(
            parsed.hostname or "",
            parsed.port or 80,
            parsed.path,
            icy=icy,
            user_agent="title-listener",
            seconds=max_seconds,
            on_piece=self._take,
        )

    def _take(self, piece: bytes) -> None:
        self.bytes_read += len(piece)
        self._buffer += piece
        if not self.headers:
            self._buffer = self._read_head(self._buffer)
            if not self.headers:
                return
        self._buffer = self._read_titles(self._buffer)

    def _read_head(self, buffer: bytearray) -> bytearray:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return buffer
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        self.headers = {"status": lines[0].split(" ")[1]}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        return buffer[end + 4 :]

    def _read_titles(self, buffer: bytearray) -> bytearray:
        if self.icy:
            return self._read_icy(buffer)
        return self._read_ogg(buffer)

    def _read_icy(self, buffer: bytearray) -> bytearray:
        metaint = int(self.headers.get("icy-metaint", "0"))
        if metaint <= 0:
            self.problems.append("no icy-metaint in the answer")
            self._stream.halt()
            return buffer
        while len(buffer) > metaint:
            length = buffer[metaint] * 16
            if len(buffer) < metaint + 1 + length:
                break
            block = bytes(buffer[metaint + 1 : metaint + 1 + length])
            del buffer[: metaint + 1 + length]
            if not length:
                continue
            found = STREAM_TITLE.match(block)
            if found is None:
                self.problems.append(f"a metadata block out of step: {block[:40]!r}")
                self._stream.halt()
                return buffer
            self._note(found.group(1).decode("utf-8", errors="replace"))
        return buffer

    def _read_ogg(self, buffer: bytearray) -> bytearray:
        while True:
            start = buffer.find(b"OggS")
            if start < 0 or len(buffer) < start + 27:
                return buffer
            segments = buffer[start + 26]
            if len(buffer) < start + 27 + segments:
                return buffer
            body_length = sum(buffer[start + 27 : start + 27 + segments])
            end = start + 27 + segments + body_length
            if len(buffer) < end:
                return buffer
            body = bytes(buffer[start + 27 + segments : end])
            del buffer[:end]
            for magic in COMMENT_MAGICS:
                if body.startswith(magic):
                    title = _comment_title(body[len(magic) :])
                    if title is not None:
                        self._note(title)

    def _note(self, title: str) -> None:
        if not self.heard or self.heard[-1].title != title:
            self.heard.append(Heard(title, time.monotonic()))

    @property
    def current(self) -> str | None:
        return self.heard[-1].title if self.heard else None

    def wait_title(self, title: str, timeout: float) -> float:
        """When `title` arrived (monotonic time); AssertionError after `timeout`."""

        def arrival() -> float | None:
            for heard in self.heard:
                if heard.title == title:
                    return heard.at
            return None

        wait_for(
            lambda: arrival() is not None,
            timeout=timeout,
            what=f"title {title!r} at {self.url}",
            explain=lambda: f"heard {[h.title for h in self.heard]}, problems {self.problems}",
        )
        arrived = arrival()
        assert arrived is not None
        return arrived

    def wait_current(self, title: str, timeout: float) -> None:
        """Until `title` is the last title heard; AssertionError after `timeout`."""
        wait_for(
            lambda: self.current == title,
            timeout=timeout,
            what=f"title {title!r} as the current one at {self.url}",
            explain=lambda: f"heard {[h.title for h in self.heard]}, problems {self.problems}",
        )

    def close(self) -> None:
        self._stream.stop()


def _comment_title(packet: bytes) -> str | None:
    """The title in a Vorbis comment structure (vendor, then length-prefixed comments)."""
    try:
        vendor_length = int.from_bytes(packet[0:4], "little")
        position = 4 + vendor_length
        count = int.from_bytes(packet[position : position + 4], "little")
        position += 4
        for _ in range(min(count, 64)):
            length = int.from_bytes(packet[position : position + 4], "little")
            comment = packet[position + 4 : position + 4 + length].decode("utf-8")
            position += 4 + length
            name, _, value = comment.partition("=")
            if name.lower() == "title":
                return value
    except (UnicodeDecodeError, ValueError):
        return None
    return None
