"""The etcd endpoints a client uses: the configured ones first, then the members etcd
lists (an agent whose own member died moves on to the others)."""

from __future__ import annotations

import pytest

from radioagent.store.endpoints import endpoint_from_url, index_after_change, merged_endpoints


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("https://10.0.0.2:2379", "10.0.0.2:2379"),
        ("http://127.0.0.1:32001", "127.0.0.1:32001"),
        ("https://[2001:db8::2]:2379", "[2001:db8::2]:2379"),
        ("https://node2.example.org:2379", "node2.example.org:2379"),
        ("https://10.0.0.2", None),  # no port: not guessed
        ("unix://localhost:2379", None),
        ("https://:2379", None),
        ("https://10.0.0.2:99999", None),
        ("not a url", None),
    ],
)
def test_a_member_client_url_becomes_an_endpoint_or_nothing(url: str, endpoint: str | None) -> None:
    assert endpoint_from_url(url) == endpoint


def test_configured_endpoints_stay_first_and_members_follow_once() -> None:
    merged = merged_endpoints(
        ["127.0.0.1:2379"],
        ["https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.1:2379", "bad"],
    )
    assert merged == ("127.0.0.1:2379", "10.0.0.1:2379", "10.0.0.2:2379")
    assert merged_endpoints(["a:1", "a:1"], []) == ("a:1",)


def test_after_a_change_the_current_endpoint_stays_unless_it_is_gone() -> None:
    endpoints = ("127.0.0.1:2379", "10.0.0.3:2379")
    assert index_after_change("10.0.0.3:2379", endpoints) == 1
    assert index_after_change("10.0.0.2:2379", endpoints) is None
