"""What a certificate says, and whether the front door may serve it: read with Debian's
python3-cryptography, judged by pure functions, so an expired, not-yet-valid or foreign
certificate is refused with a reason before a listener's handshake finds out.

The agent reads a certificate rarely (at start, and when a renewed one comes), so it
does it in a child (`python3 -m radioagent.certfacts`, PEM in, JSON out) and never keeps
cryptography's 2.2 MB in its own memory.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from dataclasses import asdict, dataclass

from radioagent.children import python_module

READ_TIMEOUT = 30.0  # a child reading one certificate takes about 0.2 s


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
    """The facts of a chain's first certificate (the server's own), read by a child;
    CertificateProblem if it is not PEM."""
    argv, environment = python_module("radioagent.certfacts")
    try:
        result = subprocess.run(
            argv,
            input=chain_pem,
            capture_output=True,
            env=environment,
            timeout=READ_TIMEOUT,
            check=False,
        )
        answer = json.loads(result.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        raise CertificateProblem(f"cannot read the certificate: {error}") from error
    if not isinstance(answer, dict):
        raise CertificateProblem(f"cannot read the certificate: {result.stderr[-300:]!r}")
    if "error" in answer:
        raise CertificateProblem(str(answer["error"]))
    return CertificateFacts(
        tuple(answer["names"]), answer["not_before"], answer["not_after"], answer["issuer"]
    )


def parse_facts(chain_pem: bytes) -> CertificateFacts:
    """read_facts' work, in this process (the child's, and the unit tests')."""
    from cryptography import x509  # noqa: PLC0415 - in the child only

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


def main() -> int:
    try:
        facts = parse_facts(sys.stdin.buffer.read())
    except CertificateProblem as error:
        print(json.dumps({"error": str(error)}))
        return 1
    print(json.dumps(asdict(facts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
