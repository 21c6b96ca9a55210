"""Per-address bounds of the front door (frontdoor/limits.py): counts by address, IPv6 by
/64, the unbounded networks, and the lock-out after failed logins in a sliding window."""

from __future__ import annotations

import pytest

from radioagent.frontdoor import limits
from radioagent.frontdoor.limits import AddressBook, AddressLimits, Kind, address_key

BOUNDED = AddressLimits(
    connections=3, listeners=2, sources=1, failed_authentications=3, unlimited=()
)


def test_one_ipv6_client_is_its_slash_64_and_an_ipv4_one_its_address() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("not an address") == ""


@pytest.mark.parametrize("kind", list(Kind))
def test_each_kind_is_bounded_per_address_and_given_back(kind: Kind) -> None:
    book = AddressBook(BOUNDED)
    key = book.key("192.0.2.7")
    bound = BOUNDED.bound(kind)
    assert all(book.take(key, kind) for _ in range(bound))
    assert not book.take(key, kind)
    assert book.refused[kind] == 1
    assert book.take(book.key("192.0.2.8"), kind)  # another address has its own count
    book.give_back(key, kind)
    assert book.take(key, kind)
    assert book.open_count(key or "", kind) == bound


def test_the_unlimited_networks_are_not_counted() -> None:
    book = AddressBook(AddressLimits(connections=1, unlimited=("127.0.0.0/8", "::1/128")))
    assert book.key("127.0.0.5") is None
    assert book.key("::1") is None
    assert all(book.take(None, Kind.CONNECTION) for _ in range(100))
    assert book.key("192.0.2.1") == "192.0.2.1"


def test_a_handed_over_listener_is_counted_even_over_the_bound() -> None:
    book = AddressBook(BOUNDED)
    key = book.key("192.0.2.7")
    for _ in range(3):
        assert book.take(key, Kind.LISTENER, force=True)
    assert book.open_count("192.0.2.7", Kind.LISTENER) == 3
    assert not book.take(key, Kind.LISTENER)


def test_failed_logins_lock_the_address_out_until_the_window_has_passed() -> None:
    book = AddressBook(BOUNDED)  # 3 failures within 60 s
    key = book.key("192.0.2.7")
    book.failed(key, 100.0)
    book.failed(key, 110.0)
    assert book.locked_for(key, 111.0) == 0
    book.failed(key, 120.0)
    assert book.locked_for(key, 121.0) == pytest.approx(39.0)  # the first one's window
    assert book.locked_for(book.key("192.0.2.8"), 121.0) == 0  # others may still try
    # Sliding: once the first failure is out of the window, two remain: not locked.
    assert book.locked_for(key, 160.5) == 0
    book.failed(key, 161.0)
    assert book.locked_for(key, 162.0) == pytest.approx(8.0)  # now the 110 s one counts
    assert book.locked_for(key, 300.0) == 0
    assert book.locked_out == 2


def test_failures_are_remembered_for_a_bounded_number_of_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "MAX_REMEMBERED_ADDRESSES", 5)
    book = AddressBook(AddressLimits(failed_authentications=1, unlimited=()))
    for index in range(20):
        book.failed(f"192.0.2.{index}", 1.0)
    assert book.locked_for("192.0.2.19", 2.0) > 0
    assert book.locked_for("192.0.2.0", 2.0) == 0  # forgotten: the oldest went first
    assert len(book._failures) == 5
