"""What a certificate says, and whether the front door may serve it: expired, not yet
valid, and foreign certificates are refused with the reason."""

from __future__ import annotations

import datetime

import pytest

from radioagent.certfacts import CertificateProblem, covers, read_facts, serving_problems
from tests.harness.pki import dated_certificate

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def pem(names: list[str], days: int = 90) -> bytes:
    not_after = START + datetime.timedelta(days=days)
    return dated_certificate("test", names, START.timestamp(), not_after.timestamp())[0]


def test_the_facts_are_the_names_and_the_validity() -> None:
    facts = read_facts(pem(["Stream.Example.org", "*.stream.example.org"]))
    assert facts.names == ("stream.example.org", "*.stream.example.org")
    assert facts.not_before == START.timestamp()
    assert facts.lifetime == 90 * 86400
    assert facts.issuer == "CN=test"


def test_something_that_is_not_a_pem_certificate_is_a_problem() -> None:
    with pytest.raises(CertificateProblem, match="not a PEM certificate"):
        read_facts(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


def test_a_wildcard_covers_exactly_one_label() -> None:
    names = ("stream.example.org", "*.stream.example.org")
    assert covers(names, "node1.stream.example.org")
    assert covers(names, "STREAM.example.org.")
    assert not covers(names, "a.node1.stream.example.org")
    assert not covers(names, "example.org")
    assert not covers(("*.stream.example.org",), "stream.example.org")


def test_expired_early_and_foreign_certificates_are_refused_with_the_reason() -> None:
    facts = read_facts(pem(["stream.example.org", "*.stream.example.org"], days=10))
    during = START.timestamp() + 86400
    assert serving_problems(facts, "node1.stream.example.org", during) == []
    assert serving_problems(facts, None, during) == []
    assert serving_problems(facts, "node1.stream.example.org", facts.not_after) == [
        "it expired at 2026-01-11 00:00:00 UTC"
    ]
    assert serving_problems(facts, "node1.stream.example.org", START.timestamp() - 1) == [
        "it is valid only from 2026-01-01 00:00:00 UTC"
    ]
    assert serving_problems(facts, "node1.other.org", during) == [
        "it is for stream.example.org, *.stream.example.org, not for https_name node1.other.org"
    ]
