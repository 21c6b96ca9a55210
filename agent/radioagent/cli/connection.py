"""radioctl's way to etcd: the agent's own config file (its `etcd` section only)."""

from __future__ import annotations

import etcd3

from radioagent.config import EtcdSettings, load_etcd_settings
from radioagent.coordination.keys import KeyLayout

REQUEST_TIMEOUT_SECONDS = 5


class ClusterConnection:
    def __init__(self, settings: EtcdSettings) -> None:
        self.settings = settings
        self.layout = KeyLayout(settings.prefix)
        self._client: etcd3.Etcd3Client | None = None

    @classmethod
    def from_config_file(cls, path: str) -> ClusterConnection:
        return cls(load_etcd_settings(path))

    def client(self) -> etcd3.Etcd3Client:
        """A client of the first endpoint that answers a status request."""
        if self._client is not None:
            return self._client
        failures = []
        for endpoint in self.settings.endpoints:
            host, _, port = endpoint.rpartition(":")
            try:
                client = etcd3.client(
                    host=host.strip("[]"),
                    port=int(port),
                    timeout=REQUEST_TIMEOUT_SECONDS,
                    ca_cert=self.settings.ca_file,
                    cert_cert=self.settings.cert_file,
                    cert_key=self.settings.key_file,
                )
            except OSError as error:  # TLS files this user cannot read
                raise ConnectionError(f"cannot use the etcd TLS files: {error}") from error
            try:
                client.status()
            except Exception as error:  # any failure: try the next endpoint
                failures.append(f"{endpoint}: {type(error).__name__}")
                client.close()
                continue
            self._client = client
            return client
        raise ConnectionError(f"no etcd endpoint answers ({'; '.join(failures)})")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
