"""The local etcd member's health, read from its own metrics endpoint (etcd's
--listen-metrics-urls, on loopback) and passed on in the agent's /metrics: a monitoring
host scrapes one port per node, and etcd's metrics never listen on the network.

Only the families the alert rules use are kept (about 30 of etcd's 140 KiB of text)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

KEPT_FAMILIES = (
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_server_quota_backend_bytes",
    "etcd_server_has_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds",
)
READ_EVERY_S = 15.0  # Prometheus's usual scrape interval
READ_TIMEOUT_S = 2.0
STALE_AFTER_S = 4 * READ_EVERY_S
_KEPT_NAMES = "|".join(map(re.escape, KEPT_FAMILIES))
_KEPT_LINE = re.compile(rf"^(?:# (?:HELP|TYPE) )?({_KEPT_NAMES})(?:_bucket|_sum|_count)?[ {{]")


def kept_families(text: str) -> tuple[Metric, ...]:
    """The kept families of a metrics page; lines are picked before parsing, so the parse
    costs what the kept part costs, not the whole page."""
    kept = "\n".join(line for line in text.splitlines() if _KEPT_LINE.match(line))
    return tuple(text_string_to_metric_families(kept + "\n"))


def labelled(families: Iterable[Metric], node: str) -> Iterable[Metric]:
    """The families again, each sample with the node's label (as every radio_ series)."""
    for family in families:
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        for sample in family.samples:
            copy.add_sample(sample.name, {**sample.labels, "node": node}, sample.value)
        yield copy


@dataclass
class MemberMetrics:
    families: tuple[Metric, ...] = ()
    read_at: float | None = None  # monotonic time of the last good read
    failures: int = 0

    def fresh(self, now: float) -> tuple[Metric, ...]:
        """What to publish: nothing once the member stopped answering a while ago, so
        alerts on these series see them go absent instead of frozen."""
        if self.read_at is None or now - self.read_at > STALE_AFTER_S:
            return ()
        return self.families


async def read_forever(
    url: str, metrics: MemberMetrics, clock: Callable[[], float], every: float = READ_EVERY_S
) -> None:
    timeout = aiohttp.ClientTimeout(total=READ_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            try:
                async with session.get(url) as response:
                    response.raise_for_status()
                    text = await response.text()
                metrics.families = kept_families(text)
                metrics.read_at = clock()
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                metrics.failures += 1
                log.warning("etcd member metrics at %s: %s", url, error or type(error).__name__)
            except Exception:  # a page nobody foresaw must not end the agent's run (loop.py)
                metrics.failures += 1
                log.exception("etcd member metrics at %s: unreadable", url)
            await asyncio.sleep(every)
