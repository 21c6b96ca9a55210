"""HTTP-01 challenges: what a token and its key authorization must look like, the
records in etcd, and the answer any front door gives the CA."""

from __future__ import annotations

import pytest

from radioagent.acme.http01 import challenge_answer, key_authorization_problem
from radioagent.store.keys import KeyLayout
from radioagent.store.records import KeyValue, decode_cluster_state

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
THUMBPRINT = "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
KEY_AUTHORIZATION = f"{TOKEN}.{THUMBPRINT}"
LAYOUT = KeyLayout("/radio")


def test_a_key_authorization_is_the_token_a_dot_and_a_thumbprint() -> None:
    assert key_authorization_problem(TOKEN, KEY_AUTHORIZATION) is None


@pytest.mark.parametrize(
    ("token", "key_authorization"),
    [
        ("short", f"short.{THUMBPRINT}"),  # under 128 bits
        (TOKEN + "/x", f"{TOKEN}/x.{THUMBPRINT}"),  # not base64url
        (TOKEN, f"{TOKEN}{THUMBPRINT}"),  # no dot
        (TOKEN, f"other{TOKEN}.{THUMBPRINT}"),  # another token's
        (TOKEN, f"{TOKEN}.{THUMBPRINT[:-1]}"),  # not a SHA-256 thumbprint
        (TOKEN, f"{TOKEN}.{THUMBPRINT}\n"),
    ],
)
def test_anything_else_is_refused(token: str, key_authorization: str) -> None:
    assert key_authorization_problem(token, key_authorization) is not None


def test_any_front_door_answers_a_known_token_and_nothing_else() -> None:
    challenges = {TOKEN: KEY_AUTHORIZATION}
    prefix = "/.well-known/acme-challenge/"
    assert challenge_answer(f"{prefix}{TOKEN}", challenges) == KEY_AUTHORIZATION
    assert challenge_answer(f"{prefix}{TOKEN[:-1]}", challenges) is None
    assert challenge_answer(f"{prefix}../{TOKEN}", challenges) is None
    assert challenge_answer(prefix, challenges) is None


def test_challenges_in_etcd_are_decoded_and_a_bad_one_is_skipped_and_named() -> None:
    entries = [
        KeyValue(LAYOUT.acme_challenge(TOKEN), KEY_AUTHORIZATION.encode(), 3, 3, 77),
        KeyValue(LAYOUT.acme_challenge("x" * 20), b"not.it", 3, 3, 77),
    ]
    state = decode_cluster_state(LAYOUT, entries, 9)
    assert state.acme_challenges == {TOKEN: KEY_AUTHORIZATION}
    assert len(state.problems) == 1
    assert state.problems[0].startswith(f"{LAYOUT.acme_challenge('x' * 20)}: skipped")
    assert LAYOUT.wakes_the_loop(LAYOUT.acme_challenge(TOKEN))
