"""Encoders' title updates (Icecast's /admin/metadata, SHOUTcast's /admin.cgi): parsed,
checked and routed without sockets. Each bad request names its error and stores nothing
(routing gives no SetTitle for it)."""

from __future__ import annotations

import base64

import pytest

from radioagent.coordination.state import ClusterState
from radioagent.frontdoor.http import HttpError, RequestHead, parse_request_head
from radioagent.frontdoor.metadata import TitleUpdate, title_update
from radioagent.frontdoor.route import Refuse, SetTitle
from radioagent.model import parse_mount
from tests.unit.test_front_door_route import Door, view_of

LIVE = parse_mount({"name": "live.mp3", "source_password": "dj-secret-1"})
OTHER = parse_mount(
    {"name": "other.mp3", "source_password": "dj-secret-2", "source_username": "studio"}
)
TWIN = parse_mount({"name": "twin.mp3", "source_password": "dj-secret-2"})
MOUNTS = {mount.name: mount for mount in (LIVE, OTHER)}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(target: str, authorization: str | None = basic("source", "dj-secret-1")) -> RequestHead:
    lines = [f"GET {target} HTTP/1.0"]
    if authorization:  # None or "": no header
        lines.append(f"Authorization: {authorization}")
    return parse_request_head(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def update(target: str, **keywords: str | None) -> TitleUpdate | HttpError:
    return title_update(request(target, **keywords), MOUNTS)


def error_of(result: TitleUpdate | HttpError) -> tuple[int, str]:
    assert isinstance(result, HttpError), result
    return result.status, result.reason


def test_icecast_form_with_the_mounts_credentials() -> None:
    result = update("/admin/metadata?mount=/live.mp3&mode=updinfo&song=Artist+-+Song%20A")
    assert result == TitleUpdate("live.mp3", "Artist - Song A", shoutcast=False)


def test_the_mounts_own_source_user_is_required() -> None:
    target = "/admin/metadata?mount=/other.mp3&mode=updinfo&song=x"
    assert isinstance(update(target, authorization=basic("studio", "dj-secret-2")), TitleUpdate)
    assert error_of(update(target, authorization=basic("source", "dj-secret-2")))[0] == 401


def test_artist_and_title_are_shown_as_icecast_shows_them() -> None:
    result = update("/admin/metadata?mount=/live.mp3&mode=updinfo&artist=Nina&title=Sinnerman")
    assert result == TitleUpdate("live.mp3", "Nina - Sinnerman", shoutcast=False)


@pytest.mark.parametrize(
    ("query", "title"),
    [
        ("charset=UTF-8&song=Caf%C3%A9", "Café"),
        ("charset=ISO-8859-1&song=Caf%E9", "Café"),
        ("charset=ISO8859-1&song=Caf%E9", "Café"),  # Icecast's own spelling
        ("song=Caf%C3%A9", "Café"),  # no charset, valid UTF-8: what encoders send today
        ("song=Caf%E9", "Café"),  # no charset, not UTF-8: Latin-1, as Icecast reads it
        ("charset=utf-8&song=%E5%A4%8F", "夏"),
        ("song=", ""),  # an empty title clears it
    ],
)
def test_titles_are_decoded_as_icecast_reads_them(query: str, title: str) -> None:
    result = update(f"/admin/metadata?mount=/live.mp3&mode=updinfo&{query}")
    assert result == TitleUpdate("live.mp3", title, shoutcast=False)


@pytest.mark.parametrize(
    ("target", "authorization", "status", "reason"),
    [
        ("/admin/metadata?mount=/live.mp3&mode=updinfo&song=x", "", 401, "authentication"),
        (
            "/admin/metadata?mount=/live.mp3&mode=updinfo&song=x",
            basic("source", "no"),
            401,
            "wrong",
        ),
        ("/admin/metadata?mount=/live.mp3&mode=updinfo&song=x", "Basic !!!", 401, "authentication"),
        (
            "/admin/metadata?mount=/live.mp3&mode=updinfo&song=x",
            "Bearer abc",
            401,
            "authentication",
        ),
        (
            "/admin/metadata?mount=/nope.mp3&mode=updinfo&song=x",
            basic("source", "x"),
            404,
            "no such",
        ),
        (
            "/admin/metadata?mode=updinfo&song=x",
            basic("source", "x"),
            400,
            "missing parameter mount",
        ),
        (
            "/admin/metadata?mount=/live.mp3&song=x",
            basic("source", "x"),
            400,
            "missing parameter mode",
        ),
        ("/admin/metadata?mount=/live.mp3&mode=stats", basic("source", "x"), 400, "no such action"),
        ("/admin/metadata?mount=/live.mp3&mode=updinfo", None, 400, "missing parameter song"),
        ("/admin/metadata?mount=/live.mp3&mode=updinfo&title=x", None, 400, "missing parameter"),
        ("/admin/metadata?mount=/live.mp3&mode=updinfo&song=a&song=b", None, 400, "twice"),
        (
            "/admin/metadata?mount=/live.mp3&mode=updinfo&charset=UTF-8&song=%E9",
            None,
            400,
            "not valid",
        ),
        (
            "/admin/metadata?mount=/live.mp3&mode=updinfo&charset=klingon&song=x",
            None,
            400,
            "charset",
        ),
        ("/admin/metadata?mount=/live.mp3&mode=updinfo&charset=rot13&song=x", None, 400, "charset"),
        ("/admin/metadata?mount=/live.mp3&mode=updinfo&song=a%0Ab", None, 400, "control"),
        (f"/admin/metadata?mount=/live.mp3&mode=updinfo&song={'x' * 1001}", None, 400, "at most"),
        ("/admin/metadata?mount=/live.mp3&mode=updinfo&song=x&&", None, 400, "malformed"),
    ],
)
def test_bad_updates_are_refused_with_their_reason(
    target: str, authorization: str | None, status: int, reason: str
) -> None:
    """`authorization` None: the mount's own credentials; "": none sent."""
    keywords = {} if authorization is None else {"authorization": authorization}
    got = error_of(update(target, **keywords))
    assert got[0] == status
    assert reason in got[1]


def test_a_401_asks_for_basic_credentials() -> None:
    result = update("/admin/metadata?mount=/live.mp3&mode=updinfo&song=x", authorization=None)
    assert isinstance(result, HttpError)
    assert ("WWW-Authenticate", 'Basic realm="Icecast2 Server"') in result.headers


def test_shoutcast_form_finds_the_mount_by_its_password() -> None:
    result = update("/admin.cgi?mode=updinfo&song=Song+B&pass=dj-secret-1", authorization=None)
    assert result == TitleUpdate("live.mp3", "Song B", shoutcast=True)
    named = update("/admin.cgi?mode=updinfo&song=x&pass=dj-secret-2&mount=/other.mp3")
    assert named == TitleUpdate("other.mp3", "x", shoutcast=True)


@pytest.mark.parametrize(
    ("target", "status", "reason"),
    [
        ("/admin.cgi?mode=updinfo&song=x&pass=wrong", 401, "no mount has this password"),
        ("/admin.cgi?mode=updinfo&song=x", 400, "missing parameter pass"),
        ("/admin.cgi?mode=updinfo&pass=dj-secret-1", 400, "missing parameter song"),
        ("/admin.cgi?mode=updinfo&song=x&pass=dj-secret-1&mount=/other.mp3", 401, "wrong password"),
        ("/admin.cgi?mode=updinfo&song=x&pass=dj-secret-1&mount=/nope.mp3", 404, "no such mount"),
    ],
)
def test_bad_shoutcast_updates_are_refused(target: str, status: int, reason: str) -> None:
    got = error_of(update(target, authorization=None))
    assert got[0] == status
    assert reason in got[1]


def test_a_password_two_mounts_share_needs_the_mount_named() -> None:
    head = request("/admin.cgi?mode=updinfo&song=x&pass=dj-secret-2", authorization=None)
    status, reason = error_of(title_update(head, {**MOUNTS, TWIN.name: TWIN}))
    assert status == 400
    assert "add mount=" in reason


def test_routing_stores_good_updates_and_refuses_the_rest() -> None:
    door = Door()
    door.view = view_of(
        ClusterState(revision=1, leader=None, mounts={LIVE.name: LIVE}), leading=False
    )
    good = "GET /admin/metadata?mount=/live.mp3&mode=updinfo&song=x HTTP/1.0\nAuthorization: "
    decision = door.route((good + basic("source", "dj-secret-1") + "\n").encode())
    assert decision == SetTitle(TitleUpdate("live.mp3", "x", shoutcast=False))
    wrong = door.route((good + basic("source", "nope") + "\n").encode())
    assert isinstance(wrong, Refuse)
    assert wrong.error.status == 401
    head_request = door.route(
        b"HEAD /admin/metadata?mount=/live.mp3&mode=updinfo&song=x HTTP/1.0\n"
    )
    assert isinstance(head_request, Refuse)
    assert head_request.error.status == 405
    door.view = view_of(None)
    unknown_state = door.route(b"GET /admin.cgi?mode=updinfo&song=x&pass=dj-secret-1 HTTP/1.0\n")
    assert isinstance(unknown_state, Refuse)
    assert unknown_state.error.status == 503
