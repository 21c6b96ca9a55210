"""The etcd adapter: python-etcd3's blocking calls kept off the event loop, its watch
thread bridged into asyncio, and a fresh client whenever the watch breaks.

python-etcd3 0.12's watch thread retries a broken stream in a tight loop (it burns a core
while etcd is down), so a broken watch closes the whole client, which ends that thread;
the next call builds a new client and the loop re-establishes the watch once etcd answers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import etcd3
import etcd3.exceptions
import grpc

from radioagent.config import EtcdSettings
from radioagent.coordination.keys import KeyLayout
from radioagent.coordination.state import ClusterState, decode_range_response

log = logging.getLogger(__name__)
T = TypeVar("T")


class EtcdUnavailable(Exception):
    """etcd did not answer in time or refused; the message says which call and why."""


class EtcdStore:
    def __init__(
        self,
        settings: EtcdSettings,
        layout: KeyLayout,
        request_timeout: float,
        on_change: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.layout = layout
        self.request_timeout = request_timeout
        self._on_change = on_change
        # Two workers: the lease keepalive must not queue behind a slow read.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="etcd")
        self._client: etcd3.Etcd3Client | None = None
        self._endpoint_index = 0
        self._watch_id: int | None = None
        self._watched_client: etcd3.Etcd3Client | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None

    # --- plumbing ------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self.settings.endpoints[self._endpoint_index]

    def _new_client(self) -> etcd3.Etcd3Client:
        host, _, port = self.endpoint.rpartition(":")
        return etcd3.client(
            host=host.strip("[]"),
            port=int(port),
            ca_cert=self.settings.ca_file,
            cert_cert=self.settings.cert_file,
            cert_key=self.settings.key_file,
            timeout=self.request_timeout,
        )

    def _current_client(self) -> etcd3.Etcd3Client:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    async def _call(self, what: str, function: Callable[[etcd3.Etcd3Client], T]) -> T:
        self._event_loop = asyncio.get_running_loop()
        try:
            # Inside the try: building a client reads TLS files, which may be mid-rotation.
            client = self._current_client()
        except (OSError, ValueError) as error:
            raise EtcdUnavailable(f"{what}: cannot make an etcd client: {error}") from error
        try:
            return await self._event_loop.run_in_executor(
                self._executor, functools.partial(function, client)
            )
        except (etcd3.exceptions.Etcd3Exception, grpc.RpcError, ValueError) as error:
            # ValueError: a call raced with closing a broken client's channel.
            if isinstance(
                error,
                etcd3.exceptions.ConnectionFailedError | etcd3.exceptions.ConnectionTimeoutError,
            ):
                self._next_endpoint(client)
            raise EtcdUnavailable(
                f"{what} via {self.endpoint}: {type(error).__name__} {error}".strip()
            ) from error

    def _next_endpoint(self, failed_client: etcd3.Etcd3Client) -> None:
        """Move on to the next endpoint, once per failed client (several calls may fail
        together on the same dead member)."""
        if failed_client is not self._client or len(self.settings.endpoints) == 1:
            return
        self._endpoint_index = (self._endpoint_index + 1) % len(self.settings.endpoints)
        log.warning("etcd: switching to endpoint %s", self.endpoint)
        self.discard_client()

    # --- reads ---------------------------------------------------------------------------

    async def read_state(self) -> ClusterState:
        """Everything under the prefix in one serializable read from the local member."""
        response = await self._call(
            "read state",
            lambda client: client.get_prefix_response(self.layout.root, serializable=True),
        )
        return decode_range_response(self.layout, response)

    # --- leases and leadership -----------------------------------------------------------

    async def grant_lease(self, ttl: float) -> int:
        # Never round down: a shorter lease would break loop_wait + 2 * retry_timeout <= ttl.
        lease = await self._call("grant lease", lambda client: client.lease(max(1, math.ceil(ttl))))
        return lease.id

    async def refresh_lease(self, lease_id: int) -> int:
        """Remaining TTL in seconds after the refresh; 0 means the lease is gone."""
        replies = await self._call(
            "refresh lease", lambda client: list(client.refresh_lease(lease_id))
        )
        return replies[0].TTL if replies else 0

    async def revoke_lease(self, lease_id: int) -> None:
        await self._call("revoke lease", lambda client: client.revoke_lease(lease_id))

    async def campaign(self, name: str, lease_id: int) -> int | None:
        """Take the leader key if nobody holds it; the epoch if we won, else None."""

        def transaction(client: etcd3.Etcd3Client) -> int | None:
            won, responses = client.transaction(
                compare=[client.transactions.create(self.layout.leader) == 0],
                success=[
                    client.transactions.put(self.layout.leader, name, lease=lease_id),
                    client.transactions.get(self.layout.leader),
                ],
                failure=[],
            )
            if not won:
                return None
            ((_, metadata),) = responses[1]
            return metadata.create_revision

        return await self._call("campaign", transaction)

    async def resign(self, epoch: int) -> bool:
        """Delete the leader key only if it is still the one from our `epoch`."""

        def transaction(client: etcd3.Etcd3Client) -> bool:
            resigned, _ = client.transaction(
                compare=[client.transactions.create(self.layout.leader) == epoch],
                success=[client.transactions.delete(self.layout.leader)],
                failure=[],
            )
            return resigned

        return await self._call("resign", transaction)

    async def claim_transcoder(self, mount: str, name: str, lease_id: int) -> bool:
        """Take `transcoders/<mount>` on our lease if nobody holds it."""
        key = self.layout.transcoder(mount)

        def transaction(client: etcd3.Etcd3Client) -> bool:
            won, _ = client.transaction(
                compare=[client.transactions.create(key) == 0],
                success=[client.transactions.put(key, name, lease=lease_id)],
                failure=[],
            )
            return won

        return await self._call(f"claim {key}", transaction)

    async def release_transcoder(self, mount: str, name: str) -> bool:
        """Delete `transcoders/<mount>` only while it is still ours."""
        key = self.layout.transcoder(mount)

        def transaction(client: etcd3.Etcd3Client) -> bool:
            released, _ = client.transaction(
                compare=[client.transactions.value(key) == name],
                success=[client.transactions.delete(key)],
                failure=[],
            )
            return released

        return await self._call(f"release {key}", transaction)

    async def move_to_lease(self, keys: dict[str, str], lease_id: int) -> list[str]:
        """Attach each key that still holds its value to `lease_id` (a put keeps the key's
        create revision, so a leader keeps its epoch); the keys moved."""

        def transaction(client: etcd3.Etcd3Client) -> list[str]:
            moved = []
            for key, value in keys.items():
                done, _ = client.transaction(
                    compare=[client.transactions.value(key) == value],
                    success=[client.transactions.put(key, value, lease=lease_id)],
                    failure=[],
                )
                if done:
                    moved.append(key)
            return moved

        return await self._call("move keys to a new lease", transaction)

    async def delete(self, key: str) -> None:
        await self._call(f"delete {key}", lambda client: client.delete(key))

    async def put(self, key: str, value: str, lease_id: int | None = None) -> None:
        await self._call(f"put {key}", lambda client: client.put(key, value, lease=lease_id))

    # --- watch ---------------------------------------------------------------------------

    @property
    def watching(self) -> bool:
        return self._watch_id is not None and self._watched_client is self._client

    async def ensure_watch(self) -> None:
        """(Re)establish the prefix watch. Call after a successful read: the watch only
        wakes the loop early, the loop's full reads are what keep state right."""
        if self.watching:
            return

        def add_watch(client: etcd3.Etcd3Client) -> int:
            return client.add_watch_prefix_callback(
                self.layout.root, functools.partial(self._on_watch, client)
            )

        try:
            self._watch_id = await self._call("watch", add_watch)
        except EtcdUnavailable:
            # A failed create leaves python-etcd3's watch thread retrying in a tight loop:
            # closing the client ends it; the next call builds a fresh one.
            self.discard_client()
            raise
        self._watched_client = self._client

    def _on_watch(self, client: etcd3.Etcd3Client, response: Any) -> None:
        """Runs on python-etcd3's watch thread."""
        loop = self._event_loop
        if loop is None or loop.is_closed():
            return
        if isinstance(response, Exception):
            loop.call_soon_threadsafe(self._watch_broken, client, response)
            return
        if any(
            self.layout.wakes_the_loop(event.key.decode(errors="replace"))
            for event in response.events
        ):
            loop.call_soon_threadsafe(self._on_change)

    def _watch_broken(self, client: etcd3.Etcd3Client, error: Exception) -> None:
        if client is not self._client:
            return
        log.warning("etcd watch broke (%s); reconnecting", type(error).__name__)
        self.discard_client()
        self._on_change()

    def discard_client(self) -> None:
        """Close the client (ending its watch thread); the next call makes a new one."""
        client, self._client = self._client, None
        self._watch_id = None
        self._watched_client = None
        if client is not None:
            client.close()

    def close(self) -> None:
        self.discard_client()
        self._executor.shutdown(wait=False, cancel_futures=True)
