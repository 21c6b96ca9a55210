"""The agent's answers to Icecast: who may source a mount, where a relay should pull from."""

from __future__ import annotations

from radioagent.icecast.callbacks import decide_source, relay_target
from radioagent.model import NodeStatus, parse_mount
from tests.unit.builders import node_status

MOUNTS = {
    "live.mp3": parse_mount(
        {"name": "live.mp3", "source_password": "dj-pw", "source_username": "studio"}
    )
}


def status(name: str, address: str = "10.0.0.2") -> NodeStatus:
    return node_status(name, address=address, role="leader")


def test_the_leader_takes_a_source_on_the_live_mount_with_its_credentials() -> None:
    decision = decide_source(MOUNTS, "/_live/live.mp3", "studio", "dj-pw", leading=True)
    assert decision.allowed


def test_a_node_that_does_not_lead_refuses_even_the_right_credentials() -> None:
    decision = decide_source(MOUNTS, "/_live/live.mp3", "studio", "dj-pw", leading=False)
    assert not decision.allowed
    assert "does not lead" in decision.reason


def test_the_public_mount_never_takes_a_source() -> None:
    decision = decide_source(MOUNTS, "/live.mp3", "studio", "dj-pw", leading=True)
    assert not decision.allowed
    assert "takes no source" in decision.reason


def test_wrong_user_or_password_or_unknown_mount_is_refused() -> None:
    assert not decide_source(MOUNTS, "/_live/live.mp3", "source", "dj-pw", True).allowed
    assert not decide_source(MOUNTS, "/_live/live.mp3", "studio", "nope", True).allowed
    unknown = decide_source(MOUNTS, "/_live/other.mp3", "studio", "dj-pw", leading=True)
    assert (unknown.allowed, unknown.reason) == (False, "unknown mount /_live/other.mp3")


def test_relay_goes_to_the_leaders_live_mount_even_on_the_leader() -> None:
    target = relay_target(MOUNTS, "live.mp3", status("node2"))
    assert target.url == "http://10.0.0.2:8001/_live/live.mp3"


def test_relay_to_an_ipv6_leader_brackets_the_address() -> None:
    target = relay_target(MOUNTS, "live.mp3", status("node2", "fd00::2"))
    assert target.url == "http://[fd00::2]:8001/_live/live.mp3"


def test_no_relay_without_a_leader_or_for_an_unknown_mount() -> None:
    assert relay_target(MOUNTS, "live.mp3", None).url is None
    assert relay_target(MOUNTS, "nope.mp3", status("node2")).url is None
