"""The one way to an etcd client, and the one endpoint fail-over policy.

Policy: talk to the current endpoint (the local member or gateway comes first in the
config, then the members etcd lists, once learnt); when a call fails because that
endpoint cannot be reached, move to the next one, once per failed client (several
calls may fail together on the same dead member). Away from the first endpoint, go back
to it once it serves a quorum read again (`go_home`): an agent left on another machine's
member shares that machine's links, and cutting that machine off would cut it off too.
A caller that can afford it (radioctl, one command) tries each endpoint in turn within
one call, a write only while its request never arrived; the agent's loop tries again on
its next cycle instead, so its timing stays predictable.

python-etcd3 0.12's watch thread retries a broken stream in a tight loop (it burns a core
while etcd is down), so a broken watch closes the whole client, which ends that thread;
the next call builds a new client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TypeAlias, TypeVar

import etcd3
import etcd3.exceptions
import grpc

from radioagent.config import EtcdSettings
from radioagent.store.endpoints import index_after_change, merged_endpoints
from radioagent.store.errors import EtcdUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
Client: TypeAlias = etcd3.Etcd3Client


def _unreachable(error: BaseException) -> bool:
    return isinstance(
        error, etcd3.exceptions.ConnectionFailedError | etcd3.exceptions.ConnectionTimeoutError
    )


def _never_arrived(error: BaseException) -> bool:
    """The endpoint refused the connection: the request never reached etcd. A timeout
    is not that: a write may have been applied and its answer lost."""
    return isinstance(error, etcd3.exceptions.ConnectionFailedError)


def describe(error: BaseException) -> str:
    """One line: grpc's own errors carry their code and details."""
    if isinstance(error, grpc.RpcError) and hasattr(error, "details"):
        # grpc.RpcError's type declares neither; the call objects that raise it have both.
        text = f"{error.code().name}: {error.details()}"
    else:
        text = str(error)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(error).__name__} {first}".strip()


class EtcdClients:
    """Makes, keeps and discards the client of the current endpoint. Thread-safe: the
    agent calls from a small thread pool."""

    def __init__(self, settings: EtcdSettings, request_timeout: float) -> None:
        self.settings = settings
        self.request_timeout = request_timeout  # applies to the next client made
        self._index = 0
        self._endpoints = tuple(settings.endpoints)  # and the members etcd lists (learn)
        self._client: Client | None = None
        self._answered: Client | None = None  # the client that answered a status request
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self._endpoints[self._index]

    @property
    def endpoints(self) -> tuple[str, ...]:
        return self._endpoints

    def learn(self, member_urls: Iterable[str]) -> bool:
        """The members' client URLs, as etcd lists them, join the configured endpoints;
        a member gone from the list leaves them. The current client stays while its
        endpoint is still listed. Whether the list changed."""
        with self._lock:
            endpoints = merged_endpoints(self.settings.endpoints, member_urls)
            if endpoints == self._endpoints:
                return False
            index = index_after_change(self.endpoint, endpoints)
            self._endpoints = endpoints
            self._index = 0 if index is None else index
            if index is None:
                self._discard()
        log.info("etcd endpoints: %s", ", ".join(endpoints))
        return True

    def current(self) -> tuple[Client, str]:
        """The current client and its endpoint, made if needed."""
        with self._lock:
            if self._client is None:
                self._client = self.client_of(self.endpoint, self.request_timeout)
            return self._client, self.endpoint

    def client_of(self, endpoint: str, timeout: float) -> Client:
        """A new client of `endpoint`, outside the policy: the caller closes it."""
        host, _, port = endpoint.rpartition(":")
        try:
            # Reads the TLS files, which may be mid-rotation or unreadable.
            return etcd3.client(
                host=host.strip("[]"),
                port=int(port),
                ca_cert=self.settings.ca_file,
                cert_cert=self.settings.cert_file,
                cert_key=self.settings.key_file,
                timeout=timeout,
            )
        except (OSError, ValueError) as error:
            raise EtcdUnavailable(f"cannot make an etcd client: {error}") from error

    def is_current(self, client: Client) -> bool:
        return client is self._client

    def call(
        self,
        what: str,
        function: Callable[[Client], T],
        *,
        every_endpoint: bool = False,
        writes: bool = False,
    ) -> T:
        """`function` on the current client; EtcdUnavailable when it fails. An unreachable
        endpoint moves the policy on. With `every_endpoint`, each new client is first asked
        for its status (a read: failing it touches nothing) and the next endpoint is tried
        until one answers; a call that `writes` then runs once, since a write that timed
        out may have been applied."""
        failures: list[str] = []
        tries = len(self._endpoints) if every_endpoint else 1
        while True:
            client, endpoint = self.current()
            probing = every_endpoint and client is not self._answered
            try:
                if probing:
                    client.status()
                    self._answered, probing = client, False
                return function(client)
            except (etcd3.exceptions.Etcd3Exception, grpc.RpcError, ValueError) as error:
                # ValueError: a call raced with closing a broken client's channel.
                failures.append(f"{endpoint}: {describe(error)}")
                if not _unreachable(error):
                    raise EtcdUnavailable(f"{what} via {failures[-1]}") from error
                self.next_endpoint(client)
                if writes and not probing and not _never_arrived(error):
                    raise EtcdUnavailable(
                        f"{what} via {failures[-1]}: it may or may not have been applied; "
                        "check `radioctl status`"
                    ) from error
                if len(failures) < tries:
                    continue
                if every_endpoint:
                    raise EtcdUnavailable(
                        f"no etcd endpoint answers ({'; '.join(failures)})"
                    ) from error
                raise EtcdUnavailable(f"{what} via {failures[0]}") from error

    @property
    def away(self) -> bool:
        """On another endpoint than the first one configured (the node's own)."""
        return self._index != 0

    def go_home(self, check: Callable[[Client], object], timeout: float) -> bool:
        """Back to the first endpoint when `check` passes on a client of it made with
        `timeout`; whether the policy moved. The probe's client is closed: the next call
        makes one with the usual request timeout."""
        if not self.away:
            return False
        home = self._endpoints[0]
        probe = self.client_of(home, timeout)
        try:
            check(probe)
        except (etcd3.exceptions.Etcd3Exception, grpc.RpcError, ValueError):
            return False
        finally:
            probe.close()
        with self._lock:
            if not self.away or self._endpoints[0] != home:
                return False
            self._index = 0
            self._discard()
        log.info("etcd: back on endpoint %s", home)
        return True

    def next_endpoint(self, failed_client: Client) -> None:
        with self._lock:
            if failed_client is not self._client or len(self._endpoints) == 1:
                return  # one endpoint: grpc reconnects by itself when it is back
            self._index = (self._index + 1) % len(self._endpoints)
            log.warning("etcd: switching to endpoint %s", self.endpoint)
            self._discard()

    def discard(self, client: Client | None = None) -> None:
        """Close the client (ending its watch thread); the next call makes a new one.
        With `client`, only if that is still the current one."""
        with self._lock:
            if client is None or client is self._client:
                self._discard()

    def _discard(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
