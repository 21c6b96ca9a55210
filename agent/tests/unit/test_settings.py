"""Cluster settings: the policy string and timing rules."""

from __future__ import annotations

import json

import pytest

from radioagent.config import Limits, Timing
from radioagent.coordination.election import Leadership, Role, must_hand_over, should_campaign
from radioagent.coordination.state import ClusterState, Handover, LeaderRecord
from radioagent.model import NodeStatus
from radioagent.settings import (
    ClusterSettings,
    policy_problems,
    settings_from_json,
    with_setting,
)
from radioagent.validation import ValidationError
from tests.unit.builders import node_status


@pytest.mark.parametrize(
    "policy",
    [
        "listeners_available,listeners_score,weighted",
        "best",
        "bandwidth_available,random",
        "listeners_available, bandwidth_available, bandwidth_score, best",
    ],
)
def test_autoradio_policies_are_accepted(policy: str) -> None:
    assert policy_problems(policy) == []


def test_unknown_filter_is_named_with_the_known_ones() -> None:
    (problem,) = policy_problems("listeners_available,fastest,weighted")
    assert problem.startswith("policy: 'fastest' is not a filter, scorer or choice (known: ")


@pytest.mark.parametrize("policy", ["listeners_score", "weighted,best", "best,listeners_score"])
def test_a_policy_ends_with_exactly_one_choice(policy: str) -> None:
    (problem,) = policy_problems(policy)
    assert "must end with exactly one choice" in problem


def test_setting_values_are_validated_and_timing_kept_consistent() -> None:
    settings = with_setting(ClusterSettings(), "timing.ttl", "20")
    assert settings.timing is not None
    assert settings.timing.ttl == 20
    with pytest.raises(ValidationError, match="exceeds ttl"):
        with_setting(settings, "timing.retry_timeout", "10")
    with pytest.raises(ValidationError, match="unknown setting"):
        with_setting(settings, "colour", "blue")
    with pytest.raises(ValidationError, match="proxy_everything"):
        with_setting(settings, "proxy_everything", "maybe")
    agents = with_setting(settings, "no_redirect_user_agents", "[Winamp, 'VLC/1']")
    assert agents.no_redirect_user_agents == ("Winamp", "VLC/1")


@pytest.mark.parametrize("value", ["0", "-5", "86401", "ten", "none", "1.5"])
def test_dead_air_seconds_must_be_a_whole_number_of_seconds_up_to_a_day(value: str) -> None:
    with pytest.raises(ValidationError, match="dead_air_seconds"):
        with_setting(ClusterSettings(), "dead_air_seconds", value)


@pytest.mark.parametrize("value", ["0", "3601", "twenty", "2.5"])
def test_the_dns_ttl_is_a_whole_number_of_seconds_up_to_an_hour(value: str) -> None:
    with pytest.raises(ValidationError, match="dns_ttl_seconds"):
        with_setting(ClusterSettings(), "dns_ttl_seconds", value)
    assert with_setting(ClusterSettings(), "dns_ttl_seconds", "60").dns_ttl_seconds == 60
    assert settings_from_json(b"{}").dns_ttl_seconds == 20


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hls_target_seconds", "0"),
        ("hls_target_seconds", "11"),
        ("hls_target_seconds", "2.5"),
        ("hls_window", "2"),
        ("hls_window", "21"),
        ("hls_window", "six"),
    ],
)
def test_hls_segments_and_windows_stay_within_what_players_handle(key: str, value: str) -> None:
    with pytest.raises(ValidationError, match=key):
        with_setting(ClusterSettings(), key, value)


def test_hls_defaults_are_4_s_segments_6_to_a_playlist_and_are_kept_in_etcd() -> None:
    assert (ClusterSettings().hls_target_seconds, ClusterSettings().hls_window) == (4, 6)
    changed = with_setting(
        with_setting(ClusterSettings(), "hls_target_seconds", "6"), "hls_window", "8"
    )
    assert settings_from_json(changed.to_json()) == changed


def test_dead_air_seconds_defaults_to_30_and_is_kept_in_etcd() -> None:
    assert ClusterSettings().dead_air_seconds == 30
    settings = with_setting(ClusterSettings(), "dead_air_seconds", "120")
    assert settings_from_json(settings.to_json()).dead_air_seconds == 120
    assert settings_from_json(b"{}").dead_air_seconds == 30  # written by an older radioctl


def test_settings_a_newer_radioctl_wrote_are_read_without_its_new_keys() -> None:
    newer = json.loads(with_setting(ClusterSettings(), "policy", "best").to_json())
    newer["some_future_setting"] = {"on": True}
    assert settings_from_json(json.dumps(newer)) == with_setting(
        ClusterSettings(), "policy", "best"
    )


def test_settings_round_trip_and_garbage_is_refused() -> None:
    settings = with_setting(ClusterSettings(), "policy", "best")
    assert settings_from_json(settings.to_json()) == settings
    assert settings_from_json(None) == ClusterSettings()
    with pytest.raises(ValidationError):
        settings_from_json(b'{"policy": "nonsense"}')
    with pytest.raises(ValidationError):
        settings_from_json(b"[1]")


def test_limits_and_timing_are_unset_until_an_operator_sets_them() -> None:
    flat = ClusterSettings().flat()
    assert flat["limits.max_listeners"] is None
    assert flat["timing.ttl"] is None
    own = Timing(ttl=6, loop_wait=1, retry_timeout=2)
    assert ClusterSettings().timing_for(own) == own
    assert ClusterSettings().limits_for(Limits(max_listeners=5)) == Limits(max_listeners=5)


def test_a_nodes_own_limit_wins_over_the_clusters() -> None:
    settings = with_setting(ClusterSettings(), "limits.max_listeners", "100")
    settings = with_setting(settings, "limits.bandwidth_kbps", "20000")
    assert settings.limits_for(Limits()) == Limits(max_listeners=100, bandwidth_kbps=20000)
    assert settings.limits_for(Limits(max_listeners=8)) == Limits(
        max_listeners=8, bandwidth_kbps=20000
    )
    unset = with_setting(settings, "limits.max_listeners", "none")
    assert unset.limits == Limits(bandwidth_kbps=20000)
    for bad in ("0", "-3", "lots", "1.5"):
        with pytest.raises(ValidationError, match=r"limits\.max_listeners"):
            with_setting(settings, "limits.max_listeners", bad)


def test_one_timing_key_set_brings_the_other_two_and_none_hands_timing_back() -> None:
    settings = with_setting(ClusterSettings(), "timing.loop_wait", "1")
    assert settings.timing == Timing(ttl=8, loop_wait=1, retry_timeout=3)
    assert settings.timing_for(Timing(ttl=6, loop_wait=1, retry_timeout=2)) == settings.timing
    assert with_setting(settings, "timing", "none").timing is None
    with pytest.raises(ValidationError, match="only 'none'"):
        with_setting(settings, "timing", "20")
    stored = settings_from_json(settings.to_json())
    assert stored == settings


def present(*names: str) -> dict[str, NodeStatus]:
    return {name: node_status(name, epoch=7) for name in names}


def state(
    leader: LeaderRecord | None, handover: Handover | None, nodes: tuple[str, ...] = ()
) -> ClusterState:
    return ClusterState(revision=5, leader=leader, handover=handover, nodes=present(*nodes))


def test_during_a_handover_only_its_target_campaigns() -> None:
    handover = Handover(epoch=7, from_node="node1", to="node3")
    waiting = state(None, handover, nodes=("node1", "node2", "node3"))
    assert should_campaign(waiting, my_lease=1, my_name="node3")
    assert not should_campaign(waiting, my_lease=1, my_name="node2")
    assert not should_campaign(waiting, my_lease=1, my_name="node1")


def test_when_the_handover_target_is_gone_the_others_campaign() -> None:
    handover = Handover(epoch=7, from_node="node1", to="node3")
    target_gone = state(None, handover, nodes=("node1", "node2"))
    assert should_campaign(target_gone, my_lease=1, my_name="node2")
    assert not should_campaign(target_gone, my_lease=1, my_name="node1")


def test_a_handover_without_target_excludes_only_the_leader_that_left() -> None:
    handover = Handover(epoch=7, from_node="node1", to=None)
    assert should_campaign(state(None, handover), my_lease=1, my_name="node2")
    assert not should_campaign(state(None, handover), my_lease=1, my_name="node1")


def test_only_the_leader_of_the_requested_epoch_hands_over() -> None:
    handover = Handover(epoch=7, from_node="node1", to=None)
    current = state(LeaderRecord("node1", 7, 11), handover)
    assert must_hand_over(current, Leadership(Role.LEADER, "node1", 7))
    assert not must_hand_over(current, Leadership(Role.LEADER, "node1", 8))
    assert not must_hand_over(current, Leadership(Role.REPLICA, "node1", 7))
