"""Freed memory handed back to the system.

CPython's objects live in glibc's heap, and glibc returns freed pages to the system only
from the top of it: what startup, a certificate reload or a burst of connections freed
in the middle stays resident. malloc_trim(0) releases free pages anywhere in the heap;
after the agent's imports alone that is about 1 MB of its 55, for well under a
millisecond. No library offers it; ctypes is already loaded (transcoding/supervisor.py).
"""

from __future__ import annotations

import ctypes

# The process's own symbols, which include the C library's.
_C_LIBRARY = ctypes.CDLL(None)
TRIM_EVERY_SECONDS = 60.0
# glibc gives each thread that allocates its own heap (arena), up to 8 per core; the
# agent's threads (grpc's, the worker threads) allocate little, and each arena keeps its
# own free pages. Two are enough for them.
M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


def limit_arenas() -> bool:
    """Before any thread starts. Whether the C library took it (glibc does)."""
    mallopt = getattr(_C_LIBRARY, "mallopt", None)
    return mallopt is not None and mallopt(M_ARENA_MAX, ARENAS) == 1


def release_free_memory() -> bool:
    """Whether the C library could trim (glibc can; another libc may lack the call)."""
    trim = getattr(_C_LIBRARY, "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True
