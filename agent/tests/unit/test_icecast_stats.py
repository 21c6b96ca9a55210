"""Decoding Icecast 2.4.4's /admin/stats (sample shapes taken from a real server)."""

from __future__ import annotations

import pytest

from radioagent.icecast.stats import parse_admin_stats

TWO_SOURCES = b"""<?xml version="1.0"?>
<icestats><admin>a@localhost</admin><listeners>5</listeners><sources>3</sources>
<source mount="/_holding/live.mp3"><listeners>2</listeners><listenurl>http://h:1/_holding/live.mp3</listenurl>
<outgoing_kbitrate>256</outgoing_kbitrate><source_ip>127.0.0.1</source_ip></source>
<source mount="/live.mp3"><listeners>1</listeners><listenurl>http://h:1/live.mp3</listenurl>
<outgoing_kbitrate>128</outgoing_kbitrate></source>
<source mount="/talk.ogg"><listeners>2</listeners><listenurl>http://h:1/talk.ogg</listenurl>
</source></icestats>"""

NO_SOURCES = (
    b"""<?xml version="1.0"?><icestats><listeners>0</listeners><sources>0</sources></icestats>"""
)


def test_listeners_on_a_holding_mount_count_for_their_mount() -> None:
    stats = parse_admin_stats(TWO_SOURCES)
    assert stats.listeners_by_mount == {"live.mp3": 3, "talk.ogg": 2}
    assert stats.outgoing_kbps == 384
    assert stats.sources == {"/_holding/live.mp3", "/live.mp3", "/talk.ogg"}


def test_a_server_without_sources_has_no_listeners() -> None:
    stats = parse_admin_stats(NO_SOURCES)
    assert stats.listeners_by_mount == {}
    assert stats.outgoing_kbps == 0
    assert stats.sources == frozenset()


def test_malformed_xml_is_a_parse_error() -> None:
    with pytest.raises(ValueError, match="not XML"):
        parse_admin_stats(b"<icestats><source>")


# A fed relay and a relay still retrying, as Icecast 2.4.4 lists them (the retrying one has
# no stream start and no byte counts).
RELAYS = b"""<?xml version="1.0"?><icestats>
<source mount="/live.mp3"><listeners>0</listeners><server_type>audio/mpeg</server_type>
<stream_start_iso8601>2026-11-21T12:17:20+0000</stream_start_iso8601>
<total_bytes_read>81920</total_bytes_read><total_bytes_sent>0</total_bytes_sent></source>
<source mount="/talk.ogg"><listener_peak>0</listener_peak>
<listenurl>http://127.0.0.1:1/talk.ogg</listenurl><public>0</public></source>
</icestats>"""


def test_only_a_fed_mount_has_a_start_time_and_bytes() -> None:
    stats = parse_admin_stats(RELAYS)
    assert stats.sources == {"/live.mp3", "/talk.ogg"}
    assert stats.started_at == {"/live.mp3": 1795263440.0}
    assert stats.bytes_read == {"/live.mp3": 81920, "/talk.ogg": 0}


def test_a_malformed_start_time_counts_as_not_fed() -> None:
    stats = parse_admin_stats(RELAYS.replace(b"2026-11-21T12:17:20+0000", b"yesterday"))
    assert stats.started_at == {}


# An ICY relay's title whole in <title>; an Ogg feed's comments as <artist> and <title>.
TITLED = b"""<?xml version="1.0"?><icestats>
<source mount="/_live/ext.mp3"><title>Band - Song</title></source>
<source mount="/_live/talk.ogg"><artist>Host</artist><title>Morning show</title></source>
<source mount="/_live/artist.ogg"><artist>Only artist</artist></source>
<source mount="/live.mp3"><title></title></source>
</icestats>"""


def test_a_feeds_title_is_read_as_icecast_shows_it() -> None:
    assert parse_admin_stats(TITLED).titles == {
        "/_live/ext.mp3": "Band - Song",
        "/_live/talk.ogg": "Host - Morning show",
        "/_live/artist.ogg": "Only artist",
    }
