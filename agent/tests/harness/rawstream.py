"""A player's stream request, read raw on a thread of its own: what the listeners that
keep bytes (the testbed's RecordingListener) and those that read titles (TitleListener)
share. HTTP/1.0, no redirect followed: point it at a node's /_stream/<mount>."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable


class RawStream:
    """GET `path` from `host`:`port`, with `Icy-MetaData: 1` when `icy`; every piece read
    goes to `on_piece` (on the reading thread) until `halt()`, the server closes, or
    `seconds` pass. `ended` says why it ended before that, if it did."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        *,
        icy: bool,
        user_agent: str,
        seconds: float,
        on_piece: Callable[[bytes], None],
    ) -> None:
        self.ended: str | None = None
        self._on_piece = on_piece
        self._halted = threading.Event()
        self._socket = socket.create_connection((host, port), timeout=5)
        icy_header = "Icy-MetaData: 1\r\n" if icy else ""
        self._socket.sendall(
            f"GET {path} HTTP/1.0\r\nUser-Agent: {user_agent}\r\n{icy_header}\r\n".encode()
        )
        self._thread = threading.Thread(target=self._read, args=(seconds,), daemon=True)
        self._thread.start()

    def _read(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        self._socket.settimeout(0.2)  # how soon a halt is seen
        try:
            while not self._halted.is_set() and time.monotonic() < deadline:
                try:
                    piece = self._socket.recv(65536)
                except TimeoutError:
                    continue
                if not piece:
                    self.ended = "the node closed the connection"
                    return
                self._on_piece(piece)
        except OSError as error:
            self.ended = str(error)
        finally:
            self._socket.close()

    def halt(self) -> None:
        """Stop reading soon; callable from `on_piece` too."""
        self._halted.set()

    def stop(self) -> None:
        """Stop reading and wait for the thread (not from `on_piece`)."""
        self._halted.set()
        self._thread.join(timeout=5)
