"""When the cluster orders a certificate, and for which names: the same decision on every
node, from etcd's ACME state and the clock."""

from __future__ import annotations

from radioagent.acme.renewal import next_try, order_reason, renew_at, should_order, wanted_names
from radioagent.acme.state import AcmeFailure, AcmeState, StoredCertificate

DAY = 86400.0
ZONE = "stream.example.org"
WILDCARD = (ZONE, f"*.{ZONE}")


def certificate(names: tuple[str, ...] = WILDCARD, issued: float = 0.0) -> StoredCertificate:
    return StoredCertificate("chain", "key", names, issued, issued + 90 * DAY, "node1", issued)


def test_dns01_asks_for_the_zone_and_its_wildcard_http01_for_every_nodes_name() -> None:
    assert wanted_names(ZONE, "dns-01", ["node2.x", "node1.x"]) == WILDCARD
    assert wanted_names(ZONE, "http-01", [f"node2.{ZONE}", f"node1.{ZONE}", ZONE]) == (
        ZONE,
        f"node1.{ZONE}",
        f"node2.{ZONE}",
    )


def test_a_certificate_is_ordered_when_there_is_none_or_it_misses_a_name() -> None:
    assert order_reason(AcmeState(), WILDCARD, 0) == "the cluster has no certificate yet"
    narrow = AcmeState(certificate((ZONE, f"node1.{ZONE}")))
    reason = order_reason(narrow, (ZONE, f"node1.{ZONE}", f"node3.{ZONE}"), DAY)
    assert reason == f"the certificate does not cover node3.{ZONE}"
    # a wildcard covers a node added later
    assert order_reason(AcmeState(certificate()), (ZONE, f"node9.{ZONE}"), DAY) is None


def test_renewal_comes_at_two_thirds_of_the_lifetime() -> None:
    state = AcmeState(certificate(issued=1000.0))
    assert renew_at(certificate(issued=1000.0)) == 1000.0 + 60 * DAY
    assert order_reason(state, WILDCARD, 1000.0 + 60 * DAY - 1) is None
    assert order_reason(state, WILDCARD, 1000.0 + 60 * DAY) == (
        "two thirds of the certificate's lifetime have passed"
    )


def test_an_operators_request_orders_at_once() -> None:
    state = AcmeState(certificate(), renewal_requested=41)
    assert order_reason(state, WILDCARD, DAY) == (
        "an operator asked for a renewal (radioctl cert renew)"
    )


def test_nobody_orders_while_another_node_does_or_before_the_wait_after_a_failure() -> None:
    assert should_order(AcmeState(ordering="node2"), WILDCARD, 0) is None
    failed = AcmeState(failure=AcmeFailure(1000.0, "node2", "the CA could not validate", 1900.0))
    assert next_try(failed) == 1900.0
    assert should_order(failed, WILDCARD, 1899.0) is None
    assert should_order(failed, WILDCARD, 1900.0) == "the cluster has no certificate yet"
    assert should_order(AcmeState(certificate()), WILDCARD, DAY) is None
