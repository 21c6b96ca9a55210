"""The agent's async facade over the cluster store: python-etcd3's blocking calls kept off
the event loop, and its watch thread bridged into asyncio.

The watch only wakes the loop early; the loop's full reads are what keep state right.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from radioagent.config import EtcdSettings
from radioagent.coordination.state import ClusterState, Handover
from radioagent.store.client import Client
from radioagent.store.cluster import ClusterStore

log = logging.getLogger(__name__)
T = TypeVar("T")


class AgentStore:
    def __init__(
        self, settings: EtcdSettings, request_timeout: float, on_change: Callable[[], None]
    ) -> None:
        self.store = ClusterStore(settings, request_timeout)
        self._on_change = on_change
        # Two workers: the lease keepalive must not queue behind a slow read.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="etcd")
        self._event_loop: asyncio.AbstractEventLoop | None = None

    def set_request_timeout(self, seconds: float) -> None:
        """For clients made from now on (the cluster's timing may change)."""
        self.store.clients.request_timeout = seconds

    async def _run(self, function: Callable[..., T], *arguments: Any, **keywords: Any) -> T:
        self._event_loop = asyncio.get_running_loop()
        return await self._event_loop.run_in_executor(
            self._executor, functools.partial(function, *arguments, **keywords)
        )

    async def apply(self, action: Callable[[ClusterStore], T]) -> T:
        """Any other blocking store call, off the event loop (the certificate's orders)."""
        return await self._run(action, self.store)

    async def read_state(self) -> ClusterState:
        """Serializable, from the local member: it must work while that member is cut off
        (the lease keepalive is what proves a quorum still hears us)."""
        return await self._run(self.store.read_state, serializable=True)

    async def learn_members(self, own_member: str | None) -> bool:
        """Follow etcd's members (but the node's own, its first endpoint already): whether
        the endpoints changed."""
        urls = await self._run(self.store.member_client_urls, own_member)
        return self.store.clients.learn(urls)

    @property
    def away(self) -> bool:
        """On another node's etcd endpoint."""
        return self.store.clients.away

    async def go_home(self) -> bool:
        return await self._run(self.store.go_home)

    async def raft_view(self) -> tuple[int | None, dict[int, str]]:
        return await self._run(self.store.raft_view)

    async def move_raft_leader(self, leader: int, targets: Sequence[int]) -> int | None:
        return await self._run(self.store.move_raft_leader, leader, targets)

    async def register_node(self, name: str) -> None:
        await self._run(self.store.register_node, name)

    async def mark_down(self, name: str, since: float) -> bool:
        return await self._run(self.store.mark_down, name, since)

    async def grant_lease(self, ttl: float) -> int:
        return await self._run(self.store.grant_lease, ttl)

    async def refresh_lease(self, lease_id: int) -> int:
        return await self._run(self.store.refresh_lease, lease_id)

    async def revoke_lease(self, lease_id: int) -> None:
        await self._run(self.store.revoke_lease, lease_id)

    async def campaign(self, name: str, lease_id: int) -> int | None:
        return await self._run(self.store.campaign, name, lease_id)

    async def resign(self, epoch: int) -> bool:
        return await self._run(self.store.resign, epoch)

    async def claim_transcoder(self, mount: str, name: str, lease_id: int) -> bool:
        return await self._run(self.store.claim_transcoder, mount, name, lease_id)

    async def release_transcoder(self, mount: str, name: str) -> bool:
        return await self._run(self.store.release_transcoder, mount, name)

    async def move_to_lease(
        self,
        lease_id: int,
        name: str,
        *,
        leader: bool,
        transcoders: Iterable[str],
        status: str | None,
    ) -> int:
        return await self._run(
            self.store.move_to_lease,
            lease_id,
            name,
            leader=leader,
            transcoders=tuple(transcoders),
            status=status,
        )

    async def publish_status(self, name: str, status: str, lease_id: int) -> None:
        await self._run(self.store.publish_status, name, status, lease_id)

    async def finish_handover(self, handover: Handover) -> bool:
        return await self._run(self.store.finish_handover, handover)

    async def set_title(self, mount: str, text: str, at: float) -> bool:
        return await self._run(self.store.set_title, mount, text, at)

    # --- watch ---------------------------------------------------------------------------

    async def ensure_watch(self) -> None:
        """(Re)establish the prefix watch. Call after a successful read."""
        if self.store.watching():
            return
        await self._run(self.store.watch, self._on_watch)

    def _on_watch(self, client: Client, response: Any) -> None:
        """Runs on python-etcd3's watch thread."""
        loop = self._event_loop
        if loop is None or loop.is_closed():
            return
        if isinstance(response, Exception):
            loop.call_soon_threadsafe(self._watch_broken, client, response)
            return
        layout = self.store.layout
        if any(layout.wakes_the_loop(key) for key in self.store.changed_keys(response)):
            loop.call_soon_threadsafe(self._on_change)

    def _watch_broken(self, client: Client, error: Exception) -> None:
        if self.store.drop_watch_client(client):
            log.warning("etcd watch broke (%s); reconnecting", type(error).__name__)
            self._on_change()

    def close(self) -> None:
        self.store.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
