"""A throwaway certificate authority for etcd over TLS, made with the openssl command: the
CA, a server certificate for 127.0.0.1 and a client certificate (what the etcd role gives
a node), plus a client certificate from another CA that etcd must refuse."""

from __future__ import annotations

import datetime
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # signed by another CA
    stranger_key: Path


def _openssl(*arguments: str) -> None:
    subprocess.run(["openssl", *arguments], check=True, capture_output=True, timeout=30)


def _authority(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl(
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
        *("-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}"),
    )
    return cert, key


def _issue(
    directory: Path, name: str, authority: tuple[Path, Path], extensions: str
) -> tuple[Path, Path]:
    key, request, cert = (directory / f"{name}{suffix}" for suffix in (".key", ".csr", ".crt"))
    _openssl(
        *("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
        *("-keyout", str(key), "-out", str(request), "-subj", f"/CN={name}"),
    )
    extension_file = directory / f"{name}.ext"
    extension_file.write_text(extensions)
    _openssl(
        *("x509", "-req", "-in", str(request), "-CA", str(authority[0])),
        *("-CAkey", str(authority[1]), "-CAcreateserial", "-out", str(cert), "-days", "2"),
        *("-extfile", str(extension_file)),
    )
    return cert, key


def make_test_pki(directory: Path) -> TlsFiles:
    authority = _authority(directory, "ca")
    server = _issue(
        directory,
        "server",
        authority,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    client = _issue(directory, "client", authority, "extendedKeyUsage=clientAuth\n")
    stranger = _issue(
        directory, "stranger", _authority(directory, "other-ca"), "extendedKeyUsage=clientAuth\n"
    )
    for path in directory.iterdir():
        path.chmod(0o644)  # the test's own processes read them, whatever their user
    return TlsFiles(authority[0], *server, *client, *stranger)


@dataclass(frozen=True)
class ZoneCertificate:
    ca: Path
    cert: Path
    key: Path


def make_zone_certificate(directory: Path, zone: str, *, name: str = "zone") -> ZoneCertificate:
    """A CA (made once per directory) and a certificate for `zone` and `*.zone`, as the
    cluster's own ACME order would get: each call issues a new one (a renewal)."""
    ca_cert, ca_key = directory / "zone-ca.crt", directory / "zone-ca.key"
    if not ca_cert.exists():
        _authority(directory, "zone-ca")
    cert, key = _issue(
        directory,
        name,
        (ca_cert, ca_key),
        f"subjectAltName=DNS:{zone},DNS:*.{zone}\nextendedKeyUsage=serverAuth\n",
    )
    for path in (ca_cert, cert, key):
        path.chmod(0o644)
    return ZoneCertificate(ca_cert, cert, key)


def make_dated_certificate(
    directory: Path, name: str, names: list[str], not_before: float, not_after: float
) -> tuple[Path, Path]:
    """A self-signed certificate for `names` valid between two Unix times (openssl's
    command cannot date one in the past): the expired and foreign ones the agent refuses.
    Its files: the certificate and the key."""
    certificate, key = dated_certificate(name, names, not_before, not_after)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(certificate)
    key_path.write_bytes(key)
    return cert_path, key_path


def dated_certificate(
    name: str, names: list[str], not_before: float, not_after: float
) -> tuple[bytes, bytes]:
    """make_dated_certificate's certificate and key, as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.fromtimestamp(not_before, datetime.UTC))
        .not_valid_after(datetime.datetime.fromtimestamp(not_after, datetime.UTC))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
