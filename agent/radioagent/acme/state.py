"""The cluster's certificate and the ACME work around it, as kept in etcd: plain values and
their JSON, no etcd and no ACME library. The private keys (the certificate's, the ACME
account's) are fields that never show in a repr, so they reach no log."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from radioagent.validation import ValidationError

CHALLENGE_TYPES = ("dns-01", "http-01")


@dataclass(frozen=True)
class StoredCertificate:
    chain_pem: str  # the server's certificate first, then its issuers
    key_pem: str = field(repr=False)
    names: tuple[str, ...] = ()
    not_before: float = 0.0  # Unix time
    not_after: float = 0.0
    ordered_by: str = ""  # the node that ordered it
    ordered_at: float = 0.0


@dataclass(frozen=True)
class AcmeAccount:
    directory_url: str  # an account belongs to one CA
    uri: str  # its URL at the CA
    key_json: str = field(repr=False)  # the account's private key, as a JWK


@dataclass(frozen=True)
class AcmeFailure:
    at: float
    node: str
    error: str
    retry_at: float  # no node orders before (the failing node's acme.retry_seconds)


@dataclass(frozen=True)
class TxtChallenge:
    name: str  # _acme-challenge.<name>, lowercase, without the final dot
    value: str  # the key authorization's digest, base64url


@dataclass(frozen=True)
class AcmeState:
    certificate: StoredCertificate | None = None
    certificate_revision: int = 0  # its mod revision: an order replaces only what it saw
    account: AcmeAccount | None = None
    ordering: str | None = None  # the node that holds the claim to order now
    failure: AcmeFailure | None = None  # the last order that failed, since the last success
    renewal_requested: int | None = None  # the request's mod revision (radioctl cert renew)
    dns_challenges: dict[str, TxtChallenge] = field(default_factory=dict)  # token -> TXT

    def txt_records(self) -> dict[str, tuple[str, ...]]:
        """Name -> values: a zone and its wildcard share one _acme-challenge name."""
        records: dict[str, list[str]] = {}
        for challenge in self.dns_challenges.values():
            records.setdefault(challenge.name, []).append(challenge.value)
        return {name: tuple(sorted(values)) for name, values in records.items()}


def _document(value: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, ValueError) as error:
        raise ValidationError([f"{what} is not JSON"]) from error
    if not isinstance(document, dict):
        raise ValidationError([f"{what} is not a JSON object"])
    return document


def _fields(document: dict[str, Any], what: str, types: dict[str, type | tuple[type, ...]]) -> None:
    for name, kind in types.items():
        if not isinstance(document.get(name), kind):
            raise ValidationError([f"{what}: {name} missing or of the wrong type"])


def encode_certificate(certificate: StoredCertificate) -> str:
    return json.dumps(
        {
            "chain_pem": certificate.chain_pem,
            "key_pem": certificate.key_pem,
            "names": list(certificate.names),
            "not_before": certificate.not_before,
            "not_after": certificate.not_after,
            "ordered_by": certificate.ordered_by,
            "ordered_at": certificate.ordered_at,
        }
    )


def decode_certificate(value: bytes) -> StoredCertificate:
    document = _document(value, "certificate")
    number = (int, float)
    _fields(
        document,
        "certificate",
        {"chain_pem": str, "key_pem": str, "names": list, "not_before": number},
    )
    _fields(document, "certificate", {"not_after": number, "ordered_by": str, "ordered_at": number})
    return StoredCertificate(
        document["chain_pem"],
        document["key_pem"],
        tuple(str(name) for name in document["names"]),
        float(document["not_before"]),
        float(document["not_after"]),
        document["ordered_by"],
        float(document["ordered_at"]),
    )


def encode_account(account: AcmeAccount) -> str:
    return json.dumps(
        {"directory_url": account.directory_url, "uri": account.uri, "key": account.key_json}
    )


def decode_account(value: bytes) -> AcmeAccount:
    document = _document(value, "acme account")
    _fields(document, "acme account", {"directory_url": str, "uri": str, "key": str})
    return AcmeAccount(document["directory_url"], document["uri"], document["key"])


def encode_failure(failure: AcmeFailure) -> str:
    return json.dumps(
        {
            "at": failure.at,
            "node": failure.node,
            "error": failure.error,
            "retry_at": failure.retry_at,
        }
    )


def decode_failure(value: bytes) -> AcmeFailure:
    document = _document(value, "acme failure")
    number = (int, float)
    _fields(document, "acme failure", {"at": number, "node": str, "error": str, "retry_at": number})
    return AcmeFailure(
        float(document["at"]), document["node"], document["error"], float(document["retry_at"])
    )


def encode_txt_challenge(challenge: TxtChallenge) -> str:
    return json.dumps({"name": challenge.name, "value": challenge.value})


def decode_txt_challenge(value: bytes) -> TxtChallenge:
    document = _document(value, "dns-01 challenge")
    _fields(document, "dns-01 challenge", {"name": str, "value": str})
    challenge = TxtChallenge(document["name"].lower().rstrip("."), document["value"])
    if not challenge.name.startswith("_acme-challenge.") or not 0 < len(challenge.value) <= 255:
        raise ValidationError(["dns-01 challenge: not an _acme-challenge TXT record"])
    return challenge
