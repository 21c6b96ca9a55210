"""Failsafe on quorum loss: signed pings and answers, the rules for acknowledging and
holding, the link's bookkeeping, and what a held node may act as in the cycle."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import pytest

from radioagent.config import keepalive_interval
from radioagent.coordination.cycle import cut_off, plan_cycle
from radioagent.coordination.election import Leadership, Role
from radioagent.coordination.failsafe import (
    MAX_CLOCK_SKEW_S,
    PATH,
    FailsafeRefused,
    Peer,
    Ping,
    acknowledged,
    answer_body,
    cut_off_for_failsafe,
    may_take,
    parse_ping,
    peers,
    ping_target,
    refusal,
    round_holds,
    should_ping,
    still_held,
)
from radioagent.failsafe_link import FailsafeLink, Followed
from tests.unit.builders import node_status
from tests.unit.test_cycle import (
    ME,
    NOW,
    TIMING,
    facts,
    icecast_of,
    leading_state,
    overdue_facts,
    state,
)

KEY_TEXT = "failsafe-test-key-0123456789abcdef"
KEY = KEY_TEXT.encode()
OTHER_KEY = b"another-clusters-key-0123456789abc"
WALL = 1_700_000_000.0  # the wall clock, in seconds
PING = Ping("node1", 7, "node2", int(WALL * 1000), held=True)
NOBODY = Leadership(Role.DETACHED)  # a detached node that knows no leader
FOLLOWING_NODE1 = Leadership(Role.REPLICA, "node1", 7)


def query(ping: Ping = PING, key: bytes = KEY) -> str:
    return ping_target(key, ping).split("?", 1)[1]


def with_fields(**changes: str | list[str] | None) -> str:
    """PING's query with fields replaced (a list: repeated), or removed (None)."""
    fields = parse_qs(query())
    for name, value in changes.items():
        if value is None:
            del fields[name]
        else:
            fields[name] = [value] if isinstance(value, str) else value
    return urlencode(fields, doseq=True)


def refused(query: str, me: str = "node2", now_wall: float = WALL) -> FailsafeRefused:
    with pytest.raises(FailsafeRefused) as raised:
        parse_ping(query, KEY, me, now_wall)
    return raised.value


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def link(monotonic: float = 500.0) -> FailsafeLink:
    return FailsafeLink(KEY_TEXT, "node2", clock=Clock(monotonic), wall_clock=Clock(WALL))


# --- pings -----------------------------------------------------------------------------------


def test_a_ping_round_trips_through_its_target() -> None:
    target = ping_target(KEY, PING)
    assert target.startswith(f"{PATH}?")
    assert parse_ping(query(), KEY, "node2", WALL) == PING


@pytest.mark.parametrize("off_by", [-MAX_CLOCK_SKEW_S, MAX_CLOCK_SKEW_S])
def test_a_ping_within_the_clock_skew_is_taken(off_by: float) -> None:
    assert parse_ping(query(), KEY, "node2", WALL + off_by) == PING


@pytest.mark.parametrize(
    ("query_", "me", "now_wall", "reason"),
    [
        (query(key=OTHER_KEY), "node2", WALL, "not signed"),
        (with_fields(epoch="8"), "node2", WALL, "not signed"),  # the mac is PING's
        (with_fields(mac="0" * 64), "node2", WALL, "not signed"),
        (with_fields(mac="abc"), "node2", WALL, "not signed"),
        (query(), "node3", WALL, "for node2, not for node3"),
        (query(), "node2", WALL + MAX_CLOCK_SKEW_S + 0.01, "off our clock"),  # too old
        (query(), "node2", WALL - MAX_CLOCK_SKEW_S - 0.01, "off our clock"),  # from the future
        (query(), "node2", WALL + 60, "off our clock"),  # a replay a minute later
    ],
)
def test_a_forged_misdirected_or_stale_ping_is_forbidden(
    query_: str, me: str, now_wall: float, reason: str
) -> None:
    error = refused(query_, me, now_wall)
    assert error.status == 403
    assert reason in error.reason


@pytest.mark.parametrize(
    "query_",
    [
        "",
        with_fields(mac=None),
        with_fields(epoch=None),
        f"{query()}&extra=1",
        with_fields(leader=["node1", "node1"]),
        with_fields(at=[str(PING.at_ms), str(PING.at_ms)]),
        with_fields(leader=""),
        with_fields(epoch="7x"),
        with_fields(epoch="-7"),
        with_fields(epoch=""),
        with_fields(epoch="\u0667"),  # a digit, not an ASCII one
        with_fields(epoch="1" * 19),
        with_fields(at="1.7e12"),
        with_fields(at="now"),
        query(Ping("n" * 64, 7, "node2", PING.at_ms)),  # signed, but no node name
        query(Ping("node1", 7, "n" * 64, PING.at_ms)),
    ],
)
def test_a_malformed_ping_is_a_bad_request(query_: str) -> None:
    assert refused(query_).status == 400


@pytest.mark.parametrize(
    "query_",
    [
        f"{query()}&extra=1&more=2",  # parse_qs: ValueError, max_num_fields exceeded
        with_fields(mac="\u00e9" * 64),  # compare_digest: TypeError on a non-ASCII str
    ],
)
def test_a_hostile_query_is_refused_rather_than_raising(query_: str) -> None:
    assert refused(query_).status in (400, 403)


# --- acknowledging ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("leadership", "is_cut_off", "reason"),
    [
        (NOBODY, False, "still reaches etcd"),
        (Leadership(Role.LEADER, "node2", 8), True, "this node leads"),
        (Leadership(Role.REPLICA, "node3", 7), True, "follows node3"),
        (Leadership(Role.REPLICA, "node1", 8), True, "newer leadership (epoch 8)"),
        (Leadership(Role.DETACHED, None, 8), True, "newer leadership (epoch 8)"),
        (NOBODY, True, None),
        (FOLLOWING_NODE1, True, None),
        (Leadership(Role.REPLICA, "node1", 6), True, None),
        (Leadership(Role.DETACHED, None, 7), True, None),
    ],
)
def test_refusal_says_why_a_node_does_not_acknowledge(
    leadership: Leadership, is_cut_off: bool, reason: str | None
) -> None:
    why_not = refusal(PING, leadership, is_cut_off)
    if reason is None:
        assert why_not is None
    else:
        assert why_not is not None
        assert reason in why_not


def tampered(**changes: object) -> bytes:
    answer = json.loads(answer_body(KEY, "node2", PING, None))
    answer.update(changes)
    return json.dumps(answer).encode()


def test_only_the_exact_signed_acknowledgement_counts() -> None:
    assert acknowledged(KEY, "node2", PING, answer_body(KEY, "node2", PING, None))


@pytest.mark.parametrize(
    ("node", "ping", "body"),
    [
        ("node2", PING, answer_body(KEY, "node2", PING, "this node leads")),
        ("node2", PING, tampered(mac="0" * 64)),
        ("node2", PING, tampered(acknowledged=1)),
        ("node2", PING, answer_body(OTHER_KEY, "node2", PING, None)),
        ("node2", PING, answer_body(KEY, "node3", PING, None)),  # node3's, for node2
        ("node3", PING, tampered(node="node3")),  # node2's mac
        ("node3", PING, answer_body(KEY, "node2", PING, None)),
        ("node2", Ping("node1", 7, "node2", PING.at_ms + 1), answer_body(KEY, "node2", PING, None)),
        ("node2", Ping("node1", 8, "node2", PING.at_ms), answer_body(KEY, "node2", PING, None)),
        ("node2", PING, b"not json"),
        ("node2", PING, b"\xff\xfe"),
        ("node2", PING, b"[true]"),
        ("node2", PING, b'"acknowledged"'),
        ("node2", PING, tampered(mac=None)),
    ],
)
def test_anything_else_is_no_acknowledgement(node: str, ping: Ping, body: bytes) -> None:
    assert not acknowledged(KEY, node, ping, body)


@pytest.mark.parametrize(
    "body",
    [
        tampered(mac="\u00e9"),  # compare_digest: TypeError on a non-ASCII str
        b"[" * 2000 + b"]" * 2000,  # json: RecursionError
    ],
)
def test_a_hostile_answer_is_no_acknowledgement_rather_than_an_error(body: bytes) -> None:
    assert not acknowledged(KEY, "node2", PING, body)


# --- rounds ----------------------------------------------------------------------------------


def test_peers_are_every_other_node_of_the_view_sorted() -> None:
    view = state(
        nodes={
            "node3": node_status("node3", address="10.0.0.3", front_door_ports=(80, 8000)),
            "node1": node_status("node1", address="10.0.0.1", front_door_ports=(80,)),
            "node4": node_status("node4", address="10.0.0.4"),  # no front door: port 0
            "node2": node_status("node2", address="10.0.0.2", front_door_ports=(8080,)),
        }
    )
    assert peers(view, "node1") == (
        Peer("node2", "10.0.0.2", 8080),
        Peer("node3", "10.0.0.3", 80),
        Peer("node4", "10.0.0.4", 0),
    )
    assert peers(None, "node1") == ()


ASKED = (Peer("node2", "10.0.0.2", 80), Peer("node3", "10.0.0.3", 80))


@pytest.mark.parametrize(
    ("answers", "holds"),
    [
        ({"node2": True, "node3": True}, True),
        ({"node2": True, "node3": True, "node9": False}, True),  # not asked
        ({"node2": True}, False),  # node3's answer missing
        ({"node2": True, "node3": False}, False),
        ({}, False),
    ],
)
def test_a_round_holds_only_when_every_node_asked_acknowledged(
    answers: dict[str, bool], holds: bool
) -> None:
    assert round_holds(answers, ASKED) is holds


@pytest.mark.parametrize(
    ("now", "since", "held"),
    [
        (100.0, None, False),
        (100.0, 100.0, True),
        (100.0 + TIMING.retry_timeout - 0.01, 100.0, True),
        (100.0 + TIMING.retry_timeout, 100.0, False),
        (100.0 + TIMING.retry_timeout + 1, 100.0, False),
    ],
)
def test_a_round_holds_for_less_than_retry_timeout(
    now: float, since: float | None, held: bool
) -> None:
    assert still_held(now, since, TIMING) is held


@pytest.mark.parametrize(
    ("silent_for", "pings", "is_cut_off"),
    [
        (1.5, False, False),  # a keepalive due: its answer is on the way
        (2.2, False, False),
        (2.25, True, False),  # half an interval late
        (2.9, True, False),
        (3.0, True, True),
    ],
)
def test_a_leader_pings_once_a_keepalive_is_late_and_a_node_is_cut_off_after_two(
    silent_for: float, pings: bool, is_cut_off: bool
) -> None:
    # TIMING's keepalive interval: retry_timeout / 4 = 1.5 s
    assert should_ping(NOW, NOW - silent_for, TIMING) is pings
    assert cut_off_for_failsafe(NOW, NOW - silent_for, TIMING) is is_cut_off


# --- the link --------------------------------------------------------------------------------


def test_an_acknowledged_ping_is_followed_on_the_agent_clock() -> None:
    answering = link(monotonic=500.0)
    status, body = answering.answer(query(), FOLLOWING_NODE1, cut_off=True)
    assert status == 200
    assert acknowledged(KEY, "node2", PING, body)
    assert answering.followed == Followed("node1", 7, 500.0, PING.at_ms)
    assert answering.answers == Counter(acknowledged=1)


def test_a_refused_ping_is_answered_signed_and_not_followed() -> None:
    answering = link()
    status, body = answering.answer(query(), Leadership(Role.REPLICA, "node3", 7), cut_off=True)
    assert status == 200
    assert json.loads(body)["reason"] == "this node follows node3"
    assert not acknowledged(KEY, "node2", PING, body)
    assert answering.followed is None
    assert answering.answers == Counter(refused=1)


@pytest.mark.parametrize(
    ("query_", "status"), [(query(key=OTHER_KEY), 403), (with_fields(epoch="x"), 400)]
)
def test_an_invalid_ping_is_counted_and_changes_nothing(query_: str, status: int) -> None:
    answering = link()
    answered, body = answering.answer(query_, NOBODY, cut_off=True)
    assert answered == status
    assert "error" in json.loads(body)
    assert answering.followed is None
    assert answering.answers == Counter(invalid=1)


@pytest.mark.parametrize(
    ("leadership", "now", "held"),
    [
        (FOLLOWING_NODE1, 500.0 + TIMING.retry_timeout - 0.01, True),
        (FOLLOWING_NODE1, 500.0 + TIMING.retry_timeout, False),
        (Leadership(Role.REPLICA, "node3", 8), 501.0, False),  # follows another leader now
        (Leadership(Role.DETACHED, None, 7), 501.0, False),
        (Leadership(Role.DETACHED, "node1", 7), 501.0, False),
        (Leadership(Role.LEADER, "node2", 8), 501.0, False),
    ],
)
def test_a_replica_is_held_by_its_own_followed_leader_for_retry_timeout(
    leadership: Leadership, now: float, held: bool
) -> None:
    answering = link(monotonic=500.0)
    answering.answer(query(), FOLLOWING_NODE1, cut_off=True)
    assert answering.replica_held(now, leadership, TIMING) is held


def test_a_replica_that_acknowledged_nothing_is_not_held() -> None:
    answering = link(monotonic=500.0)
    answering.answer(query(), FOLLOWING_NODE1, cut_off=False)  # refused
    assert not answering.replica_held(500.0, FOLLOWING_NODE1, TIMING)


def test_a_leader_is_held_from_its_last_complete_round_until_the_round_ends() -> None:
    leading = link()
    assert not leading.leader_held(100.0, TIMING)
    leading.held_since = 100.0
    assert leading.leader_held(100.0 + TIMING.retry_timeout - 0.01, TIMING)
    assert not leading.leader_held(100.0 + TIMING.retry_timeout, TIMING)
    leading.end_round()
    assert leading.held_since is None
    assert not leading.leader_held(100.5, TIMING)


# --- the cycle -------------------------------------------------------------------------------

LEADING = Leadership(Role.LEADER, "node1", 7)
CUT_OFF_AT = NOW - TIMING.retry_timeout  # etcd last answered retry_timeout ago


@pytest.mark.parametrize("held", [False, True])
def test_a_node_held_by_the_failsafe_is_not_cut_off(held: bool) -> None:
    assert cut_off(facts(last_etcd_contact=CUT_OFF_AT, failsafe_held=held), TIMING) is not held


@pytest.mark.parametrize(("held", "role"), [(False, Role.DETACHED), (True, Role.LEADER)])
def test_a_cut_off_leader_held_by_the_failsafe_keeps_acting_as_leader(
    held: bool, role: Role
) -> None:
    held_facts = facts(last_etcd_contact=CUT_OFF_AT, leadership=LEADING, failsafe_held=held)
    plan = plan_cycle(ME, leading_state(), held_facts, fresh=False)
    assert plan.acting.role is role
    assert icecast_of(plan).leading is held
    assert plan.status.role == role.value
    assert (plan.transcoder_leader is not None) is held


@pytest.mark.parametrize("held", [False, True])
def test_a_cut_off_replica_held_by_the_failsafe_keeps_its_leader(held: bool) -> None:
    following = Leadership(Role.REPLICA, "node2", 7)
    held_facts = facts(last_etcd_contact=CUT_OFF_AT, leadership=following, failsafe_held=held)
    plan = plan_cycle(ME, state(), held_facts, fresh=False)
    assert plan.acting == following
    leader = plan.transcoder_leader
    assert (leader.name if leader is not None else None) == ("node2" if held else None)


def test_nobody_to_ask_holds_nothing() -> None:
    assert not round_holds({}, ())


def test_a_replayed_ping_is_refused_and_does_not_extend_the_following() -> None:
    answering = link(monotonic=500.0)
    assert answering.answer(query(), FOLLOWING_NODE1, cut_off=True)[0] == 200
    status, body = answering.answer(query(), FOLLOWING_NODE1, cut_off=True)
    assert status == 200
    assert not acknowledged(KEY, "node2", PING, body)
    assert json.loads(body)["reason"] == "not newer than a ping already acknowledged"
    assert answering.followed == Followed("node1", 7, 500.0, PING.at_ms)
    newer = Ping("node1", 7, "node2", PING.at_ms + 1, held=True)
    assert acknowledged(
        KEY, "node2", newer, answering.answer(query(newer), FOLLOWING_NODE1, cut_off=True)[1]
    )


SETTLE = TIMING.retry_timeout + 2 * keepalive_interval(TIMING)


@pytest.mark.parametrize(
    ("acknowledged_ago", "allowed"),
    [(None, True), (0.0, False), (SETTLE - 0.01, False), (SETTLE, True)],
)
def test_nothing_is_taken_while_a_hold_may_rest_on_this_nodes_word(
    acknowledged_ago: float | None, allowed: bool
) -> None:
    acknowledged_at = None if acknowledged_ago is None else NOW - acknowledged_ago
    assert may_take(NOW, NOW - 1, acknowledged_at, TIMING) is allowed


def test_an_acknowledgement_is_kept_on_disk_for_the_next_life(short_tmp: Path) -> None:
    state = short_tmp / "acknowledged"
    first = FailsafeLink(
        KEY_TEXT, "node2", clock=Clock(500.0), wall_clock=Clock(WALL), state_file=state
    )
    assert first.acknowledged_at is None  # no previous life
    assert first.answer(query(), FOLLOWING_NODE1, cut_off=True)[0] == 200
    assert float(state.read_text()) == WALL
    # Restarted 2 s later (wall clock), on a fresh monotonic clock.
    second = FailsafeLink(
        KEY_TEXT, "node2", clock=Clock(10.0), wall_clock=Clock(WALL + 2), state_file=state
    )
    assert second.acknowledged_at == pytest.approx(8.0)


def test_a_node_that_cannot_keep_its_acknowledgement_does_not_give_it(short_tmp: Path) -> None:
    state = short_tmp / "missing-directory" / "acknowledged"
    answering = FailsafeLink(
        KEY_TEXT, "node2", clock=Clock(500.0), wall_clock=Clock(WALL), state_file=state
    )
    assert answering.acknowledged_at == 500.0  # unknown: as if it had just acknowledged
    status, body = answering.answer(query(), FOLLOWING_NODE1, cut_off=True)
    assert status == 200
    assert not acknowledged(KEY, "node2", PING, body)
    assert json.loads(body)["reason"] == "this node cannot keep its acknowledgement on disk"


def test_an_unreadable_previous_acknowledgement_counts_as_just_given(short_tmp: Path) -> None:
    state = short_tmp / "acknowledged"
    state.write_text("not a time\n")
    answering = FailsafeLink(
        KEY_TEXT, "node2", clock=Clock(500.0), wall_clock=Clock(WALL), state_file=state
    )
    assert answering.acknowledged_at == 500.0


@pytest.mark.parametrize(
    ("failsafe_on", "acknowledged_ago", "campaigns"),
    [
        (False, 0.5, True),  # no failsafe in the cluster: nothing to wait out
        (True, 0.5, False),
        (True, SETTLE, True),
    ],
)
def test_with_the_failsafe_a_node_that_just_acknowledged_does_not_campaign_yet(
    failsafe_on: bool, acknowledged_ago: float, campaigns: bool
) -> None:
    plan = plan_cycle(
        ME,
        state(None),
        facts(failsafe_on=failsafe_on, acknowledged_at=NOW - acknowledged_ago),
        fresh=True,
    )
    assert plan.moves.campaign is campaigns


def test_a_ping_from_a_leader_not_yet_holding_is_acknowledged_but_not_followed() -> None:
    answering = link(monotonic=500.0)
    not_held = Ping("node1", 7, "node2", PING.at_ms, held=False)
    status, body = answering.answer(query(not_held), FOLLOWING_NODE1, cut_off=True)
    assert status == 200
    assert acknowledged(KEY, "node2", not_held, body)
    assert answering.acknowledged_at == 500.0
    assert answering.followed is None
    assert not answering.replica_held(500.0, FOLLOWING_NODE1, TIMING)


def test_the_held_flag_is_signed() -> None:
    flipped = query(Ping("node1", 7, "node2", PING.at_ms, held=False)).replace("held=0", "held=1")
    assert refused(flipped).status == 403


def test_peers_include_known_nodes_that_are_down_with_no_way_to_reach_them() -> None:
    view = state(known={"node1": None, "node2": None, "node3": None, "node4": 1000.0})
    assert [peer for peer in peers(view, "node1") if peer.name == "node4"] == [Peer("node4", "", 0)]


@pytest.mark.parametrize(
    ("fields", "campaigns"),
    [
        ({}, True),
        # Held by the failsafe but in a gap: a hold never lets a node take anything.
        ({"failsafe_held": True, "last_etcd_contact": NOW - 15}, False),
        # A short gap without any acknowledgement: as without the failsafe.
        ({"last_etcd_contact": NOW - 2 * keepalive_interval(TIMING)}, True),
        ({"last_etcd_contact": NOW - TIMING.retry_timeout}, False),
        # Acknowledged a leader lately: it may still hold.
        ({"acknowledged_at": NOW - 1}, False),
        ({"acknowledged_at": NOW - TIMING.retry_timeout - 2 * keepalive_interval(TIMING)}, True),
    ],
)
def test_with_the_failsafe_nothing_is_taken_while_an_old_leader_may_hold(
    fields: dict[str, object], campaigns: bool
) -> None:
    values: dict[str, object] = {"failsafe_on": True, **fields}
    plan = plan_cycle(ME, state(None), facts(**values), fresh=True)
    assert plan.moves.campaign is campaigns


@pytest.mark.parametrize(("acknowledged_ago", "claims"), [(1.0, False), (3600.0, True)])
def test_with_the_failsafe_no_transcoder_is_claimed_while_an_old_leader_may_hold(
    acknowledged_ago: float, claims: bool
) -> None:
    plan = plan_cycle(
        ME,
        state(),
        overdue_facts(
            failsafe_on=True,
            acknowledged_at=NOW - acknowledged_ago,
        ),
        fresh=True,
    )
    assert plan.transcoders is not None
    assert (plan.transcoders.claim == "low.mp3") is claims
