"""Song titles from encoders, as they send them to Icecast. Pure: a request head and the
mounts in, the update to make or the error to answer out.

- Icecast's `GET /admin/metadata?mount=/<m>&mode=updinfo&song=<title>` (or `artist=` and
  `title=`, shown as "artist - title"), with the mount's source credentials as Basic
  auth, and `charset=` naming the title's encoding.
- SHOUTcast v1's `GET /admin.cgi?mode=updinfo&song=<title>&pass=<password>`. It names no
  mount (a SHOUTcast server has one): the mount is `mount=` when given, else the one
  mount whose source password it is.

Without `charset=`, Icecast passes the bytes on as they came and reads them as Latin-1;
encoders today mostly send UTF-8 without saying so. So: UTF-8 when the bytes are valid
UTF-8, else Latin-1 (every byte string is valid Latin-1, so Latin-1 titles still work).
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from radioagent.frontdoor.http import AUTHENTICATE, HttpError, RequestHead, basic_credentials
from radioagent.model import MountSpec, credentials_match, password_matches
from radioagent.nowplaying import title_problem

ICECAST_PATHS = frozenset({"/admin/metadata", "/admin/metadata.xsl"})
SHOUTCAST_PATH = "/admin.cgi"
TITLE_PATHS = ICECAST_PATHS | {SHOUTCAST_PATH}


@dataclass(frozen=True)
class TitleUpdate:
    mount: str
    title: str
    shoutcast: bool  # answered the way SHOUTcast's admin.cgi answers (HTML, not XML)


def title_update(head: RequestHead, mounts: Mapping[str, MountSpec]) -> TitleUpdate | HttpError:
    """The update `head` asks for, or the error to answer it with (nothing changes)."""
    try:
        parameters = _parameters(head.query)
        if parameters.get("mode") != b"updinfo":
            mode = parameters.get("mode")
            raise HttpError(400, "missing parameter mode" if mode is None else "no such action")
        if head.path == SHOUTCAST_PATH:
            mount = _shoutcast_mount(parameters, mounts)
            song = parameters.get("song")
            if song is None:
                raise HttpError(400, "missing parameter song")
            return TitleUpdate(mount.name, _text(song, None), shoutcast=True)
        mount = _icecast_mount(head, parameters, mounts)
        return TitleUpdate(mount.name, _icecast_title(parameters), shoutcast=False)
    except HttpError as error:
        return error


def _parameters(query: str) -> dict[str, bytes]:
    """The query's parameters, values as the bytes sent (percent- and '+'-decoded)."""
    try:
        pairs = parse_qsl(
            query, keep_blank_values=True, strict_parsing=bool(query), encoding="latin-1"
        )
    except ValueError as error:
        raise HttpError(400, "malformed query string") from error
    parameters: dict[str, bytes] = {}
    for name, value in pairs:
        if name in parameters:
            raise HttpError(400, f"parameter {name} given twice")
        parameters[name] = value.encode("latin-1")
    return parameters


def _icecast_mount(
    head: RequestHead, parameters: Mapping[str, bytes], mounts: Mapping[str, MountSpec]
) -> MountSpec:
    given = parameters.get("mount")
    if given is None:
        raise HttpError(400, "missing parameter mount")
    mount = mounts.get(given.decode("latin-1").removeprefix("/"))
    credentials = basic_credentials(head.header("authorization"))
    if credentials is None:
        raise HttpError(401, "authentication required", AUTHENTICATE)
    if mount is None:
        raise HttpError(404, "no such mount")
    user, password = credentials
    if not credentials_match(mount, user, password):
        raise HttpError(401, "wrong credentials for this mount", AUTHENTICATE)
    return mount


def _shoutcast_mount(parameters: Mapping[str, bytes], mounts: Mapping[str, MountSpec]) -> MountSpec:
    password = parameters.get("pass")
    if password is None:
        raise HttpError(400, "missing parameter pass")
    secret = password.decode("latin-1")
    given = parameters.get("mount")
    if given is not None:
        mount = mounts.get(given.decode("latin-1").removeprefix("/"))
        if mount is None:
            raise HttpError(404, "no such mount")
        if not password_matches(mount, secret):
            raise HttpError(401, "wrong password for this mount")
        return mount
    # Every mount is compared (no early exit): the timing tells nothing about which.
    matching = [mount for mount in mounts.values() if password_matches(mount, secret)]
    if not matching:
        raise HttpError(401, "no mount has this password")
    if len(matching) > 1:
        raise HttpError(400, "several mounts have this password: add mount=/<mount>")
    return matching[0]


def _icecast_title(parameters: Mapping[str, bytes]) -> str:
    charset = parameters.get("charset")
    encoding = None if charset is None else charset.decode("latin-1")
    song = parameters.get("song")
    if song is not None:
        return _text(song, encoding)
    artist, title = parameters.get("artist"), parameters.get("title")
    if artist is None or title is None:
        raise HttpError(400, "missing parameter song (or artist and title)")
    return _checked(f"{_decoded(artist, encoding)} - {_decoded(title, encoding)}")


def _text(raw: bytes, encoding: str | None) -> str:
    return _checked(_decoded(raw, encoding))


def _decoded(raw: bytes, encoding: str | None) -> str:
    if encoding is None:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    try:
        if not codecs.lookup(encoding)._is_text_encoding:
            raise LookupError(encoding)
    except LookupError as error:
        raise HttpError(400, f"unknown charset {encoding!r}") from error
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise HttpError(400, f"the title is not valid {encoding}") from error


def _checked(text: str) -> str:
    problem = title_problem(text)
    if problem is not None:
        raise HttpError(400, problem)
    return text


def title_stored_reply(update: TitleUpdate) -> tuple[bytes, str]:
    """The body and type of the answer to a stored update, as Icecast words it (encoders
    check the status; some log the message)."""
    if update.shoutcast:
        return (
            b"<html><head><title>Admin request successful</title></head>"
            b"<body><p>Metadata update successful</p></body></html>\n",
            "text/html; charset=utf-8",
        )
    return (
        b'<?xml version="1.0"?>\n<iceresponse><message>Metadata update successful</message>'
        b"<return>1</return></iceresponse>\n",
        "text/xml; charset=utf-8",
    )
