"""What the agent and its order process (order.py, run as a child) say to each other: JSON
lines on the child's stdin and stdout. The ACME library (python3-acme, requests,
pyOpenSSL: 7.6 MB) lives only in the child, for the minute an order takes, so the agent's
own memory stays where it was. Pure: the messages and their checks.

    agent -> child   {"directory_url", "account", "email", "ca_file", "names", "challenge",
                      "timeout"}
    child -> agent   {"account": {...}}                   the account it used or registered
    child -> agent   {"key_pem", "challenges": [...]}     what the cluster must publish
    agent -> child   "go"                                 published: ask the CA to validate
    child -> agent   {"chain": "..."}                     the certificate
    child -> agent   {"error": "..."}                     at any step, then it exits
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from radioagent.acme.state import CHALLENGE_TYPES, AcmeAccount

GO = "go"


class AcmeOrderError(Exception):
    """The order failed; the message says where and the CA's reason."""


@dataclass(frozen=True)
class ChallengeToPublish:
    kind: str  # dns-01 or http-01
    identifier: str  # the name it proves
    token: str  # base64url, the CA's
    publish_name: str  # dns-01: the TXT record's name; http-01: the identifier
    publish_value: str  # dns-01: the TXT value; http-01: the key authorization


def account_document(account: AcmeAccount | None) -> dict[str, str] | None:
    if account is None:
        return None
    return {"directory_url": account.directory_url, "uri": account.uri, "key": account.key_json}


def account_from(document: Any) -> AcmeAccount:
    if not isinstance(document, dict) or not all(
        isinstance(document.get(key), str) for key in ("directory_url", "uri", "key")
    ):
        raise AcmeOrderError("the order process sent no usable account")
    return AcmeAccount(document["directory_url"], document["uri"], document["key"])


def challenges_from(document: Any) -> tuple[ChallengeToPublish, ...]:
    fields = ("kind", "identifier", "token", "publish_name", "publish_value")
    if not isinstance(document, list):
        raise AcmeOrderError("the order process sent no challenge list")
    challenges = []
    for item in document:
        if not isinstance(item, dict) or not all(isinstance(item.get(f), str) for f in fields):
            raise AcmeOrderError(f"the order process sent a malformed challenge: {item!r}")
        if item["kind"] not in CHALLENGE_TYPES:
            raise AcmeOrderError(f"the order process sent a {item['kind']!r} challenge")
        challenges.append(ChallengeToPublish(*(item[f] for f in fields)))
    return tuple(challenges)


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def message_from(raw: bytes, expected: str) -> dict[str, Any]:
    """A child's message that carries `expected`; AcmeOrderError for its error, for an
    end of output, or for anything else."""
    if not raw:
        raise AcmeOrderError(f"the order process ended before sending its {expected}")
    try:
        message = json.loads(raw)
    except ValueError as error:
        raise AcmeOrderError(f"the order process sent no JSON: {raw[:200]!r}") from error
    if not isinstance(message, dict):
        raise AcmeOrderError(f"the order process sent {raw[:200]!r}")
    if isinstance(message.get("error"), str):
        raise AcmeOrderError(message["error"])
    if expected not in message:
        raise AcmeOrderError(f"the order process sent {sorted(message)}, not its {expected}")
    return message
