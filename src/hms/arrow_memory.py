"""Freed memory kept for the next batch: a streamed simulation allocates the same few hundred MiB per batch.

By default Arrow's allocator (mimalloc) hands pages back to the kernel 10 ms after they are freed, and
glibc's trims and unmaps large blocks, so every batch of a 100M-row file faults its arrays in afresh —
measured, a quarter of that run's system time and ~20 % of its wall. Kept instead, a process's memory
stays at its largest batch's (the run's peak RSS is unchanged) and is returned when the process ends.

``MIMALLOC_PURGE_DELAY`` is read when libarrow first allocates, so this runs before ``pyarrow`` is
imported (by hms.population_stream at import, and by the resident simulator before its imports); an
explicit setting in the environment wins. The glibc part is ``mallopt`` (a no-op elsewhere).
"""

from __future__ import annotations

import ctypes
import os

# glibc's mallopt parameters (malloc.h): the one list of them (hms.resident.warmup sets two more)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -2, -3, -8
MMAP_THRESHOLD = 32 << 20  # glibc's maximum: a batch's arrays (8 MiB a million-row float column) come from the heap
TRIM_THRESHOLD = 1 << 30


def mallopt(option: int, value: int) -> bool:
    """glibc's ``mallopt``; False (nothing set) on a C library without it."""
    try:
        return bool(ctypes.CDLL(None).mallopt(option, value))
    except (OSError, AttributeError):
        return False


def keep_freed_pages() -> None:
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
