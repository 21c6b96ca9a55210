"""icecast.xml for each role, checked as parsed XML: what Icecast will actually read."""

from __future__ import annotations

from xml.etree import ElementTree

from radioagent.config import AgentConfig
from radioagent.icecast.render import IcecastPlan, render_icecast_config
from radioagent.model import MountSpec, parse_mount

LOCK = "lock-password-nobody-has"


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


def rendered(config: AgentConfig, plan: IcecastPlan) -> ElementTree.Element:
    return ElementTree.fromstring(render_icecast_config(config, plan, LOCK))


def mount_settings(root: ElementTree.Element) -> dict[str, dict[str, str]]:
    return {
        element.findtext("mount-name"): {child.tag: child.text for child in element}
        for element in root.iter("mount")
    }


def relays(root: ElementTree.Element) -> list[dict[str, str]]:
    return [{child.tag: child.text for child in element} for element in root.iter("relay")]


def leader_plan() -> IcecastPlan:
    return IcecastPlan("leader", accept_sources=True, relay_from=None, epoch=42, mounts=mounts())


def replica_plan() -> IcecastPlan:
    return IcecastPlan(
        "replica", accept_sources=False, relay_from=("10.0.0.9", 8001), epoch=42, mounts=mounts()
    )


def test_leader_accepts_each_mount_with_its_own_credentials(agent_config: AgentConfig) -> None:
    settings = mount_settings(rendered(agent_config, leader_plan()))
    assert settings["/live.mp3"]["password"] == "dj&pw!"  # escaped in XML, intact once read
    assert settings["/live.mp3"]["username"] == "source"
    assert settings["/live.mp3"]["max-listeners"] == "40"


def test_every_mount_falls_back_to_its_holding_mount_with_override(
    agent_config: AgentConfig,
) -> None:
    for plan in (leader_plan(), replica_plan()):
        settings = mount_settings(rendered(agent_config, plan))
        assert settings["/live.mp3"]["fallback-mount"] == "/_holding/live.mp3"
        assert settings["/live.mp3"]["fallback-override"] == "1"
        assert settings["/_holding/live.mp3"]["hidden"] == "1"
        assert settings["/_holding/live.mp3"]["password"] == "node-internal"
        # An operator's fallback comes first; its own holding mount catches the rest.
        assert settings["/news.mp3"]["fallback-mount"] == "/backup.mp3"


def test_leader_pulls_external_relays_and_nothing_else(agent_config: AgentConfig) -> None:
    assert relays(rendered(agent_config, leader_plan())) == [
        {
            "server": "upstream.example",
            "port": "8000",
            "mount": "/stream",
            "local-mount": "/ext.mp3",
            "on-demand": "0",
            "relay-shoutcast-metadata": "1",
        }
    ]


def test_replica_relays_every_mount_from_the_leader_and_locks_sources(
    agent_config: AgentConfig,
) -> None:
    root = rendered(agent_config, replica_plan())
    assert sorted(
        (relay["server"], relay["port"], relay["mount"], relay["local-mount"])
        for relay in relays(root)
    ) == [
        ("10.0.0.9", "8001", f"/{name}", f"/{name}")
        for name in ("backup.mp3", "ext.mp3", "live.mp3", "news.mp3")
    ]
    settings = mount_settings(root)
    assert {settings[f"/{mount.name}"]["password"] for mount in mounts()} == {LOCK}


def test_relays_retry_after_one_second_not_icecasts_default_two_minutes(
    agent_config: AgentConfig,
) -> None:
    assert rendered(agent_config, replica_plan()).findtext("master-update-interval") == "1"


def test_node_settings_come_from_the_agent_config(agent_config: AgentConfig) -> None:
    root = rendered(agent_config, leader_plan())
    assert root.findtext("listen-socket/port") == "8001"
    assert root.findtext("authentication/admin-password") == "admin-secret"
    assert root.findtext("hostname") == "10.0.0.1"


def test_same_inputs_render_the_same_text(agent_config: AgentConfig) -> None:
    first = render_icecast_config(agent_config, replica_plan(), LOCK)
    assert render_icecast_config(agent_config, replica_plan(), LOCK) == first
    other_leader = IcecastPlan("replica", False, ("10.0.0.7", 8001), 43, mounts())
    assert render_icecast_config(agent_config, other_leader, LOCK) != first
