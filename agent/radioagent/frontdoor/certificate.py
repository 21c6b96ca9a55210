"""The front door's certificate: one TLS context for every HTTPS port, loaded from the
operator's PEM files and loaded again when they change. A reload changes what new
handshakes get; connections already open keep theirs, so no listener is dropped."""

from __future__ import annotations

import asyncio.sslproto
import logging
import os
import ssl
import time
from dataclasses import dataclass

from radioagent.certfacts import CertificateFacts, CertificateProblem, read_facts, serving_problems

log = logging.getLogger(__name__)
# asyncio gives every TLS connection a 256 KiB read buffer (SSLProtocol.max_size): 1,000
# HTTPS listeners held 389 MB (bench/https), for clients that send a request head and
# then nothing. 16 KiB is one TLS record, the most a read can decrypt at once anyway.
TLS_READ_BUFFER_BYTES = 16 * 1024


class CertificateError(Exception):
    """The files do not make a usable certificate: unreadable, not PEM, a key that is not
    the certificate's, expired or not yet valid, or not for the node's https_name."""


@dataclass(frozen=True)
class _Stamp:
    cert: tuple[int, float]  # inode and modification time
    key: tuple[int, float]


def _stamp(cert_file: str, key_file: str) -> _Stamp:
    cert, key = os.stat(cert_file), os.stat(key_file)
    return _Stamp((cert.st_ino, cert.st_mtime), (key.st_ino, key.st_mtime))


def small_tls_buffers() -> None:
    """Every asyncio TLS connection of this process reads into TLS_READ_BUFFER_BYTES (a
    class attribute of the standard library's, set before the HTTPS ports open)."""
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER_BYTES


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context with the chain and key loaded; CertificateError says why not."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    _load(context, cert_file, key_file)
    return context


def check_served(
    cert_file: str, https_name: str | None, facts: CertificateFacts | None = None
) -> CertificateFacts:
    """The certificate's facts (read from the file unless the caller read them already);
    CertificateError if it must not be served now."""
    if facts is None:
        try:
            with open(cert_file, "rb") as file:
                facts = read_facts(file.read())
        except (OSError, CertificateProblem) as error:
            raise CertificateError(f"front_door.tls_cert_file {cert_file!r}: {error}") from error
    problems = serving_problems(facts, https_name, time.time())
    if problems:
        raise CertificateError(f"front_door.tls_cert_file {cert_file!r}: {'; '.join(problems)}")
    return facts


def _load(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as error:
        raise CertificateError(
            f"front_door.tls_cert_file {cert_file!r} with tls_key_file {key_file!r}: {error}"
        ) from error


class Certificate:
    """`facts`, here and in reload_if_changed: the certificate's, when the caller read
    them already (the ACME keeper, from etcd, off the event loop); reading them runs a
    child process (certfacts.py)."""

    def __init__(
        self,
        cert_file: str,
        key_file: str,
        https_name: str | None,
        facts: CertificateFacts | None = None,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.https_name = https_name
        self._stamp = _stamp(cert_file, key_file)
        self.facts = check_served(cert_file, https_name, facts)
        self.context = server_context(cert_file, key_file)
        self.reloads = 0
        self.reload_failures = 0

    def reload_if_changed(self, facts: CertificateFacts | None = None) -> bool:
        """Load the files again if they changed (a renewal); a bad pair is logged and the
        certificate in use kept. Whether a new one was loaded."""
        try:
            stamp = _stamp(self.cert_file, self.key_file)
        except OSError as error:
            log.error("tls: %s; the certificate in use is kept", error)
            return False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            # A trial context first: loading into the live one sets the certificate before
            # the key is checked, so a mismatch there would leave handshakes failing.
            facts = check_served(self.cert_file, self.https_name, facts)
            server_context(self.cert_file, self.key_file)
            _load(self.context, self.cert_file, self.key_file)
            self.facts = facts
        except CertificateError as error:
            self.reload_failures += 1
            log.error("tls: %s; the certificate in use is kept", error)
            return False
        self.reloads += 1
        log.info("tls: certificate loaded again from %s", self.cert_file)
        return True
