"""The store's records and key layout, without etcd."""

from __future__ import annotations

import json

import pytest

from radioagent.acme.state import (
    AcmeAccount,
    StoredCertificate,
    TxtChallenge,
    encode_account,
    encode_certificate,
    encode_txt_challenge,
)
from radioagent.coordination.state import Handover
from radioagent.store.keys import KeyLayout
from radioagent.store.records import (
    KeyValue,
    decode_cluster_state,
    decode_handover,
    encode_drain_mark,
    encode_handover,
    encode_known_node,
    stored_settings_document,
)
from radioagent.validation import ValidationError

LAYOUT = KeyLayout("/radio")


@pytest.mark.parametrize(
    "handover",
    [Handover(7, "node1", "node3"), Handover(12, "node2", None)],
)
def test_a_handover_request_decodes_to_what_was_encoded(handover: Handover) -> None:
    assert decode_handover(encode_handover(handover).encode()) == handover


@pytest.mark.parametrize(
    "value",
    [
        b"{not json",
        b"[]",
        b'{"epoch": "7", "from": "node1"}',
        b'{"epoch": true, "from": "node1"}',
        b'{"epoch": 7}',
        b'{"epoch": 7, "from": "node1", "to": 3}',
    ],
)
def test_a_malformed_handover_request_is_refused(value: bytes) -> None:
    with pytest.raises(ValidationError, match="not a handover request"):
        decode_handover(value)


def test_a_malformed_handover_is_skipped_and_named_not_fatal() -> None:
    entries = [KeyValue(LAYOUT.handover, b"{", 5, 5, 0)]
    state = decode_cluster_state(LAYOUT, entries, 9)
    assert state.handover is None
    (problem,) = state.problems
    assert problem.startswith(f"{LAYOUT.handover}: skipped, not a handover request")


def test_a_drain_mark_marks_the_node_whatever_it_holds() -> None:
    entries = [
        KeyValue(LAYOUT.drain("node2"), encode_drain_mark(1_700_000_000).encode(), 3, 3, 0),
        KeyValue(LAYOUT.drain("node3"), b"{}", 4, 4, 0),
    ]
    assert decode_cluster_state(LAYOUT, entries, 9).draining == {"node2", "node3"}
    assert json.loads(encode_drain_mark(5)) == {"since": 5}


def test_a_transcoder_claim_names_its_owner() -> None:
    entries = [
        KeyValue(LAYOUT.transcoder("low.mp3"), b"node2", 3, 3, 77),
        KeyValue(LAYOUT.transcoder("bad.mp3"), b"\xff", 3, 3, 77),
    ]
    state = decode_cluster_state(LAYOUT, entries, 9)
    assert state.transcoders == {"low.mp3": "node2"}
    assert state.problems == (
        f"{LAYOUT.transcoder('bad.mp3')}: skipped, transcoder owner is not UTF-8",
    )


def test_stored_settings_are_returned_as_stored_once_valid() -> None:
    assert stored_settings_document(None) is None
    assert stored_settings_document(b'{"policy": "best"}') == {"policy": "best"}
    with pytest.raises(ValidationError, match="policy"):
        stored_settings_document(b'{"policy": "loudest"}')


def test_only_changes_the_loop_acts_on_wake_it() -> None:
    assert LAYOUT.wakes_the_loop(LAYOUT.leader)
    assert LAYOUT.wakes_the_loop(LAYOUT.handover)
    assert LAYOUT.wakes_the_loop(LAYOUT.mount("live.mp3"))
    assert LAYOUT.wakes_the_loop(LAYOUT.drain("node2"))
    assert not LAYOUT.wakes_the_loop(LAYOUT.node("node2"))  # agents rewrite their own
    assert not KeyLayout("/radio2").wakes_the_loop(LAYOUT.leader)


def test_layouts_of_two_prefixes_never_share_a_key() -> None:
    other = KeyLayout("/radio-b")
    assert not LAYOUT.leader.startswith(other.root)
    assert not other.leader.startswith(LAYOUT.root)


def test_a_handover_read_from_etcd_carries_its_revision_for_the_compare_and_set() -> None:
    request = encode_handover(Handover(7, "node1", "node3")).encode()
    state = decode_cluster_state(LAYOUT, [KeyValue(LAYOUT.handover, request, 40, 42, 9)], 50)
    assert state.handover == Handover(7, "node1", "node3", revision=42)


def test_a_leader_name_that_is_not_utf8_still_fences_but_is_named() -> None:
    entries = [KeyValue(LAYOUT.leader, b"\xffnode", 12, 12, 77)]
    state = decode_cluster_state(LAYOUT, entries, 50)
    assert state.leader is not None
    assert (state.leader.epoch, state.leader.lease) == (12, 77)
    assert state.problems == (f"{LAYOUT.leader}: leader name is not UTF-8",)


def test_the_certificate_and_its_orders_decode_and_keys_never_show() -> None:
    stored = StoredCertificate("CHAIN", "SECRET-KEY", ("a.example",), 1.0, 2.0, "node2", 1.5)
    account = AcmeAccount("https://ca.example/dir", "https://ca.example/acct/1", "SECRET-JWK")
    txt = TxtChallenge("_acme-challenge.a.example", "digest")
    entries = [
        KeyValue(LAYOUT.certificate, encode_certificate(stored).encode(), 3, 30, 0),
        KeyValue(LAYOUT.acme_account, encode_account(account).encode(), 4, 4, 0),
        KeyValue(LAYOUT.acme_claim, b"node3", 5, 5, 99),
        KeyValue(LAYOUT.acme_renewal_request, b'{"at": 1}', 6, 6, 0),
        KeyValue(LAYOUT.acme_txt_challenge("tok"), encode_txt_challenge(txt).encode(), 7, 7, 98),
        KeyValue(LAYOUT.acme_txt_challenge("bad"), b'{"name": "a.example", "value": "x"}', 8, 8, 0),
    ]
    state = decode_cluster_state(LAYOUT, entries, 9)
    acme = state.acme
    assert (acme.certificate, acme.certificate_revision) == (stored, 30)
    assert (acme.account, acme.ordering, acme.renewal_requested) == (account, "node3", 6)
    assert acme.dns_challenges == {"tok": txt}
    assert acme.txt_records() == {"_acme-challenge.a.example": ("digest",)}
    assert state.problems == (
        f"{LAYOUT.acme_txt_challenge('bad')}: skipped, "
        "dns-01 challenge: not an _acme-challenge TXT record",
    )
    assert "SECRET" not in repr(state)
    assert LAYOUT.wakes_the_loop(LAYOUT.certificate)
    assert LAYOUT.wakes_the_loop(LAYOUT.acme_claim)


@pytest.mark.parametrize("value", [b"[]", b"{", b'{"chain_pem": "x"}', b"\xff"])
def test_a_malformed_certificate_record_is_skipped_and_named(value: bytes) -> None:
    state = decode_cluster_state(LAYOUT, [KeyValue(LAYOUT.certificate, value, 3, 3, 0)], 9)
    assert state.acme.certificate is None
    (problem,) = state.problems
    assert problem.startswith(f"{LAYOUT.certificate}: skipped, certificate")


def test_a_known_node_says_since_when_it_is_down_or_is_skipped() -> None:
    entries = [
        KeyValue(LAYOUT.known_node("node1"), encode_known_node(None).encode(), 3, 3, 0),
        KeyValue(LAYOUT.known_node("node2"), encode_known_node(1_700_000_000.5).encode(), 3, 4, 0),
        KeyValue(LAYOUT.known_node("node3"), b'{"down_since": "yesterday"}', 3, 5, 0),
        KeyValue(LAYOUT.known_node("node4"), b"[", 3, 6, 0),
    ]
    state = decode_cluster_state(LAYOUT, entries, 9)
    assert state.known == {"node1": None, "node2": 1_700_000_000.5}
    assert [problem.split(":")[0] for problem in state.problems] == [
        LAYOUT.known_node("node3"),
        LAYOUT.known_node("node4"),
    ]
    # Down: known, without a status (here no node has one).
    assert state.down_nodes() == {"node1": None, "node2": 1_700_000_000.5}
