"""Free space on the filesystems a node cannot work without: a full one stalls etcd's
writes (every agent's keepalive with them) or the agent's state file."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class DiskSpace:
    path: str
    free_bytes: int  # what an unprivileged writer may still use (statvfs f_bavail)
    size_bytes: int


def disk_space(paths: Iterable[str]) -> tuple[DiskSpace, ...]:
    """One reading per path that exists (a gateway node has no etcd data directory)."""
    readings = []
    for path in paths:
        try:
            stats = os.statvfs(path)
        except OSError:
            continue
        readings.append(
            DiskSpace(path, stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize)
        )
    return tuple(readings)
