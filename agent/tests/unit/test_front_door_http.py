"""Request heads, stream framing for late joiners, and playlists."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from radioagent.frontdoor.framing import (
    Burst,
    FrameFramer,
    IcyFramer,
    OggFramer,
    Piece,
    RawFramer,
)
from radioagent.frontdoor.http import (
    MAX_HEAD_BYTES,
    HttpError,
    check_request_line,
    head_end,
    parse_request_head,
    parse_response_head,
    stream_response_head,
)
from radioagent.frontdoor.playlists import render_playlist, split_playlist_path
from radioagent.frontdoor.sources import upstream_head
from radioagent.frontdoor.syncpoints import mp3_frame_length
from radioagent.holding.ogg import ogg_crc
from radioagent.holding.silence import silent_mp3
from radioagent.model import AudioFormat
from radioagent.nowplaying import HOLDING_TITLE_MARKER, icy_block


def test_a_source_head_parses_and_is_pointed_at_the_live_mount() -> None:
    raw = b"SOURCE /live.mp3?x=1 HTTP/1.0\r\nAuthorization: Basic c291cmNlOmE=\r\n\r\n"
    head = parse_request_head(raw)
    assert (head.method, head.path, head.query, head.version) == (
        "SOURCE",
        "/live.mp3",
        "x=1",
        "HTTP/1.0",
    )
    assert head.header("authorization") == "Basic c291cmNlOmE="
    assert not head.keep_alive
    assert upstream_head(head, "live.mp3") == raw.replace(b"/live.mp3", b"/_live/live.mp3")


def test_bare_line_feeds_are_accepted_and_keep_alive_follows_the_version() -> None:
    raw = b"GET /a HTTP/1.1\nHost: x\n\n"
    assert head_end(raw + b"more") == len(raw)
    head = parse_request_head(raw)
    assert head.keep_alive
    assert not parse_request_head(
        b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ).keep_alive
    assert upstream_head(head, "a") == b"GET /_live/a HTTP/1.1\nHost: x\n\n"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /a\r\n\r\n", 400),
        (b"GET /a HTTP/3\r\n\r\n", 505),
        (b"GET /a HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        (b"GET /a HTTP/1.x\r\nHost: a\r\n\r\n", 400),
        (b"GET /../x HTTP/1.1\r\n\r\n", 400),
        (b"GET /a%2F..%2Fb/../c HTTP/1.1\r\n\r\n", 400),
        (b"GET /%c3%28 HTTP/1.1\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\n" + b"A: b\r\n" * 65 + b"\r\n", 431),
        (b"GET /" + b"a" * MAX_HEAD_BYTES + b" HTTP/1.1\r\n\r\n", 431),
    ],
)
def test_bad_heads_are_refused_with_a_status(raw: bytes, status: int) -> None:
    with pytest.raises(HttpError) as refused:
        parse_request_head(raw)
    assert refused.value.status == status


def refusal(raw: bytes) -> tuple[int, str]:
    with pytest.raises(HttpError) as refused:
        parse_request_head(raw)
    return refused.value.status, refused.value.reason


@pytest.mark.parametrize(
    "lengths",
    [
        b"Content-Length: 0\r\nContent-Length: 5\r\n",  # the last one used to win
        b"Content-Length: 5\r\nContent-Length: 0\r\n",
        b"Content-Length: 5, 6\r\n",
        b"Content-Length: 5\r\nContent-Length: 5, 6\r\n",
        b"Content-Length: 05\r\nContent-Length: 5\r\n",  # identical as written, like h11
    ],
)
def test_differing_content_lengths_are_refused(lengths: bytes) -> None:
    raw = b"PUT /live.mp3 HTTP/1.1\r\nHost: x\r\n" + lengths + b"\r\n"
    assert refusal(raw) == (400, "conflicting Content-Length values")


@pytest.mark.parametrize("value", [b"", b"abc", b"-1", b"+5", b"5,", b"5 5", b"1e3", b"0x10"])
def test_a_content_length_that_is_not_a_decimal_is_refused(value: bytes) -> None:
    raw = b"PUT /live.mp3 HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\n"
    assert refusal(raw) == (400, "malformed Content-Length")


@pytest.mark.parametrize(
    ("lengths", "kept"),
    [
        (b"Content-Length: 5, 5\r\n", "5"),
        (b"Content-Length: 0\r\ncontent-length: 0\r\n", "0"),
        (b"Content-Length:  5 ,5\r\nContent-Length: 5\r\n", "5"),
        (b"Content-Length: 000\r\n", "0"),
        (b"Content-Length: " + b"9" * 5000 + b"\r\n", "9" * 5000),  # not int(): no ValueError
    ],
)
def test_identical_content_lengths_are_one(lengths: bytes, kept: str) -> None:
    head = parse_request_head(b"GET /a HTTP/1.1\r\nHost: x\r\n" + lengths + b"\r\n")
    assert head.header("content-length") == kept


def test_an_http_1_1_request_without_host_is_refused() -> None:
    for raw in (
        b"GET /live.mp3 HTTP/1.1\r\n\r\n",
        b"PUT /live.mp3 HTTP/1.1\r\nAuthorization: Basic c291cmNlOng=\r\n\r\n",
        b"HEAD /live.mp3 HTTP/1.1\nUser-Agent: x\n\n",
    ):
        assert refusal(raw) == (400, "an HTTP/1.1 request needs a Host header field"), raw
        # The connection's early look at the request line alone cannot know yet.
        check_request_line(raw.split(b"\n")[0] + b"\n")


def test_heads_without_host_that_are_accepted() -> None:
    for raw in (
        b"GET /live.mp3 HTTP/1.0\r\n\r\n",
        # Liquidsoap 2.1's output.icecast, as the harness and a capture show it.
        b"SOURCE /live.mp3 HTTP/1.0\r\nAuthorization: Basic c291cmNlOng=\r\n"
        b"User-Agent: Liquidsoap/2.1.3\r\nContent-Type: audio/mpeg\r\n\r\n",
        # ocaml-cry before 0.2.0 (Liquidsoap 0.9): HTTP/1.1 and no Host.
        b"SOURCE /live.mp3 HTTP/1.1\r\nAuthorization: Basic c291cmNlOng=\r\n\r\n",
        # ocaml-cry from 0.3 (2014) to 2022, chunked=true to an IP address: an empty Host.
        b"PUT /live.mp3 HTTP/1.1\r\nHost: \r\nTransfer-Encoding: chunked\r\n\r\n",
    ):
        assert parse_request_head(raw).path == "/live.mp3", raw


def test_ffmpeg_source_heads_are_accepted() -> None:
    """As ffmpeg 5.1 sends them (captured), with PUT and with -legacy_icecast 1."""
    for method, expect in ((b"PUT", b"Expect: 100-continue\r\n"), (b"SOURCE", b"")):
        raw = (
            method
            + b" /live.mp3 HTTP/1.1\r\nUser-Agent: Lavf/59.27.100\r\nAccept: */*\r\n"
            + expect
            + b"Connection: close\r\nHost: 127.0.0.1:18765\r\nContent-Type: audio/mpeg\r\n"
            b"Icy-MetaData: 1\r\nIce-Public: 0\r\nAuthorization: Basic c291cmNlOng=\r\n\r\n"
        )
        assert parse_request_head(raw).header("host") == "127.0.0.1:18765"


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (
            b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
            "more than one Host header field",
        ),
        (b"GET /a HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", 400, "more than one Host header field"),
        (
            b"PUT /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 5\r\n\r\n",
            400,
            "both Transfer-Encoding and Content-Length",
        ),
        (
            b"PUT /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            "Transfer-Encoding in an HTTP/1.0 request",
        ),
        (
            b"PUT /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            400,
            "chunked must be the last transfer coding, and only once",
        ),
        (
            b"PUT /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
            "chunked must be the last transfer coding, and only once",
        ),
        (
            b"PUT /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
            "only the chunked transfer coding is known here",
        ),
        (
            b"GET /a HTTP/1.1\r\nHost : a\r\n\r\n",
            400,
            "whitespace between a header field name and its colon",
        ),
        (
            b"GET /a HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n",
            400,
            "folded header lines (obs-fold) are not accepted",
        ),
        # A CR left on the last line is that line's, not part of the head's end.
        (
            b"GET /a HTTP/1.1\r\nHost: a\r\nX: b\r\r\n\r\n",
            400,
            "control character in a header field",
        ),
        (b"GET /a HTTP/1.1\r\r\nHost: a\r\n\r\n", 400, "malformed request line"),
        (b"GET /a HTTP/1.1\r\nHost: a\r\n", 400, "malformed request head"),  # no blank line
    ],
)
def test_rfc_9112_refusals_have_a_status_and_a_reason(raw: bytes, status: int, reason: str) -> None:
    assert refusal(raw) == (status, reason)


def test_chunked_sources_are_accepted() -> None:
    for coding in (b"chunked", b"Chunked", b" chunked "):
        raw = b"PUT /live.mp3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + coding + b"\r\n\r\n"
        assert parse_request_head(raw).method == "PUT"


def test_the_head_ends_at_a_blank_line_of_lf_and_optional_cr() -> None:
    assert head_end(b"GET / HTTP/1.1\r\nHost: a\n\r\nbody") == len(
        b"GET / HTTP/1.1\r\nHost: a\n\r\n"
    )
    crlf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert head_end(crlf + crlf) == len(crlf)
    assert head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r") == -1


@given(st.binary(max_size=600))
def test_any_bytes_parse_or_are_refused_with_an_http_error(data: bytes) -> None:
    refusal: HttpError | None = None
    try:
        head = parse_request_head(data)
    except HttpError as error:
        refusal = error
    if refusal is not None:
        assert 400 <= refusal.status < 600
    else:
        assert head.path.startswith("/")
        assert ".." not in head.path.split("/")


def test_the_stream_head_keeps_the_station_headers_and_never_chunks() -> None:
    status, headers = parse_response_head(
        b"HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\nicy-name: Radio X\r\n"
        b"icy-metaint: 16000\r\nX-Internal: no\r\n\r\n"
    )
    assert status == 200
    plain = stream_response_head(headers, icy=False).decode()
    assert "Content-Type: audio/mpeg" in plain
    assert "icy-name: Radio X" in plain
    assert "icy-metaint" not in plain
    assert "X-Internal" not in plain
    assert "chunked" not in plain.lower()
    assert "icy-metaint: 16000" in stream_response_head(headers, icy=True).decode()


def feed_in_threes(framer: IcyFramer | FrameFramer, stream: bytes) -> list[Piece]:
    return [piece for at in range(0, len(stream), 3) for piece in framer.feed(stream[at : at + 3])]


def test_icy_blocks_become_slots_after_each_metaint_of_audio() -> None:
    block = b"\x01" + b"StreamTitle='x';"[:16]
    framer = IcyFramer(metaint=4)
    pieces = feed_in_threes(framer, b"aaaa\x00bbbb" + block + b"cccc\x00dd")
    assert b"".join(piece.data for piece in pieces if not piece.metadata) == b"aaaabbbbccccdd"
    # Each slot holds what Icecast had said there: nothing, then its title (whole, even
    # where Icecast sent "no change"). A slot goes in once more audio follows it.
    assert [piece.data for piece in pieces if piece.metadata] == [b"\x00", block, block]
    starts = [sum(len(p.data) for p in pieces[:index]) for index, p in enumerate(pieces) if p.sync]
    assert starts == [0, 5, 26, 47]
    assert not any(piece.sync or piece.holding for piece in pieces if piece.metadata)


def test_the_holding_marker_in_icecasts_block_marks_the_slots() -> None:
    marker = icy_block(HOLDING_TITLE_MARKER)
    live = icy_block("")
    framer = IcyFramer(metaint=2)
    pieces = feed_in_threes(framer, b"aa" + marker + b"bb\x00cc" + live + b"dd\x00e")
    assert [piece.holding for piece in pieces if piece.metadata] == [True, True, False, False]


def test_only_whole_frames_go_on_across_a_splice() -> None:
    holding = silent_mp3(AudioFormat("mp3", 128, 44100, 2)).frame
    live = silent_mp3(AudioFormat("mp3", 64, 44100, 2)).frame  # another length
    spliced = holding * 3 + holding[:150] + live * 4 + holding[:10]
    framer = FrameFramer(mp3_frame_length)
    out = b"".join(piece.data for piece in feed_in_threes(framer, spliced))
    # The frame cut short is gone; the cut-short frame at the end waits for the rest.
    assert out == holding * 3 + live * 4
    assert framer.frames.dropped == 150
    assert all(piece.sync for piece in framer.feed(holding))


def ogg_page(granule: int, serial: int, flags: int, body: bytes) -> bytes:
    header = bytearray(b"OggS\x00" + bytes([flags]))
    header += granule.to_bytes(8, "little") + serial.to_bytes(4, "little")
    header += (0).to_bytes(4, "little") + b"\0\0\0\0" + bytes([1, len(body)])
    page = bytes(header) + body
    crc = ogg_crc(page)
    return page[:22] + crc.to_bytes(4, "little") + page[26:]


def test_ogg_headers_are_kept_for_late_joiners_and_replaced_by_a_new_chain() -> None:
    first = [ogg_page(0, 1, 2, b"head"), ogg_page(0, 1, 0, b"setup"), ogg_page(960, 1, 0, b"a")]
    framer = OggFramer()
    pieces = framer.feed(b"".join(first)[:10]) + framer.feed(b"".join(first)[10:])
    assert [piece.header for piece in pieces] == [True, True, False]
    assert framer.headers == first[0] + first[1]
    chained = ogg_page(0, 2, 2, b"new")
    assert framer.feed(chained)[0].header
    assert framer.headers == chained


def test_the_burst_starts_where_a_listener_may_start_and_stays_bounded() -> None:
    burst = Burst(limit=10)
    burst.add(Piece(b"tail", sync=False))  # nothing to attach it to
    assert burst.empty
    for index in range(5):
        burst.add(Piece(b"S%d" % index, sync=True))
        burst.add(Piece(b"cccc", sync=False))
    assert burst.contents() == b"S4cccc"  # older runs dropped past the limit
    burst.add(Piece(b"hdr", sync=False, header=True))
    assert burst.empty
    assert RawFramer().feed(b"x") == [Piece(b"x", sync=True)]


def test_playlists_name_the_stream() -> None:
    assert split_playlist_path("live.mp3.m3u") == ("live.mp3", ".m3u")
    assert split_playlist_path("live.mp3") is None
    assert split_playlist_path(".pls") is None
    url = "http://radio.example.org/live.mp3"
    assert url in render_playlist(".m3u", [(url, "Live")])
    assert f"File1={url}" in render_playlist(".pls", [(url, "Live")])
    assert "<title>A &amp; B</title>" in render_playlist(".xspf", [(url, "A & B")])


def test_a_playlist_lists_its_entries_in_order() -> None:
    entries = [("http://r.example/a.mp3", "A"), ("http://r.example/a.mp3.m3u8", "A (HLS)")]
    assert render_playlist(".m3u", entries) == (
        "#EXTM3U\n#EXTINF:-1,A\nhttp://r.example/a.mp3\n"
        "#EXTINF:-1,A (HLS)\nhttp://r.example/a.mp3.m3u8\n"
    )
    assert render_playlist(".pls", entries) == (
        "[playlist]\nNumberOfEntries=2\n"
        "File1=http://r.example/a.mp3\nTitle1=A\nLength1=-1\n"
        "File2=http://r.example/a.mp3.m3u8\nTitle2=A (HLS)\nLength2=-1\nVersion=2\n"
    )
    locations = [
        line.split("<location>")[1].split("</location>")[0]
        for line in render_playlist(".xspf", entries).splitlines()
        if "<location>" in line
    ]
    assert locations == [url for url, _ in entries]


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"\x16\x03\x01\x02\x00\n", 400),  # a TLS hello on the plain port
        (b"get /live.mp3 HTTP/1.1\r\n", 400),
        (b"GET /../etc/passwd HTTP/1.1\r\n", 400),
        (b"GET /%ff HTTP/1.0\n", 400),
        (b"GET /live.mp3 HTTP/2.0\r\n", 505),
        (b"GET http://elsewhere/ HTTP/1.1\r\n", 400),
    ],
)
def test_a_request_line_no_head_can_follow_is_refused_at_once(line: bytes, status: int) -> None:
    with pytest.raises(HttpError) as refused:
        check_request_line(line)
    assert refused.value.status == status


def test_a_good_request_line_waits_for_the_rest_of_its_head() -> None:
    for line in (b"GET /live.mp3?x=1 HTTP/1.1\r\n", b"SOURCE /live.mp3 HTTP/1.0\n"):
        check_request_line(line)  # no HttpError: the fields are still on their way
