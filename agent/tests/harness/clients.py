"""Real clients on the wire: a listener that reads audio, and source clients written at the
socket level the way real encoders speak (legacy SOURCE, and PUT with Expect: 100-continue).
"""

from __future__ import annotations

import base64
import http.client
import itertools
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import ParseResult, urlparse

from .media import AudioSample

RESPONSE_HEAD_LIMIT = 16384
STREAM_CHUNK_BYTES = 4096


@dataclass(frozen=True)
class ResponseHead:
    http_version: str
    status: int
    reason: str
    headers: dict[str, str]  # names lower-cased


@dataclass(frozen=True)
class ListenResult:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes
    redirects: tuple[str, ...] = ()  # the Locations followed, in order


MAX_REDIRECTS = 5


def _host(parsed: ParseResult) -> str:
    """The host of an http URL (a URL without one is the test's mistake)."""
    if parsed.hostname is None:
        raise ValueError(f"no host in {parsed.geturl()!r}")
    return parsed.hostname


@dataclass(frozen=True)
class Https:
    """How a test client speaks HTTPS: the CA it trusts, and where the names it is sent
    to are (the test cluster's names resolve nowhere else)."""

    context: ssl.SSLContext
    addresses: dict[str, str]  # host name -> the loopback address it stands for


class _ResolvedHttps(http.client.HTTPSConnection):
    """HTTPS to a name (SNI, certificate check) at the address `https` gives for it."""

    def __init__(self, host: str, port: int, https: Https, timeout: float) -> None:
        super().__init__(host, port, context=https.context, timeout=timeout)
        self.https = https

    def connect(self) -> None:
        address = self.https.addresses.get(self.host, self.host)
        sock = socket.create_connection((address, self.port), self.timeout)
        self.sock = self.https.context.wrap_socket(sock, server_hostname=self.host)


def open_connection(
    parsed: ParseResult, timeout: float, https: Https | None = None
) -> http.client.HTTPConnection:
    if parsed.scheme == "https":
        if https is None:
            raise ValueError(f"{parsed.geturl()}: an https URL needs the test's Https")
        return _ResolvedHttps(_host(parsed), parsed.port or 443, https, timeout)
    return http.client.HTTPConnection(_host(parsed), parsed.port or 80, timeout=timeout)


def listen(
    url: str,
    nbytes: int,
    *,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
    follow_redirects: bool = False,
    method: str = "GET",
    https: Https | None = None,
) -> ListenResult:
    """GET `url` and read up to `nbytes` of the body, or what arrived when `timeout` ends
    (an error status is returned with whatever body it had). With `follow_redirects`, up
    to MAX_REDIRECTS 302s are followed, as a player does."""
    followed: list[str] = []
    for _ in range(MAX_REDIRECTS + 1):
        result = _listen_once(url, nbytes, timeout, headers, method, https)
        if not follow_redirects or result.status not in (301, 302, 307):
            return ListenResult(result.status, result.headers, result.body, tuple(followed))
        url = result.headers["location"]
        followed.append(url)
    raise AssertionError(f"more than {MAX_REDIRECTS} redirects: {followed}")


def _listen_once(  # noqa: PLR0917 - listen()'s options, passed on
    url: str,
    nbytes: int,
    timeout: float,
    headers: dict[str, str] | None,
    method: str,
    https: Https | None,
) -> ListenResult:
    parsed = urlparse(url)
    deadline = time.monotonic() + timeout
    connection = open_connection(parsed, timeout, https)
    target = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    try:
        connection.request(method, target, headers=headers or {})
        # Keep the socket: http.client forgets it once a response says it will close.
        listener_socket = connection.sock
        response = connection.getresponse()
        response_headers = {name.lower(): value for name, value in response.getheaders()}
        body = bytearray()
        while len(body) < nbytes and time.monotonic() < deadline:
            listener_socket.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = response.read1(nbytes - len(body))
            except TimeoutError:
                break
            if not chunk:
                break
            body.extend(chunk)
        return ListenResult(response.status, response_headers, bytes(body))
    finally:
        connection.close()


def parse_response_head(raw: bytes) -> ResponseHead:
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status_text, _, reason = rest.partition(" ")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return ResponseHead(version, int(status_text), reason, headers)


def is_slice_of(received: bytes, sent: bytes) -> bool:
    """True if `received` is a contiguous run of `sent`: the bytes went through untouched."""
    return bool(received) and received in sent


class SourceClient:
    """A source client on a raw socket.

    `method="SOURCE"`: Icecast's legacy protocol, HTTP/1.0, no length, no chunking, no Host
    header (as Liquidsoap 2.1 sends it). `method="PUT"`: HTTP/1.1 with
    `Expect: 100-continue` and no length (as ffmpeg sends it); Icecast answers 100 first
    and the final status once audio flows.
    """

    def __init__(
        self,
        host: str,
        port: int,
        mount: str,
        *,
        password: str,
        username: str = "source",
        method: str = "SOURCE",
        content_type: str = "audio/mpeg",
        source_address: str | None = None,
    ) -> None:
        """`source_address`: the loopback address it connects from (127.0.0.x), for
        bounds the front door keeps per client address."""
        if method not in ("SOURCE", "PUT"):
            raise ValueError(f"method must be SOURCE or PUT, not {method!r}")
        self.host, self.port, self.mount = host, port, mount
        self.credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.method = method
        self.content_type = content_type
        self.source_address = None if source_address is None else (source_address, 0)
        self.bytes_sent = 0
        self.stream_error: OSError | None = None
        self._socket: socket.socket | None = None
        self._buffer = b""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def request_head(self) -> bytes:
        lines = [f"{self.method} {self.mount} HTTP/{'1.1' if self.method == 'PUT' else '1.0'}"]
        if self.method == "PUT":
            lines += [f"Host: {self.host}:{self.port}", "Expect: 100-continue"]
        lines += [
            f"Authorization: Basic {self.credentials}",
            f"Content-Type: {self.content_type}",
            "User-Agent: radio-test-source/1",
            "Ice-Name: harness source",
            "Ice-Public: 0",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def connect(self, timeout: float = 5.0) -> ResponseHead:
        """Open the connection, send the request head and return the first response head
        (100 for PUT, 200 for SOURCE, or the refusal)."""
        self._socket = socket.create_connection(
            (self.host, self.port), timeout=timeout, source_address=self.source_address
        )
        self._socket.sendall(self.request_head())
        return self.read_response_head(timeout)

    def read_response_head(self, timeout: float = 5.0) -> ResponseHead:
        """The next response head on the connection, waiting at most `timeout`."""
        if self._socket is None:
            raise RuntimeError("not connected")
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no response head within {timeout} s: {self._buffer!r}")
            # select, not settimeout: the streaming thread owns the socket's timeout.
            readable, _, _ = select.select([self._socket], [], [], remaining)
            if not readable:
                continue
            chunk = self._socket.recv(4096)
            if not chunk:
                raise ConnectionError(f"connection closed; received so far: {self._buffer!r}")
            self._buffer += chunk
            if len(self._buffer) > RESPONSE_HEAD_LIMIT:
                raise ConnectionError("response head too long")
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        return parse_response_head(head)

    def closed_by_peer(self) -> bool:
        """Whether the other end closed the connection (end of stream or reset); does not
        block, and leaves unread data where it is."""
        if self._socket is None:
            return True
        readable, _, _ = select.select([self._socket], [], [], 0)
        if not readable:
            return False
        try:
            return self._socket.recv(4096, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def send(self, data: bytes, timeout: float = 5.0) -> None:
        """Send `data` now (a caller that paces the audio itself); OSError if the
        connection is gone."""
        if self._socket is None:
            raise ConnectionError("not connected")
        self._socket.settimeout(timeout)
        self._socket.sendall(data)
        self.bytes_sent += len(data)

    def start_streaming(
        self,
        audio: bytes,
        bytes_per_second: float,
        *,
        burst_seconds: float = 2.0,
    ) -> None:
        """Send `audio` once in the background, the first `burst_seconds` at once (as an
        encoder's buffer does) and the rest at `bytes_per_second`. It ends by itself when
        the audio is sent, on a socket error, or on `stop()`."""
        if self._socket is None:
            raise RuntimeError("connect first")
        self._thread = threading.Thread(
            target=self._stream,
            args=(self._socket, audio, bytes_per_second, burst_seconds),
            name=f"source {self.mount}",
            daemon=True,
        )
        self._thread.start()

    def _stream(
        self,
        connection: socket.socket,
        audio: bytes,
        bytes_per_second: float,
        burst_seconds: float,
    ) -> None:
        started = time.monotonic()
        burst_bytes = int(bytes_per_second * burst_seconds)
        try:
            connection.settimeout(5.0)
            while self.bytes_sent < len(audio) and not self._stop.is_set():
                due = started + max(0, self.bytes_sent - burst_bytes) / bytes_per_second
                # Pacing, not waiting for a condition: an encoder sends in real time.
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                chunk = audio[self.bytes_sent : self.bytes_sent + STREAM_CHUNK_BYTES]
                connection.sendall(chunk)
                self.bytes_sent += len(chunk)
        except OSError as error:
            self.stream_error = error

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
            self._socket = None


# What Icecast answers first: SOURCE is accepted at once, PUT is told to go on.
FIRST_STATUS_BY_METHOD = {"SOURCE": 200, "PUT": 100}


def connect_and_stream(source: SourceClient, audio: AudioSample) -> SourceClient:
    """Connect the source client, check Icecast's answers, and start streaming `audio`."""
    first = source.connect()
    assert first.status == FIRST_STATUS_BY_METHOD[source.method], first
    source.start_streaming(audio.data, audio.bytes_per_second)
    if source.method == "PUT":
        # The final answer comes on the same connection once audio flows.
        final = source.read_response_head(timeout=5)
        assert final.status == 200, final
    return source


class StreamRecorder:
    """A listener that keeps reading in the background and notes when bytes arrive, to
    measure gaps and drops across a failover. It stops by itself after `max_seconds`."""

    def __init__(
        self,
        url: str,
        *,
        max_seconds: float = 120.0,
        headers: dict[str, str] | None = None,
        https: Https | None = None,
        read_timeout: float = 5.0,
    ) -> None:
        """`read_timeout`: how long without a byte ends it (a player's patience)."""
        self.url = url
        self.read_timeout = read_timeout
        self.https = https
        self.headers = headers or {}
        self.max_seconds = max_seconds
        self.status: int | None = None
        self.headers_received: dict[str, str] = {}  # the final response's, lower-case names
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, bytes)
        self.body = bytearray()
        self.ended_at: float | None = None
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"listener {url}", daemon=True)

    def start(self) -> StreamRecorder:
        self._thread.start()
        return self

    def _run(self) -> None:
        parsed = urlparse(self.url)
        deadline = time.monotonic() + self.max_seconds
        connection: http.client.HTTPConnection | None = None
        try:
            for _ in range(MAX_REDIRECTS + 1):
                if connection is not None:
                    connection.close()
                connection = open_connection(parsed, self.read_timeout, self.https)
                connection.request("GET", parsed.path, headers=self.headers)
                response = connection.getresponse()
                if response.status != 302:
                    break
                parsed = urlparse(response.getheader("location", ""))
            self.status = response.status
            self.headers_received = {name.lower(): value for name, value in response.getheaders()}
            while not self._stop.is_set() and time.monotonic() < deadline:
                chunk = response.read1(16384)
                if not chunk:
                    break
                self.arrivals.append((time.monotonic(), len(chunk)))
                self.body.extend(chunk)
        except (OSError, http.client.HTTPException) as error:
            self.error = error
        finally:
            self.ended_at = time.monotonic()
            if connection is not None:
                connection.close()

    @property
    def connected(self) -> bool:
        return self._thread.is_alive()

    def bytes_since(self, since: float) -> int:
        return sum(size for at, size in self.arrivals if at >= since)

    def longest_gap(self, since: float, until: float) -> float:
        """Longest time without bytes within [since, until]."""
        times = [since] + [at for at, _ in self.arrivals if since <= at <= until] + [until]
        return max(later - earlier for earlier, later in itertools.pairwise(times))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
