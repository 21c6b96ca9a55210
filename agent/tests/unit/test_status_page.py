"""The status page's server-rendered HTML (the browser test checks it in Chromium)."""

from __future__ import annotations

from radioagent.frontdoor.status_page import chart_line, render_status_page


def mount(on_air: bool, live_on: list[str]) -> dict:
    format_ = {"codec": "mp3", "bitrate_kbps": 128}
    return {"format": format_, "listeners": 2, "on_air": on_air, "live_on": live_on}


def node(role: str, draining: bool = False) -> dict:
    return {"role": role, "draining": draining, "icecast_up": True, "listeners": {"a.mp3": 2}}


def test_the_page_shows_leader_nodes_and_whether_each_mount_is_on_air() -> None:
    page = render_status_page(
        {
            "node": "node2",
            "leader": {"name": "node1", "epoch": 3},
            "nodes": {"node1": node("leader"), "node2": node("replica", draining=True)},
            "mounts": {"a.mp3": mount(True, ["node1", "node2"]), "b<c": mount(False, [])},
        }
    )
    assert '<strong id="leader-name">node1</strong>' in page
    assert '<span id="page-node">node2</span>' in page
    assert '<td class="onair good" title="live on node1, node2">on air</td>' in page
    assert '<tr data-mount="b&lt;c">' in page  # names are escaped
    assert '<td class="onair bad">dead air</td>' in page
    assert '<td class="name">node2 (draining)</td>' in page
    assert '<td class="role">replica</td>' in page
    assert "<th>On air</th>" in page
    # No external resources: the one URL is SVG's namespace, which the script names.
    assert page.count("://") == page.count("http://www.w3.org/2000/svg") == 1


def test_without_leader_or_mounts_the_page_says_so() -> None:
    page = render_status_page({"node": "node1", "leader": None, "nodes": {}, "mounts": {}})
    assert '<strong id="leader-name" class="bad">none</strong>' in page
    assert '<td colspan="4">No mounts yet.</td>' in page


def test_a_title_with_markup_is_shown_as_text() -> None:
    playing = {**mount(True, ["node1"]), "now_playing": {"title": "<b>Bold</b> & co"}}
    page = render_status_page(
        {"node": "node1", "leader": None, "nodes": {}, "mounts": {"a.mp3": playing}}
    )
    assert '<div class="title">&lt;b&gt;Bold&lt;/b&gt; &amp; co</div>' in page
    assert "<b>Bold</b>" not in page


def test_each_mount_has_a_play_button_and_its_last_hour_as_a_chart() -> None:
    hour = [None, None, 2, 4, None, 1]
    page = render_status_page(
        {
            "node": "node1",
            "leader": None,
            "nodes": {},
            "mounts": {"a.mp3": {**mount(True, ["node1"]), "listeners_last_hour": hour}},
        }
    )
    assert 'data-play="a.mp3" aria-label="Play a.mp3"' in page
    assert '<audio id="player" preload="none"></audio>' in page
    assert 'aria-label="listeners in the last hour, at most 4"' in page
    assert '<polyline points="2,10.0 3,1.0 5,14.5"' in page


def test_the_chart_line_scales_to_the_most_and_skips_unseen_minutes() -> None:
    line = chart_line([0, None, 10, 5])
    assert (line.width, line.most, line.points) == (3, 10, "0,19.0 2,1.0 3,10.0")
    assert chart_line([]).points == ""
    assert chart_line([0, 0]).points == "0,19.0 1,19.0"  # no listeners: the bottom line


def test_a_mount_hls_carries_links_its_master_playlist() -> None:
    page = render_status_page(
        {
            "node": "node1",
            "leader": None,
            "nodes": {},
            "mounts": {
                "a.mp3": {**mount(True, ["node1"]), "hls": "/a.mp3.m3u8"},
                "b.ogg": {**mount(True, ["node1"]), "hls": None},
            },
        }
    )
    assert '<a class="hls" href="/a.mp3.m3u8">HLS</a>' in page
    assert page.count('<a class="hls"') == 1  # none for the Ogg mount


def test_a_node_that_is_down_is_listed_as_down_since_when() -> None:
    page = render_status_page(
        {
            "node": "node1",
            "leader": {"name": "node1", "epoch": 3},
            "nodes": {"node1": node("leader")},
            "down_nodes": {"node3": {"down_since": 1_700_000_000}, "node4": {"down_since": None}},
            "mounts": {},
        }
    )
    assert '<tr data-node="node3"><td class="name">node3</td>' in page
    assert '<td class="role bad">down since 22:13:20 UTC</td>' in page
    assert '<td class="role bad">down</td>' in page  # node4: not marked yet
