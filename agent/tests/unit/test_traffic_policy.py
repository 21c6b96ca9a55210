"""The traffic policy engine: filters, scorers, choices and predictive utilization."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from radioagent.settings import POLICY_FILTERS, POLICY_SCORERS
from radioagent.traffic.policy import (
    FILTERS,
    SCORERS,
    NodeLoad,
    Request,
    always_eligible,
    choose_node,
    parse_policy,
)
from radioagent.traffic.prediction import BATCH_SECONDS, SEND_TO_ARRIVAL_SECONDS, SentSinceReport
from radioagent.validation import ValidationError

REQUEST = Request(mount="live.mp3", ip_family=4, stream_kbps=128)


def node(name: str, **fields: object) -> NodeLoad:
    values: dict = {
        "name": name,
        "ip_families": frozenset({4}),
        "icecast_up": True,
        "draining": False,
        "mounts": frozenset({"live.mp3"}),
        "listeners": 0,
        "listener_limit": 100,
        "bandwidth_kbps": 0.0,
        "bandwidth_limit_kbps": None,
    }
    values.update(fields)
    return NodeLoad(**values)


def test_the_engine_knows_every_filter_and_scorer_the_settings_accept() -> None:
    assert set(FILTERS) == set(POLICY_FILTERS)
    assert set(SCORERS) == set(POLICY_SCORERS)


def test_policy_strings_parse_into_their_parts() -> None:
    policy = parse_policy("listeners_available,bandwidth_available,listeners_score,weighted")
    assert policy.filters == ("listeners_available", "bandwidth_available")
    assert policy.scorers == ("listeners_score",)
    assert policy.choice == "weighted"
    with pytest.raises(ValidationError, match="'nearest' is not a filter"):
        parse_policy("nearest,best")


@pytest.mark.parametrize(
    "excluded",
    [
        node("down", icecast_up=False),
        node("draining", draining=True),
        node("no-mount", mounts=frozenset({"other.mp3"})),
        node("ipv6", ip_families=frozenset({6})),
    ],
)
def test_always_applied_filters_exclude_unusable_nodes(excluded: NodeLoad) -> None:
    assert not always_eligible(excluded, REQUEST)
    policy = parse_policy("random")
    assert choose_node(policy, [excluded], REQUEST, random.Random(1)) is None
    assert choose_node(policy, [excluded, node("ok")], REQUEST, random.Random(1)) == "ok"


def test_a_full_node_is_filtered_counting_listeners_sent_since_its_report() -> None:
    policy = parse_policy("listeners_available,best")
    nearly_full = node("a", listeners=98, sent_since_report=2)
    assert choose_node(policy, [nearly_full], REQUEST, random.Random(1)) is None
    bandwidth = parse_policy("bandwidth_available,best")
    thin = node("b", bandwidth_kbps=800, bandwidth_limit_kbps=1000, sent_since_report=1)
    assert choose_node(bandwidth, [thin], REQUEST, random.Random(1)) is None  # 800+128+128


def test_best_picks_the_least_loaded_and_breaks_ties_by_name() -> None:
    policy = parse_policy("listeners_score,best")
    nodes = [node("c", listeners=10), node("a", listeners=50), node("b", listeners=10)]
    assert choose_node(policy, nodes, REQUEST, random.Random(1)) == "b"


def test_a_burst_spreads_because_sent_listeners_count_before_the_next_report() -> None:
    policy = parse_policy("listeners_available,listeners_score,best")
    nodes = {name: node(name, listeners=0) for name in ("a", "b", "c")}
    sent = SentSinceReport(window=60)
    chosen = []
    for _ in range(30):  # 30 listeners arrive between two reports
        loads = [replace(load, sent_since_report=sent.sent(name)) for name, load in nodes.items()]
        target = choose_node(policy, loads, REQUEST, random.Random(1))
        assert target is not None
        sent.on_sent(target)
        chosen.append(target)
    assert Counter(chosen) == {"a": 10, "b": 10, "c": 10}


def test_a_burst_is_kept_in_a_few_batches_and_counted_in_full_until_the_window() -> None:
    """At any rate a node's sends take a few batches of memory, not one entry each."""
    now = [0.0]
    sent = SentSinceReport(window=5, clock=lambda: now[0])
    for index in range(10_000):  # 10,000 listeners in one second
        now[0] = index / 10_000
        sent.on_sent("a")
    assert sent.sent("a") == 10_000
    assert len(sent._batches["a"]) <= 1 / BATCH_SECONDS + 1
    now[0] = 0.5 + 5  # the sends of the first half second are past the window
    assert 4_000 <= sent.sent("a") <= 5_000 + BATCH_SECONDS * 10_000
    now[0] = 1.0 + 5 + BATCH_SECONDS
    assert sent.sent("a") == 0


def test_a_new_report_without_a_count_time_resets_what_was_sent_to_that_node() -> None:
    """A report from an agent that does not say when it counted: the old rule."""
    sent = SentSinceReport(window=10, clock=lambda: 0.0)
    sent.on_report("a", "five listeners", None)
    sent.on_sent("a")
    sent.on_sent("a")
    sent.on_report("a", "five listeners", None)  # the same report again: nothing new
    assert sent.sent("a") == 2
    sent.on_report("a", "seven listeners", None)
    assert sent.sent("a") == 0


def test_a_report_forgets_only_the_sends_it_counted() -> None:
    """Sends well before the report's count are in it; a burst sent after the count (or
    just before it) is not, and still counts: the report of a node under load must not
    make it look empty to the next burst."""
    now, wall = [100.0], [5000.0]  # the monotonic and the wall clock move together

    def tick(seconds: float) -> None:
        now[0] += seconds
        wall[0] += seconds

    sent = SentSinceReport(window=30, clock=lambda: now[0], wall_clock=lambda: wall[0])
    sent.on_sent("a")  # at wall 5000
    tick(2)
    sent.on_sent("a")  # at wall 5002
    counted_at = wall[0] + 0.5  # the node counts half a second after the second send
    tick(3)
    burst_at = wall[0]
    for _ in range(3):  # a burst after the count
        sent.on_sent("a")
    tick(1)
    sent.on_report("a", "two listeners", counted_at)
    assert sent.sent("a") == 4  # the first send forgotten; the second within the margin
    assert counted_at - 5002 < SEND_TO_ARRIVAL_SECONDS
    tick(1)
    sent.on_report("a", "three listeners", counted_at + 2)
    assert sent.sent("a") == 3  # the second send is now well before a count: forgotten
    sent.on_report("a", "five listeners", burst_at + 0.5)
    assert sent.sent("a") == 3  # the burst is within the margin of this count
    sent.on_report("a", "six listeners", burst_at + SEND_TO_ARRIVAL_SECONDS + 0.1)
    assert sent.sent("a") == 0


def test_a_report_that_did_not_change_forgets_nothing() -> None:
    now = [0.0]
    sent = SentSinceReport(window=30, clock=lambda: now[0], wall_clock=lambda: now[0])
    sent.on_report("a", "five listeners", 0.0)
    sent.on_sent("a")
    now[0] = 10.0
    sent.on_report("a", "five listeners", 10.0)  # counted later, but the listener is not in it
    assert sent.sent("a") == 1


def test_sent_listeners_stop_counting_after_the_window() -> None:
    """A listener that never connected must not hold a node's slot forever when its
    report does not change."""
    now = [0.0]
    sent = SentSinceReport(window=5, clock=lambda: now[0])
    sent.on_sent("a")
    now[0] = 3.0
    sent.on_sent("a")
    assert sent.sent("a") == 2
    now[0] = 6.0
    assert sent.sent("a") == 1
    now[0] = 9.0
    assert sent.sent("a") == 0


def test_weighted_sends_in_proportion_to_free_capacity() -> None:
    policy = parse_policy("listeners_score,weighted")
    nodes = [node("idle", listeners=0), node("busy", listeners=75)]
    rng = random.Random(42)
    counts = Counter(choose_node(policy, nodes, REQUEST, rng) for _ in range(4000))
    # Scores 1.0 and 0.25: expect 80 % / 20 %.
    assert 0.77 < counts["idle"] / 4000 < 0.83


node_strategy = st.builds(
    NodeLoad,
    name=st.sampled_from(["a", "b", "c", "d"]),
    ip_families=st.sampled_from([frozenset({4}), frozenset({6}), frozenset({4, 6})]),
    icecast_up=st.booleans(),
    draining=st.booleans(),
    mounts=st.sampled_from([frozenset(), frozenset({"live.mp3"})]),
    listeners=st.integers(0, 200),
    listener_limit=st.one_of(st.none(), st.integers(1, 200)),
    bandwidth_kbps=st.floats(0, 50000),
    bandwidth_limit_kbps=st.one_of(st.none(), st.integers(1, 50000)),
    sent_since_report=st.integers(0, 50),
)


@given(node_strategy, st.integers(0, 500))
def test_a_load_with_sent_listeners_is_the_load_with_only_that_count_changed(
    load: NodeLoad, sent: int
) -> None:
    assert load.with_sent(sent) == replace(load, sent_since_report=sent)
    assert load.with_sent(sent).predicted_listeners == load.listeners + sent


@given(
    st.lists(node_strategy, max_size=6),
    st.sampled_from(
        [
            "random",
            "listeners_available,listeners_score,weighted",
            "bandwidth_available,bandwidth_score,best",
            "listeners_available,bandwidth_available,listeners_score,bandwidth_score,weighted",
        ]
    ),
    st.integers(0, 2**32),
)
def test_the_choice_is_always_an_eligible_node_or_none_when_there_is_none(
    nodes: list[NodeLoad], policy_text: str, seed: int
) -> None:
    policy = parse_policy(policy_text)
    chosen = choose_node(policy, nodes, REQUEST, random.Random(seed))
    eligible = [
        candidate
        for candidate in nodes
        if always_eligible(candidate, REQUEST)
        and all(FILTERS[name](candidate, REQUEST) for name in policy.filters)
    ]
    if not eligible:
        assert chosen is None
    else:
        assert chosen in {candidate.name for candidate in eligible}
