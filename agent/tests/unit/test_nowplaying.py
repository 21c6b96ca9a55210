"""Now playing: the titles record kept in etcd, and the ICY block that carries a title."""

from __future__ import annotations

import pytest

from radioagent.model import parse_mount
from radioagent.nowplaying import (
    HISTORY_LENGTH,
    MAX_TITLE_CHARACTERS,
    NowPlaying,
    Title,
    icy_block,
    mount_icy_titles,
    mount_now_playing,
    now_playing_from_json,
    relayed_titles,
    title_problem,
    with_title,
)
from radioagent.validation import ValidationError


def test_a_first_title_starts_the_record() -> None:
    record = with_title(None, "Song A", 100.0)
    assert record == NowPlaying((Title("Song A", 100.0),), 1)


def test_a_repeated_title_changes_nothing() -> None:
    record = with_title(None, "Song A", 100.0)
    assert with_title(record, "Song A", 200.0) is None


def test_history_keeps_the_newest_twenty_and_counts_every_change() -> None:
    record = None
    for index in range(HISTORY_LENGTH + 5):
        record = with_title(record, f"Song {index}", float(index)) or record
    assert record is not None
    assert record.changes == HISTORY_LENGTH + 5
    assert len(record.history) == HISTORY_LENGTH
    assert record.current == Title(f"Song {HISTORY_LENGTH + 4}", float(HISTORY_LENGTH + 4))
    assert record.history[-1].text == "Song 5"


def test_the_record_survives_its_json() -> None:
    record = with_title(with_title(None, "Été \u2013 夏", 1.5), "<b>x</b>", 2.5)
    assert record is not None
    assert now_playing_from_json(record.to_json()) == record


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"{}",
        b'{"changes": 1, "history": []}',
        b'{"changes": 0, "history": [{"title": "a", "since": 1}]}',
        b'{"changes": 1, "history": [{"title": 5, "since": 1}]}',
        b'{"changes": 1, "history": [{"title": "a", "since": "now"}]}',
        b'{"changes": true, "history": [{"title": "a", "since": 1}]}',
        b'{"changes": 1, "history": [{"title": "a\\u0007", "since": 1}]}',
    ],
)
def test_a_damaged_record_is_refused(value: bytes) -> None:
    with pytest.raises(ValidationError, match="not a now-playing record"):
        now_playing_from_json(value)


def test_titles_that_cannot_be_shown_are_named() -> None:
    assert title_problem("x" * MAX_TITLE_CHARACTERS) is None
    assert "at most" in (title_problem("x" * (MAX_TITLE_CHARACTERS + 1)) or "")
    assert title_problem("a\nb") == "the title: has control characters"
    assert title_problem("Don't Stop \u2013 Ça va") is None


def test_the_icy_block_is_a_length_byte_and_padded_utf8() -> None:
    block = icy_block("Café")
    content = "StreamTitle='Café';".encode()
    assert block[0] * 16 == len(block) - 1
    assert block[1:].rstrip(b"\0") == content
    assert len(block) - 1 >= len(content)


def test_the_longest_title_fits_one_icy_block() -> None:
    block = icy_block("€" * MAX_TITLE_CHARACTERS)  # 3 bytes each in UTF-8
    assert block[0] <= 255


def test_a_transcoded_mount_plays_its_parents_titles() -> None:
    live = parse_mount({"name": "live.mp3", "source_password": "secret-1"})
    low = parse_mount(
        {
            "name": "live-64.mp3",
            "source_password": "secret-2",
            "transcode": {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 64}},
        }
    )
    mounts = {mount.name: mount for mount in (live, low)}
    record = with_title(None, "Song A", 1.0)
    assert record is not None
    assert mount_now_playing("live-64.mp3", mounts, {"live.mp3": record}) == record
    assert mount_now_playing("live-64.mp3", mounts, {}) is None
    assert mount_now_playing("gone.mp3", mounts, {"live.mp3": record}) is None


RELAYED = parse_mount(
    {"name": "ext.mp3", "source_password": "secret-3", "relay_url": "http://radio.test/s"}
)
STUDIO = parse_mount({"name": "live.mp3", "source_password": "secret-1"})


def test_a_relayed_streams_title_is_kept_when_it_changes() -> None:
    feeds = {RELAYED.live_path: "Band - Song", STUDIO.live_path: "not a relay"}
    assert relayed_titles([RELAYED, STUDIO], feeds, {}) == {"ext.mp3": "Band - Song"}
    kept = with_title(None, "Band - Song", 1.0)
    assert kept is not None
    assert relayed_titles([RELAYED], feeds, {"ext.mp3": kept}) == {}
    assert relayed_titles([RELAYED], {}, {}) == {}  # no title in the feed: nothing to keep
    assert relayed_titles([RELAYED], {RELAYED.live_path: "bad\x07title"}, {}) == {}


def test_a_relayed_stream_keeps_its_own_icy_titles_and_a_studios_gets_the_clusters() -> None:
    kept = with_title(None, "Band - Song", 1.0)
    assert kept is not None
    mounts = {RELAYED.name: RELAYED, STUDIO.name: STUDIO}
    assert mount_icy_titles(RELAYED, mounts, {"ext.mp3": kept}).live is None
    assert mount_icy_titles(STUDIO, mounts, {"live.mp3": kept}).live == icy_block("Band - Song")
