"""The status page's server-rendered HTML (the browser test checks it in Chromium)."""

from __future__ import annotations

from radioagent.frontdoor.status_page import render_status_page


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
    assert "://" not in page  # no external resources


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
