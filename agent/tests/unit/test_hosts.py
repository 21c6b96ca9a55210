"""Hosts in URLs: an IPv6 address in brackets, everything else as it is."""

from __future__ import annotations

import pytest

from radioagent.hosts import host_port, url_host, valid_host


@pytest.mark.parametrize(
    ("host", "in_url"),
    [
        ("::1", "[::1]"),
        ("2001:db8::7", "[2001:db8::7]"),
        ("[::1]", "[::1]"),  # already bracketed: not twice
        ("192.0.2.1", "192.0.2.1"),
        ("radio.example", "radio.example"),
    ],
)
def test_a_host_in_a_url_has_ipv6_addresses_in_brackets(host: str, in_url: str) -> None:
    assert url_host(host) == in_url


def test_an_authority_puts_the_port_after_the_brackets() -> None:
    assert host_port("::1", 8000) == "[::1]:8000"
    assert host_port("192.0.2.1", 80) == "192.0.2.1:80"


@pytest.mark.parametrize(
    "header", ["radio.example", "radio.example:8000", "192.0.2.1", "[::1]:8000", "[2001:db8::1]"]
)
def test_plain_host_headers_may_go_into_a_playlist(header: str) -> None:
    assert valid_host(header) == header


@pytest.mark.parametrize(
    "header", ["", "::1", "radio.example/x", "a b", "radio.example:80:80", "[::1]x", "<x>"]
)
def test_other_host_headers_may_not(header: str) -> None:
    assert valid_host(header) is None
