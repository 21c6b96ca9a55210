"""When this node's etcd client certificate (its identity in the cluster) expires, read
at start and again whenever the file changes (the etcd role renews it), for the
metrics and the expiry alerts. Read by certfacts' child: cryptography stays out of the
agent's memory."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

from radioagent.certfacts import CertificateProblem, read_facts

log = logging.getLogger(__name__)

CHECK_EVERY_S = 300.0  # a stat; the file is read only when it changed


@dataclass
class EtcdIdentity:
    cert_file: str
    not_after: float | None = None  # Unix time; None: not read (yet), or unreadable
    _seen: tuple[int, int] | None = None  # the file's inode and mtime when last read

    async def watch_forever(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(CHECK_EVERY_S)

    async def check(self) -> None:
        try:
            status = os.stat(self.cert_file)
        except OSError as error:
            log.warning("etcd client certificate %s: %s", self.cert_file, error)
            self.not_after, self._seen = None, None
            return
        seen = (status.st_ino, status.st_mtime_ns)
        if seen == self._seen:
            return
        self._seen = seen
        try:
            pem = await asyncio.to_thread(_read, self.cert_file)
            facts = await asyncio.to_thread(read_facts, pem)
        except (OSError, CertificateProblem) as error:
            log.warning("etcd client certificate %s: %s", self.cert_file, error)
            self.not_after = None
            return
        self.not_after = facts.not_after


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()
