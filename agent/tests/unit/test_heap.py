"""Handing freed memory back: the call exists on the C library nodes run (Debian's glibc)."""

from __future__ import annotations

from radioagent.heap import limit_arenas, release_free_memory


def test_free_memory_is_handed_back_on_glibc() -> None:
    assert release_free_memory() is True


def test_the_number_of_heaps_can_be_limited_on_glibc() -> None:
    assert limit_arenas() is True
