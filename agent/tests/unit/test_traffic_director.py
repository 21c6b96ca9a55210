"""The director: policy over node reports, predictive counts, no-redirect clients."""

from __future__ import annotations

import random
from collections import Counter

from radioagent.model import MountSpec, NodeStatus
from radioagent.settings import ClusterSettings
from radioagent.traffic.director import Direction, Director, Outcome, address_families
from tests.unit.builders import node_status

MOUNT = MountSpec(name="live.mp3", source_password="dj-secret-1")


def status(name: str, listeners: int, **fields: object) -> NodeStatus:
    defaults = {"front_door_ports": (8000,), "mounts": ("live.mp3",), "listener_limit": 40}
    return node_status(name, listeners={"live.mp3": listeners}, **{**defaults, **fields})


def node_name(direction: Direction) -> str | None:
    return direction.node.name if direction.node is not None else None


def director(
    now: list[float],
    *statuses: NodeStatus,
    policy: str,
    no_redirect_user_agents: tuple[str, ...] = (),
) -> Director:
    chosen = Director("a", prediction_window=5, clock=lambda: now[0], rng=random.Random(7))
    settings = ClusterSettings(policy=policy, no_redirect_user_agents=no_redirect_user_agents)
    chosen.update({item.name: item for item in statuses}, frozenset(), settings)
    return chosen


def test_weighted_shares_follow_free_capacity() -> None:
    now = [0.0]
    chosen = director(
        now,
        status("a", 0),
        status("b", 10),
        status("c", 30),
        policy="listeners_score,weighted",
    )
    counts = Counter(
        (d.node.name if d.node else None)
        for d in (chosen.direct(MOUNT, 4, "x", listens=False) for _ in range(4000))
    )
    assert abs(counts["a"] / 4000 - 0.5) < 0.03, counts
    assert abs(counts["c"] / 4000 - 0.125) < 0.03, counts


def test_listeners_sent_count_until_the_next_report_or_the_window() -> None:
    now = [0.0]
    chosen = director(now, status("a", 0, listener_limit=2), policy="listeners_available,best")
    assert chosen.direct(MOUNT, 4, "x").outcome is Outcome.HERE
    assert chosen.direct(MOUNT, 4, "x").outcome is Outcome.HERE
    assert chosen.direct(MOUNT, 4, "x").outcome is Outcome.UNAVAILABLE
    assert chosen.direct(MOUNT, 4, "x", listens=False).outcome is Outcome.UNAVAILABLE
    now[0] = 6.0  # the sent listeners never showed up in a report
    assert chosen.direct(MOUNT, 4, "x").outcome is Outcome.HERE


def test_a_report_made_before_a_burst_does_not_forget_the_burst() -> None:
    """a is full. b had 30 of its 40 listeners; 5 are sent to it; b then counts 35 (five
    came from elsewhere, before these arrived) and its report reaches this node: b is
    full, and the next listener is refused rather than piled onto it."""
    now = [10.0]
    chosen = Director(
        "a", prediction_window=8, clock=lambda: now[0], wall_clock=lambda: now[0] + 5000
    )
    settings = ClusterSettings(policy="listeners_available,best")
    full = status("a", 40, counted_at=5009.0)
    chosen.update({"a": full, "b": status("b", 30, counted_at=5009.0)}, frozenset(), settings)
    for _ in range(5):
        assert node_name(chosen.direct(MOUNT, 4, "x")) == "b"
    counted_at = now[0] + 5000 + 0.2  # b counts 35 just after the five were sent
    now[0] += 0.5
    chosen.update({"a": full, "b": status("b", 35, counted_at=counted_at)}, frozenset(), settings)
    assert chosen.direct(MOUNT, 4, "x").outcome is Outcome.UNAVAILABLE
    now[0] += 2  # b's next report, counted well after the five: they are in it
    chosen.update(
        {"a": full, "b": status("b", 36, counted_at=now[0] + 5000)}, frozenset(), settings
    )
    assert node_name(chosen.direct(MOUNT, 4, "x")) == "b"


def test_draining_nodes_get_no_one_and_old_players_stay_here() -> None:
    now = [0.0]
    chosen = director(
        now,
        status("a", 0),
        status("b", 0),
        policy="random",
        no_redirect_user_agents=("OldPlayer",),
    )
    chosen.update(chosen._nodes, frozenset({"a"}), chosen._settings)
    directed = (chosen.direct(MOUNT, 4, "x").node for _ in range(20))
    assert {node.name if node else None for node in directed} == {"b"}
    assert chosen.direct(MOUNT, 4, "oldplayer/1.0").outcome is Outcome.UNAVAILABLE
    chosen.update(chosen._nodes, frozenset(), chosen._settings)
    assert {chosen.direct(MOUNT, 4, "my OldPlayer 2").outcome for _ in range(20)} == {Outcome.HERE}


def test_an_undrain_takes_effect_before_the_node_reports_it() -> None:
    """The drain keys decide: a node's own report of its draining lags one loop behind."""
    now = [0.0]
    chosen = director(now, status("a", 0, draining=True), policy="best")
    assert chosen.direct(MOUNT, 4, "x").outcome is Outcome.HERE


def test_families_of_addresses() -> None:
    assert address_families("192.0.2.1") == {4}
    assert address_families("2001:db8::1") == {6}
    assert address_families("radio.example.org") == {4, 6}


def test_what_the_director_keeps_between_requests_is_remade_by_each_update() -> None:
    """The candidates and directions kept per kind of request follow the next view: a node
    drained, a node gone and a node whose address changed."""
    now = [0.0]
    chosen = director(now, status("a", 0), status("b", 0), policy="listeners_score,best")
    assert chosen.direct(MOUNT, 4, "x").outcome is Outcome.HERE  # a and b tie: a by name
    chosen.update(chosen._nodes, frozenset({"a"}), chosen._settings)
    direction = chosen.direct(MOUNT, 4, "x")
    assert direction.outcome is Outcome.REDIRECT
    assert direction.node is not None
    assert direction.node.name == "b"
    moved = status("b", 0, address="192.0.2.99")
    chosen.update({"a": chosen._nodes["a"], "b": moved}, frozenset({"a"}), chosen._settings)
    moved_direction = chosen.direct(MOUNT, 4, "x")
    assert moved_direction.node is not None
    assert moved_direction.node.listener_address == "192.0.2.99"
    chosen.update({"a": chosen._nodes["a"]}, frozenset({"a"}), chosen._settings)
    assert chosen.direct(MOUNT, 4, "x").outcome is Outcome.UNAVAILABLE
