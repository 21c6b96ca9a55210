"""What a certificate says, and whether the front door may serve it: read with Debian's
python3-cryptography (imported only here, and only by agents that serve HTTPS), judged by
pure functions, so an expired, not-yet-valid or foreign certificate is refused with a
reason before a listener's handshake finds out."""

from __future__ import annotations

import datetime
from dataclasses import dataclass


class CertificateProblem(Exception):
    """A certificate the front door will not serve, and why."""


@dataclass(frozen=True)
class CertificateFacts:
    names: tuple[str, ...]  # its DNS names (subjectAltName), lowercase
    not_before: float  # Unix time
    not_after: float
    issuer: str

    @property
    def lifetime(self) -> float:
        return self.not_after - self.not_before


def read_facts(chain_pem: bytes) -> CertificateFacts:
    """The facts of a chain's first certificate (the server's own); CertificateProblem if
    it is not PEM."""
    from cryptography import x509  # noqa: PLC0415 - only agents serving HTTPS pay for it

    try:
        certificate = x509.load_pem_x509_certificate(chain_pem)
    except ValueError as error:
        raise CertificateProblem(f"not a PEM certificate: {error}") from error
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(name.lower() for name in alternative.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return CertificateFacts(
        names=names,
        not_before=_utc(certificate, "not_valid_before"),
        not_after=_utc(certificate, "not_valid_after"),
        issuer=certificate.issuer.rfc4514_string(),
    )


def _utc(certificate: object, field: str) -> float:
    """cryptography 38 (Debian 12) has only naive UTC datetimes; from 42 (Debian 13 has 43)
    the `_utc` ones, and the naive ones are deprecated."""
    aware = getattr(certificate, f"{field}_utc", None)
    if aware is not None:
        return float(aware.timestamp())
    naive = getattr(certificate, field)
    return float(naive.replace(tzinfo=datetime.UTC).timestamp())


def covers(names: tuple[str, ...], host: str) -> bool:
    """Whether a certificate for `names` is valid for `host` (RFC 6125: a wildcard stands
    for exactly one leftmost label)."""
    host = host.lower().rstrip(".")
    for name in names:
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def serving_problems(facts: CertificateFacts, https_name: str | None, now: float) -> list[str]:
    """Why the front door must not serve this certificate as `https_name`; empty if it may."""
    problems = []
    if now >= facts.not_after:
        problems.append(f"it expired at {_iso(facts.not_after)}")
    elif now < facts.not_before:
        problems.append(f"it is valid only from {_iso(facts.not_before)}")
    if https_name is not None and not covers(facts.names, https_name):
        shown = ", ".join(facts.names) or "no DNS name"
        problems.append(f"it is for {shown}, not for https_name {https_name}")
    return problems


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )
