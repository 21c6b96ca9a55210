"""Debian's pebble: a real ACME CA (RFC 8555) for tests, on loopback. It resolves names
with the cluster's own DNS (`-dnsserver`), so DNS-01 is proven by the agents' answers, and
validates HTTP-01 on the front doors' shared HTTP port."""

from __future__ import annotations

import json
import os
import ssl
import urllib.request
from pathlib import Path

from .pki import make_test_pki
from .ports import LOOPBACK, free_ports
from .processes import ManagedProcess, ServiceDirectory
from .waiting import wait_for


class Pebble:
    def __init__(self, dns_server: str, http_port: int) -> None:
        """`dns_server`: host:port of a nameserver of the cluster's zone; `http_port`: the
        port pebble asks HTTP-01 tokens on (a real CA: 80)."""
        self.directory = ServiceDirectory("pebble")
        self.tls = make_test_pki(self.directory.path)  # pebble's own HTTPS, for 127.0.0.1
        self.port, self.management_port = free_ports(2)
        config = {
            "pebble": {
                "listenAddress": f"{LOOPBACK}:{self.port}",
                "managementListenAddress": f"{LOOPBACK}:{self.management_port}",
                "certificate": str(self.tls.server_cert),
                "privateKey": str(self.tls.server_key),
                "httpPort": http_port,
                "tlsPort": free_ports(1)[0],  # TLS-ALPN-01, which the cluster never picks
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        config_path = self.directory.path / "pebble.json"
        config_path.write_text(json.dumps(config))
        self.process = ManagedProcess(
            "pebble",
            ["pebble", "-config", str(config_path), "-dnsserver", dns_server],
            self.directory.path / "pebble.log",
            # No random wait before validating, and no random nonce refusals: the
            # tests judge the cluster, not python3-acme's retry of a bad nonce.
            env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        )

    @property
    def directory_url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}/dir"

    @property
    def ca_file(self) -> Path:
        """What signs pebble's own HTTPS (not the certificates it issues)."""
        return self.tls.ca

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return bytes(response.read())

    def start(self) -> None:
        self.process.start()

        def answering() -> bool:
            try:
                return bool(self._get(self.directory_url))
            except OSError:
                return False

        wait_for(answering, timeout=15, what="pebble's ACME directory")

    def issuing_root(self, directory: Path) -> Path:
        """The root that signs issued certificates (new at every pebble start), as a file
        for clients to trust."""
        path = directory / "pebble-root.pem"
        path.write_bytes(self._get(f"https://{LOOPBACK}:{self.management_port}/roots/0"))
        return path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.process.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        self.process.stop()
        self.directory.remove()
