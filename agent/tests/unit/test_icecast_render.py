"""icecast.xml for each role, checked as parsed XML: what Icecast will actually read."""

from __future__ import annotations

from xml.etree import ElementTree

from radioagent.config import AgentConfig
from radioagent.icecast.render import IcecastPlan, render_icecast_config
from radioagent.model import MountSpec, parse_mount


def mounts() -> tuple[MountSpec, ...]:
    return (
        parse_mount({"name": "live.mp3", "source_password": "dj&pw!", "max_listeners": 40}),
        parse_mount({"name": "backup.mp3", "source_password": "pw2"}),
        parse_mount({"name": "news.mp3", "source_password": "pw3", "fallback": "backup.mp3"}),
        parse_mount(
            {
                "name": "ext.mp3",
                "source_password": "pw4",
                "relay_url": "http://upstream.example:8000/stream",
            }
        ),
    )


def rendered(config: AgentConfig, leading: bool) -> ElementTree.Element:
    return ElementTree.fromstring(render_icecast_config(config, IcecastPlan(leading, mounts())))


def mount_settings(root: ElementTree.Element) -> dict[str, ElementTree.Element]:
    return {element.findtext("mount-name", ""): element for element in root.findall("mount")}


def relays(root: ElementTree.Element) -> list[dict[str, str]]:
    # An element without text reads as "" (the relay's fields are all strings).
    return [{child.tag: child.text or "" for child in element} for element in root.iter("relay")]


def test_live_mounts_ask_the_local_agent_whether_to_take_a_source(
    agent_config: AgentConfig,
) -> None:
    for leading in (True, False):
        live = mount_settings(rendered(agent_config, leading))["/_live/live.mp3"]
        option = live.find("authentication[@type='url']/option[@name='stream_auth']")
        assert option is not None
        assert option.get("value") == "http://127.0.0.1:8090/icecast/stream-auth"
        # No password in the file: the agent holds the credentials and the leadership.
        assert live.find("password") is None
        assert live.findtext("hidden") == "1"
        assert live.find("fallback-mount") is None


def test_public_mounts_are_locked_with_a_password_no_source_has(
    agent_config: AgentConfig,
) -> None:
    settings = mount_settings(rendered(agent_config, leading=True))
    public = settings["/live.mp3"]
    assert public.findtext("username") == "locked"
    lock = public.findtext("password")
    assert lock is not None
    assert lock not in ("dj&pw!", "node-internal", "")
    assert len(lock) == 64
    assert settings["/backup.mp3"].findtext("password") != lock  # one per mount
    assert public.find("authentication") is None  # listeners skip Icecast's auth queue
    assert public.findtext("max-listeners") == "40"


def test_every_mount_falls_back_to_its_holding_mount_with_override(
    agent_config: AgentConfig,
) -> None:
    for leading in (True, False):
        settings = mount_settings(rendered(agent_config, leading))
        assert settings["/live.mp3"].findtext("fallback-mount") == "/_holding/live.mp3"
        assert settings["/live.mp3"].findtext("fallback-override") == "1"
        holding = settings["/_holding/live.mp3"]
        assert holding.findtext("hidden") == "1"
        assert holding.findtext("password") == "node-internal"
        # An operator's fallback comes first; its own holding mount catches the rest.
        assert settings["/news.mp3"].findtext("fallback-mount") == "/backup.mp3"


def relay_routes(root: ElementTree.Element) -> list[tuple[str, str, str, str]]:
    return sorted(
        (relay["server"], relay["port"], relay["mount"], relay["local-mount"])
        for relay in relays(root)
    )


LOCAL_RELAYS = [
    ("127.0.0.1", "8090", f"/relay/{name}", f"/{name}")
    for name in ("backup.mp3", "ext.mp3", "live.mp3", "news.mp3")
]


def test_every_node_relays_every_mount_through_the_local_agent(
    agent_config: AgentConfig,
) -> None:
    assert relay_routes(rendered(agent_config, leading=False)) == LOCAL_RELAYS


def test_the_leader_also_pulls_external_streams_into_their_live_mounts(
    agent_config: AgentConfig,
) -> None:
    assert relay_routes(rendered(agent_config, leading=True)) == sorted(
        [*LOCAL_RELAYS, ("upstream.example", "8000", "/stream", "/_live/ext.mp3")]
    )


def test_relays_retry_after_one_second_not_icecasts_default_two_minutes(
    agent_config: AgentConfig,
) -> None:
    assert rendered(agent_config, leading=False).findtext("master-update-interval") == "1"


def test_node_settings_come_from_the_agent_config(agent_config: AgentConfig) -> None:
    root = rendered(agent_config, leading=True)
    assert root.findtext("listen-socket/port") == "8001"
    assert root.findtext("authentication/admin-password") == "admin-secret"
    assert root.findtext("hostname") == "10.0.0.1"


def test_leadership_changes_the_text_only_for_external_relays(
    agent_config: AgentConfig,
) -> None:
    plain = mounts()[:3]
    relay_text = render_icecast_config(agent_config, IcecastPlan(False, plain))
    leader_text = render_icecast_config(agent_config, IcecastPlan(True, plain))
    assert relay_text.replace("role: relay", "role: leader") == leader_text
    assert render_icecast_config(agent_config, IcecastPlan(False, plain[:2])) != relay_text


def test_an_external_relay_keeps_its_query_and_credentials(agent_config: AgentConfig) -> None:
    pulled = parse_mount(
        {
            "name": "ext.mp3",
            "source_password": "pw",
            "relay_url": "http://user:p%40ss@upstream.example/stream?id=7",
        }
    )
    root = ElementTree.fromstring(render_icecast_config(agent_config, IcecastPlan(True, (pulled,))))
    (external,) = [relay for relay in relays(root) if relay["server"] == "upstream.example"]
    assert external["port"] == "80"
    assert external["mount"] == "/stream?id=7"
    assert (external["username"], external["password"]) == ("user", "p@ss")


def test_icecast_may_hold_three_sources_per_mount(agent_config: AgentConfig) -> None:
    sources = rendered(agent_config, leading=True).findtext("limits/sources")
    assert sources is not None
    assert int(sources) >= 3 * len(mounts())
