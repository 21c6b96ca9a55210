"""What the agent accepts from its order process: every message checked, a failure named."""

from __future__ import annotations

import pytest

from radioagent.acme.protocol import (
    AcmeOrderError,
    ChallengeToPublish,
    account_document,
    account_from,
    challenges_from,
    line,
    message_from,
)
from radioagent.acme.state import AcmeAccount


def test_messages_round_trip_and_carry_what_was_asked_for() -> None:
    account = AcmeAccount("https://ca.example/dir", "https://ca.example/acct/7", '{"kty": "RSA"}')
    sent = line({"account": account_document(account)})
    assert sent.endswith(b"\n")
    assert account_from(message_from(sent, "account")["account"]) == account
    challenge = ChallengeToPublish("dns-01", "a.example", "tok", "_acme-challenge.a.example", "v")
    message = message_from(line({"key_pem": "K", "challenges": [vars(challenge)]}), "challenges")
    assert challenges_from(message["challenges"]) == (challenge,)
    assert account_document(None) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "ended before sending its chain"),
        (b"not json\n", "sent no JSON"),
        (b"[1]\n", "sent b'\\[1"),
        (b'{"error": "the CA could not validate a.example"}\n', "could not validate a.example"),
        (b'{"account": {}}\n', "not its chain"),
    ],
)
def test_a_message_that_is_not_the_one_expected_fails_the_order(raw: bytes, reason: str) -> None:
    with pytest.raises(AcmeOrderError, match=reason):
        message_from(raw, "chain")


@pytest.mark.parametrize(
    "document",
    [
        None,
        [{"kind": "dns-01"}],
        [
            {
                "kind": "tls-alpn-01",
                **dict.fromkeys(("identifier", "token", "publish_name", "publish_value"), "x"),
            }
        ],
    ],
)
def test_malformed_challenges_fail_the_order(document: object) -> None:
    with pytest.raises(AcmeOrderError):
        challenges_from(document)
    with pytest.raises(AcmeOrderError, match="no usable account"):
        account_from({"uri": "x"})
