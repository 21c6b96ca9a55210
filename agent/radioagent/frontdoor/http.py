"""HTTP/1.x request heads and small responses, as bytes. Pure.

Hand-written rather than aiohttp's server because the front door must take over the
connection after the head: a `SOURCE` has neither a length nor chunking, so any HTTP
server library reads its audio as the next request, and listeners are written to
straight from one upstream read per mount. The parser is strict (origin-form targets,
HTTP/1.0 and 1.1, no folded or control-character headers) and bounded in size.

It refuses what RFC 9112 says a server must refuse, as h11 does (the unit tests compare
the two on generated heads): differing Content-Length values, Transfer-Encoding it cannot
frame, an HTTP/1.1 request without exactly one Host, whitespace before a header's colon.
Where it refuses more than h11, on purpose (tests/unit/test_front_door_http_h11.py names
each case):
- methods other than 1-20 upper-case letters, digits, "_" or "-" (h11: any token);
- request targets other than origin-form, and paths the front door never serves ("..",
  NUL and other control characters or "\\" once percent-decoded, not UTF-8, over 1024
  bytes);
- versions other than HTTP/1.0 and HTTP/1.1 (h11 parses any HTTP/d.d);
- heads over MAX_HEAD_BYTES, over MAX_HEADERS fields, or with names over 64 bytes;
- folded header lines (obs-fold: RFC 9112 section 5.2 lets a server refuse them; h11
  unfolds them);
- control characters other than HTAB in a field value (RFC 9110 section 5.5: h11
  only refuses NUL, CR, LF, VT and FF);
- Transfer-Encoding together with Content-Length (RFC 9112 section 6.1 lets a server
  refuse it, a request smuggling vector; h11 lets the chunked coding win), and
  Transfer-Encoding in an HTTP/1.0 request (section 6.1: its framing is faulty).
And one way it accepts more, on purpose: `SOURCE ... HTTP/1.1` without Host (see
_needs_host).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

MAX_HEAD_BYTES = 8192
# Encoders send song titles in the query: 1,000 characters percent-encoded need room.
MAX_TARGET_BYTES = 4096
MAX_HEADERS = 64
# Retry-After of a 503: listeners in 2 s; sources sooner, the station is off air meanwhile.
RETRY_AFTER_SECONDS = 2
SOURCE_RETRY_AFTER_SECONDS = 1
_METHOD = re.compile(rb"[A-Z][A-Z0-9_-]{0,19}")
_HEADER_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_FORBIDDEN_IN_TARGET = re.compile(rb"[^\x21-\x7e]")
_FORBIDDEN_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")
_HTTP_VERSION = re.compile(rb"HTTP/[0-9.]+")  # a version we don't serve (505), not garbage (400)
_DECIMAL = re.compile(r"[0-9]+")
_HEAD_END = re.compile(rb"\n\r?\n")
# A well-formed header line in one match (the common case); anything else goes through
# _field's checks one by one, which name what is wrong. Linear: no character of the name
# can be a colon, and the value is one character class.
_WELL_FORMED_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}):([^\x00-\x08\x0a-\x1f\x7f]*)")


class HttpError(Exception):
    """A request the front door refuses, with the status and a reason for the client."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers  # sent with the error (WWW-Authenticate, ...)


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
    while incomplete. Bare LF line ends are accepted (some legacy source clients use them),
    so the head ends at LF, optional CR, LF, as h11 finds it."""
    end = _HEAD_END.search(buffer)
    return end.end() if end else -1


def parse_request_head(raw: bytes) -> RequestHead:
    """The whole head of one request (as delimited by head_end), or HttpError."""
    if len(raw) > MAX_HEAD_BYTES:
        raise HttpError(431, f"request head larger than {MAX_HEAD_BYTES} bytes")
    lines = raw.split(b"\n")
    # The blank line that ends the head, and nothing after it: a CR left on the last field
    # line (b"X: a\r\r\n\r\n") is that field's, not part of the end.
    if len(lines) < 3 or lines[-1] != b"" or lines[-2] not in (b"", b"\r"):
        raise HttpError(400, "malformed request head")
    lines = [line.removesuffix(b"\r") for line in lines[:-2]]
    method, target, version = _request_line(lines[0])
    raw_path, _, query = target.partition(b"?")
    path = _path(raw_path)
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header fields")
    fields = [_field(line) for line in lines[1:]]
    headers = dict(fields)
    # The checks below read every field of a name; most heads have none of theirs.
    content_length = _content_length(fields) if "content-length" in headers else None
    if content_length is not None:
        headers["content-length"] = content_length
    if "transfer-encoding" in headers:
        _check_transfer_encoding(fields, version, content_length is not None)
    _check_host(fields if "host" in headers else [], method, version)
    return RequestHead(
        method.decode("ascii"), path, query.decode("ascii"), version.decode("ascii"), headers, raw
    )


def check_request_line(line: bytes) -> None:
    """HttpError for a request line (LF or CRLF ended) that no head can follow: bytes that
    are not HTTP are refused at once rather than at the head timeout."""
    _, target, _ = _request_line(line.removesuffix(b"\n").removesuffix(b"\r"))
    _path(target.partition(b"?")[0])


def _path(raw_path: bytes) -> str:
    """The percent-decoded path, if the front door could ever serve it."""
    path = raw_path.decode("ascii")  # the request line allows printable ASCII only
    if "%" in path:
        try:
            path = unquote(path, errors="strict")
        except UnicodeDecodeError as error:
            raise HttpError(400, "path is not UTF-8") from error
    if _FORBIDDEN_IN_PATH.search(path) or (".." in path and ".." in path.split("/")):
        raise HttpError(400, "path not allowed")
    return path


def _request_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if not _METHOD.fullmatch(method):
        raise HttpError(400, "malformed method")
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        if _HTTP_VERSION.fullmatch(version):
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are served")
        raise HttpError(400, "malformed request line")
    if (
        not target.startswith(b"/")
        or len(target) > MAX_TARGET_BYTES
        or _FORBIDDEN_IN_TARGET.search(target)
    ):
        raise HttpError(400, "malformed request target")
    return method, target, version


def _field(line: bytes) -> tuple[str, str]:
    """(lower-case name, value) of one header line."""
    well_formed = _WELL_FORMED_FIELD.fullmatch(line)
    if well_formed is not None:
        name, value = well_formed.groups()
        return name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1")
    if line[:1] in (b" ", b"\t"):
        # RFC 9112 section 5.2: a server may refuse obs-fold with 400; one that unfolds it
        # reads a different head than a proxy in front of it might.
        raise HttpError(400, "folded header lines (obs-fold) are not accepted")
    name, colon, value = line.partition(b":")
    if colon and name.rstrip(b" \t") != name:
        # RFC 9112 section 5.1: MUST be refused, it has been used to smuggle requests.
        raise HttpError(400, "whitespace between a header field name and its colon")
    if not colon or not _HEADER_NAME.fullmatch(name):
        raise HttpError(400, "malformed header field")
    value = value.strip(b" \t")
    if _FORBIDDEN_IN_VALUE.search(value):
        raise HttpError(400, "control character in a header field")
    return name.decode("ascii").lower(), value.decode("latin-1")


def _content_length(fields: list[tuple[str, str]]) -> str | None:
    """The one Content-Length of the head (leading zeros dropped), or None.

    RFC 9112 section 6.3: a Content-Length that is not a valid decimal, or several that
    differ, leave the body's length unknown and the request must be refused (before, the
    last one won, while Icecast or a proxy might have read the first). Repeated identical
    values, in one list (`5, 5`) or on several lines, are accepted as one, as RFC 9110
    section 8.6 allows and as h11 does: a client that repeats itself means the same length
    to every reader. "Identical" is as written, like h11: `05` and `5` are refused."""
    values = [value for name, value in fields if name == "content-length"]
    if not values:
        return None
    lengths = {item.strip(" \t") for value in values for item in value.split(",")}
    if not all(_DECIMAL.fullmatch(length) for length in lengths):
        raise HttpError(400, "malformed Content-Length")
    if len(lengths) > 1:
        raise HttpError(400, "conflicting Content-Length values")
    # Not int(): a value of thousands of digits must not raise anything but HttpError.
    return lengths.pop().lstrip("0") or "0"


def _check_transfer_encoding(
    fields: list[tuple[str, str]], version: bytes, has_content_length: bool
) -> None:
    """RFC 9112 section 6.1. Sources may send `Transfer-Encoding: chunked` (Liquidsoap's
    `chunked=true`, HTTP/1.1); nothing else is framed by it."""
    values = [value for name, value in fields if name == "transfer-encoding"]
    if not values:
        return
    if version == b"HTTP/1.0":
        raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
    if has_content_length:
        raise HttpError(400, "both Transfer-Encoding and Content-Length")
    codings = [coding.strip(" \t").lower() for coding in ",".join(values).split(",")]
    if codings == ["chunked"]:
        return
    if codings[-1] != "chunked" or "chunked" in codings[:-1]:
        raise HttpError(400, "chunked must be the last transfer coding, and only once")
    raise HttpError(501, "only the chunked transfer coding is known here")


def _check_host(fields: list[tuple[str, str]], method: bytes, version: bytes) -> None:
    """RFC 9112 section 3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0; it may
    be empty. Its syntax is not checked, as h11 does not: section 3.2 would refuse
    `Host: bad/host`, but the front door only uses a Host that hosts.valid_host finds
    usable (for playlists) and answers others from its own address."""
    hosts = [value for name, value in fields if name == "host"]
    if len(hosts) > 1:
        raise HttpError(400, "more than one Host header field")
    if not hosts and _needs_host(method, version):
        raise HttpError(400, "an HTTP/1.1 request needs a Host header field")


def _needs_host(method: bytes, version: bytes) -> bool:
    """HTTP/1.1 requests need Host, except Icecast's legacy SOURCE: a method outside HTTP's
    own (RFC 9110), from a protocol that never required Host, and ocaml-cry before 0.2.0
    (Liquidsoap 0.9) sends `SOURCE /mount HTTP/1.1` with no Host at all. A source is piped
    to the leader's Icecast, which needs no Host from a source (Liquidsoap 2.1's HTTP/1.0
    SOURCE has none), so accepting it opens no path to a misread request. PUT, HTTP's own
    method, needs Host like any other: ffmpeg and today's ocaml-cry send it (and ffmpeg's
    -legacy_icecast SOURCE is HTTP/1.1 with Host)."""
    return version == b"HTTP/1.1" and method != b"SOURCE"


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
        _status_line(status),
        "Server: radio-agent",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive" if keep_alive else "Connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


@functools.cache
def _status_line(status: int) -> str:
    return f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"


def error_response(error: HttpError, *, retry_after: int | None = None) -> bytes:
    retry = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
    return response(error.status, f"{error.reason}\n".encode(), headers=(*error.headers, *retry))


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


# Icecast asks this way; encoders read a 401 as a wrong password.
AUTHENTICATE = (("WWW-Authenticate", 'Basic realm="Icecast2 Server"'),)


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """The user and password of a Basic `Authorization` header; None if it is not one."""
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None
