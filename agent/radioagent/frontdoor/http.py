"""HTTP/1.x request heads and small responses, as bytes. Pure.

Hand-written rather than aiohttp's server because the front door must take over the
connection after the head: a `SOURCE` has neither a length nor chunking, so any HTTP
server library reads its audio as the next request, and listeners are written to
straight from one upstream read per mount. The parser is strict (origin-form targets,
HTTP/1.0 and 1.1, no folded or control-character headers) and bounded in size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

MAX_HEAD_BYTES = 8192
MAX_HEADERS = 64
_METHOD = re.compile(rb"[A-Z][A-Z0-9_-]{0,19}")
_HEADER_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_FORBIDDEN_IN_TARGET = re.compile(rb"[^\x21-\x7e]")
_FORBIDDEN_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")


class HttpError(Exception):
    """A request the front door refuses, with the status and a reason for the client."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    path: str  # percent-decoded, without the query
    query: str  # as sent, without the "?"
    version: str  # "HTTP/1.0" or "HTTP/1.1"
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    raw: bytes  # the head as received, up to and including the blank line

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)

    @property
    def keep_alive(self) -> bool:
        connection = self.header("connection").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


def head_end(buffer: bytes | bytearray) -> int:
    """The length of the head at the start of `buffer` (blank line included), or -1
    while incomplete. Bare LF line ends are accepted: some legacy source clients use them."""
    crlf = buffer.find(b"\r\n\r\n")
    lf = buffer.find(b"\n\n")
    ends = [end + 4 for end in (crlf,) if end >= 0] + [end + 2 for end in (lf,) if end >= 0]
    return min(ends) if ends else -1


def parse_request_head(raw: bytes) -> RequestHead:
    """The head of one request (as delimited by head_end), or HttpError."""
    if len(raw) > MAX_HEAD_BYTES:
        raise HttpError(431, f"request head larger than {MAX_HEAD_BYTES} bytes")
    lines = raw.rstrip(b"\r\n").split(b"\n")
    lines = [line.removesuffix(b"\r") for line in lines]
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if not _METHOD.fullmatch(method):
        raise HttpError(400, "malformed method")
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        if version.startswith(b"HTTP/"):
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are served")
        raise HttpError(400, "malformed request line")
    if not target.startswith(b"/") or len(target) > 1024 or _FORBIDDEN_IN_TARGET.search(target):
        raise HttpError(400, "malformed request target")
    raw_path, _, query = target.partition(b"?")
    try:
        path = unquote(raw_path.decode("ascii"), errors="strict")
    except UnicodeDecodeError as error:
        raise HttpError(400, "path is not UTF-8") from error
    if _FORBIDDEN_IN_PATH.search(path) or ".." in path.split("/"):
        raise HttpError(400, "path not allowed")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header fields")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _HEADER_NAME.fullmatch(name):
            raise HttpError(400, "malformed header field")
        value = value.strip(b" \t")
        if _FORBIDDEN_IN_VALUE.search(value):
            raise HttpError(400, "control character in a header field")
        headers[name.decode("ascii").lower()] = value.decode("latin-1")
    return RequestHead(
        method.decode("ascii"), path, query.decode("ascii"), version.decode("ascii"), headers, raw
    )


def response(
    status: int,
    body: bytes = b"",
    *,
    content_type: str = "text/plain; charset=utf-8",
    headers: tuple[tuple[str, str], ...] = (),
    keep_alive: bool = False,
    head_only: bool = False,
) -> bytes:
    """A complete response with Content-Length (never chunked)."""
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Server: radio-agent",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive" if keep_alive else "Connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def error_response(error: HttpError, *, retry_after: int | None = None) -> bytes:
    headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
    return response(error.status, f"{error.reason}\n".encode(), headers=headers)


def parse_response_head(raw: bytes) -> tuple[int, dict[str, str]]:
    """Status and lower-case headers of a response head (from the local Icecast)."""
    lines = [line.removesuffix(b"\r") for line in raw.rstrip(b"\r\n").split(b"\n")]
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith((b"HTTP/1.", b"ICY")) or not parts[1].isdigit():
        raise HttpError(502, "malformed response")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return int(parts[1]), headers


# What a listener gets from the Icecast answer: the audio type and the station's
# ICY/Icecast description, which players show.
PASSED_STREAM_HEADERS = (  # as listeners get them; looked up in lower case
    "Content-Type",
    "icy-name",
    "icy-description",
    "icy-genre",
    "icy-url",
    "icy-pub",
    "icy-br",
    "icy-sr",
    "ice-audio-info",
)
CORS_HEADERS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Headers", "Icy-MetaData, Range"),
    ("Access-Control-Expose-Headers", "Icy-MetaInt, Icy-Name, Icy-Br, Icy-Description"),
)


def stream_response_head(upstream: dict[str, str], *, icy: bool) -> bytes:
    """The head for a listener of a stream: no length, no chunking, closed at the end
    (HTTP/1.1 allows a body delimited by the close, and players expect Icecast's shape)."""
    lines = ["HTTP/1.1 200 OK", "Server: radio-agent"]
    for name in PASSED_STREAM_HEADERS:
        value = upstream.get(name.lower())
        if value is not None and not _FORBIDDEN_IN_VALUE.search(value.encode("latin-1")):
            lines.append(f"{name}: {value}")
    if icy and upstream.get("icy-metaint", "").isdigit():
        lines.append(f"icy-metaint: {upstream['icy-metaint']}")
    lines += [f"{name}: {value}" for name, value in CORS_HEADERS]
    lines += ["Cache-Control: no-cache, no-store", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
