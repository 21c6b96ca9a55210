"""The cluster's zone: who is in the answer and in what order, node names, NS, SOA,
REFUSED outside the zone."""

from __future__ import annotations

import dataclasses

import pytest

from radioagent.acme.state import AcmeState, TxtChallenge
from radioagent.coordination.state import ClusterState, LeaderRecord
from radioagent.dns.zone import Rcode, Soa, ZoneView, answer, zone_view
from radioagent.settings import ClusterSettings
from tests.unit.builders import node_status

ZONE = "stream.example.org"
NAMESERVERS = {"node1": "192.0.2.1", "node2": "192.0.2.2"}
NOW = 1_700_000_000.0


def cluster(**nodes: dict) -> ClusterState:
    return ClusterState(
        revision=77,
        leader=None,
        nodes={name: node_status(name, **fields) for name, fields in nodes.items()},
        settings=ClusterSettings(policy="listeners_available,listeners_score,best"),
    )


def view_of(state: ClusterState, max_records: int = 4) -> ZoneView:
    return zone_view(ZONE, state, NAMESERVERS, ttl=20, max_records=max_records, now=NOW)


def addresses(name: str, rtype: str, state: ClusterState, max_records: int = 4) -> list[str]:
    decided = answer(view_of(state, max_records), name, rtype)
    assert decided.rcode is Rcode.NOERROR
    return [str(record.value) for record in decided.answers]


def test_the_zone_answers_the_nodes_that_take_listeners_least_loaded_first() -> None:
    state = cluster(
        node1={"address": "192.0.2.1", "listeners": {"a": 50}, "listener_limit": 100},
        node2={"address": "192.0.2.2", "listeners": {"a": 10}, "listener_limit": 100},
        node3={"address": "192.0.2.3", "listeners": {"a": 100}, "listener_limit": 100},  # full
        node4={"address": "192.0.2.4", "icecast_up": False},
        node5={"address": "2001:db8::5"},
    )
    assert addresses(ZONE, "A", state) == ["192.0.2.2", "192.0.2.1"]
    assert addresses(ZONE, "AAAA", state) == ["2001:db8::5"]


def test_a_draining_node_leaves_the_answer_but_keeps_its_name() -> None:
    state = cluster(node1={"address": "192.0.2.1"}, node2={"address": "192.0.2.2"})
    drained = ClusterState(**{**state.__dict__, "draining": frozenset({"node2"})})
    assert addresses(ZONE, "A", drained) == ["192.0.2.1"]
    assert addresses(f"node2.{ZONE}", "A", drained) == ["192.0.2.2"]


def test_at_most_max_records_are_given() -> None:
    state = cluster(**{f"n{i}": {"address": f"192.0.2.{i}"} for i in range(1, 9)})
    assert len(addresses(ZONE, "A", state, max_records=3)) == 3


def test_node_names_come_from_their_status_or_the_nameservers_list() -> None:
    state = cluster(node3={"address": "192.0.2.3", "public_address": "198.51.100.3"})
    assert addresses(f"node3.{ZONE}", "A", state) == ["198.51.100.3"]
    assert addresses(f"node1.{ZONE}", "A", state) == ["192.0.2.1"]  # down, but a nameserver
    missing = answer(view_of(state), f"node9.{ZONE}", "A")
    assert missing.rcode is Rcode.NXDOMAIN
    assert [record.rtype for record in missing.authority] == ["SOA"]


def test_ns_and_soa_name_the_nameservers_with_glue() -> None:
    view = view_of(cluster(node1={"address": "192.0.2.1"}))
    ns = answer(view, ZONE, "NS")
    assert [record.value for record in ns.answers] == [f"node1.{ZONE}", f"node2.{ZONE}"]
    assert [(record.name, record.value) for record in ns.additional] == [
        (f"node1.{ZONE}", "192.0.2.1"),
        (f"node2.{ZONE}", "192.0.2.2"),
    ]
    (soa,) = answer(view, ZONE, "SOA").answers
    assert soa.value == Soa(f"node1.{ZONE}", f"hostmaster.{ZONE}", 77, 20)


@pytest.mark.parametrize("name", ["example.org", "org", "", "other.test", f"x{ZONE}"])
def test_names_outside_the_zone_are_refused(name: str) -> None:
    decided = answer(view_of(cluster()), name, "A")
    assert decided.rcode is Rcode.REFUSED
    assert not decided.authoritative
    assert not decided.answers


def test_a_type_the_name_lacks_is_an_empty_answer_with_the_soa() -> None:
    state = cluster(node1={"address": "192.0.2.1"})
    for name in (ZONE, f"node1.{ZONE}"):
        decided = answer(view_of(state), name, "MX")
        assert (decided.rcode, decided.answers) == (Rcode.NOERROR, ())
        assert [record.rtype for record in decided.authority] == ["SOA"]
    empty = answer(view_of(cluster()), ZONE, "A")  # nobody takes listeners
    assert (empty.rcode, empty.answers) == (Rcode.NOERROR, ())


def test_before_the_first_state_or_cut_off_the_zone_is_servfail_not_empty() -> None:
    state = cluster(node1={"address": "192.0.2.1"})
    unready = zone_view(ZONE, state, NAMESERVERS, ttl=20, max_records=4, now=NOW, ready=False)
    for name in (ZONE, f"node1.{ZONE}", f"nope.{ZONE}"):
        decided = answer(unready, name, "A")
        assert (decided.rcode, decided.answers, decided.authoritative) == (
            Rcode.SERVFAIL,
            (),
            False,
        )
    assert answer(unready, "example.com", "A").rcode is Rcode.REFUSED


def test_when_no_node_qualifies_every_node_not_draining_is_given() -> None:
    state = cluster(
        node1={"address": "192.0.2.1", "icecast_up": False},
        node2={"address": "192.0.2.2", "listeners": {"a": 5}, "listener_limit": 5},
        node3={"address": "192.0.2.3", "icecast_up": False},
    )
    drained = ClusterState(**{**state.__dict__, "draining": frozenset({"node3"})})
    assert addresses(ZONE, "A", drained) == ["192.0.2.1", "192.0.2.2"]


def test_a_nameservers_name_keeps_the_inventory_address_of_the_glue() -> None:
    state = cluster(node1={"address": "10.0.0.1", "public_address": "198.51.100.1"})
    assert addresses(f"node1.{ZONE}", "A", state) == ["192.0.2.1"]
    assert addresses(ZONE, "A", state) == ["198.51.100.1"]  # listeners go where it says


def test_an_acme_dns01_challenge_is_answered_as_txt_while_it_is_in_etcd() -> None:
    challenge_name = f"_acme-challenge.{ZONE}"
    state = dataclasses.replace(
        cluster(node1={"address": "192.0.2.1"}),
        acme=AcmeState(
            dns_challenges={
                "token-b": TxtChallenge(challenge_name, "digest-for-the-wildcard"),
                "token-a": TxtChallenge(challenge_name, "digest-for-the-zone"),
            }
        ),
    )
    decided = answer(view_of(state), challenge_name, "TXT")
    assert decided.rcode is Rcode.NOERROR
    assert [(r.rtype, r.ttl, r.value) for r in decided.answers] == [
        ("TXT", 0, "digest-for-the-wildcard"),
        ("TXT", 0, "digest-for-the-zone"),
    ]
    other_type = answer(view_of(state), challenge_name, "A")
    assert (other_type.rcode, other_type.answers) == (Rcode.NOERROR, ())
    gone = answer(view_of(cluster(node1={"address": "192.0.2.1"})), challenge_name, "TXT")
    assert gone.rcode is Rcode.NXDOMAIN


def test_a_node_that_does_not_yet_relay_what_the_leader_has_on_air_is_left_out() -> None:
    """Back from a reboot, a node serves the holding audio until its relays are up: DNS
    leaves it out until it carries live every mount live on the leader."""
    settled = {"a.mp3": NOW - 60, "b.mp3": NOW - 60}
    state = cluster(
        node1={"address": "192.0.2.1", "live_mounts": ("a.mp3", "b.mp3"), "air_changed": settled},
        node2={"address": "192.0.2.2", "live_mounts": ("a.mp3", "b.mp3")},
        node3={"address": "192.0.2.3", "live_mounts": ("a.mp3",)},  # b.mp3 not yet
    )
    led = dataclasses.replace(state, leader=LeaderRecord("node1", 7, 1))
    assert addresses(ZONE, "A", led) == ["192.0.2.1", "192.0.2.2"]
    assert addresses(f"node3.{ZONE}", "A", led) == ["192.0.2.3"]  # its own name stays
    # No leader to say what is on air: no one is left out.
    assert addresses(ZONE, "A", state) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]


def test_a_mount_that_just_came_on_air_does_not_shrink_the_answer_to_the_leader() -> None:
    """Every relay takes a loop or two to carry a mount that just went live on the
    leader: until it has been live there a while, nobody is left out for it."""
    fresh = {"a.mp3": NOW - 60, "b.mp3": NOW - 2}
    state = cluster(
        node1={"address": "192.0.2.1", "live_mounts": ("a.mp3", "b.mp3"), "air_changed": fresh},
        node2={"address": "192.0.2.2", "live_mounts": ("a.mp3",)},
        node3={"address": "192.0.2.3", "live_mounts": ()},  # nothing live: left out
    )
    led = dataclasses.replace(state, leader=LeaderRecord("node1", 7, 1))
    assert addresses(ZONE, "A", led) == ["192.0.2.1", "192.0.2.2"]
