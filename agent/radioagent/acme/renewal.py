"""When the cluster orders a certificate, and for which names. Pure: decided from the ACME
state in etcd and the clock, the same way on every node, so whichever node wins the claim
does what any other would have done."""

from __future__ import annotations

from collections.abc import Iterable

from radioagent.acme.state import AcmeState, StoredCertificate
from radioagent.certfacts import covers

RENEW_AFTER = 2 / 3  # of the lifetime, as Let's Encrypt advises for 90-day certificates
ALERT_DAYS_LEFT = 14  # the alert's runbook (README) starts here: two renewals have failed


def wanted_names(cluster_name: str, challenge: str, https_names: Iterable[str]) -> tuple[str, ...]:
    """DNS-01 proves the whole zone: one certificate for the name and *.name covers every
    node, also one added later. HTTP-01 cannot prove a wildcard: the certificate lists the
    name and each node's own."""
    if challenge == "dns-01":
        return (cluster_name, f"*.{cluster_name}")
    return (cluster_name, *sorted(set(https_names) - {cluster_name}))


def renew_at(certificate: StoredCertificate) -> float:
    lifetime = certificate.not_after - certificate.not_before
    return certificate.not_before + lifetime * RENEW_AFTER


def order_reason(acme: AcmeState, wanted: tuple[str, ...], now: float) -> str | None:
    """Why a certificate should be ordered now, or None."""
    certificate = acme.certificate
    if certificate is None:
        return "the cluster has no certificate yet"
    missing = [name for name in wanted if not covers(certificate.names, name)]
    if missing:
        return f"the certificate does not cover {', '.join(missing)}"
    if now >= renew_at(certificate):
        return "two thirds of the certificate's lifetime have passed"
    if acme.renewal_requested is not None:
        return "an operator asked for a renewal (radioctl cert renew)"
    return None


def next_try(acme: AcmeState) -> float:
    """The earliest time for the next order: a failed one waits, so a CA that refuses is
    not asked again on every loop (CAs rate-limit failed validations)."""
    return 0.0 if acme.failure is None else acme.failure.retry_at


def should_order(acme: AcmeState, wanted: tuple[str, ...], now: float) -> str | None:
    """The reason to try now: due, nobody ordering, and past the wait after a failure."""
    if acme.ordering is not None or now < next_try(acme):
        return None
    return order_reason(acme, wanted, now)
