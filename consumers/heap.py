"""Freed memory given back to the system as batches are committed.

glibc's malloc keeps what a process frees in its heaps for the next
allocation, and a consumer frees a batch's worth of messages, rows and Arrow
columns a few times a second, from several threads: consuming 1.9M events,
its heaps held 100–180 MB that nothing used (``mallinfo2``).
``malloc_trim`` hands the free pages back (those inside a
heap as well as its top). Elsewhere than glibc there is nothing to call and
nothing is done. A call costs 1–20 ms, and `ingest` or a small topic can
commit batches much faster than `consume` on a busy one (about four a
second), so the pages go back at most once a second.

Large blocks are kept apart from the start: a block of 128 KiB or more that
the heap has no free room for gets a mapping of its own from glibc, given
back when it is freed, but once such a block is freed glibc raises that
threshold (up to 32 MiB), and from then on the fetched messages and pickled
jobs of later batches, megabytes each, grow the heap instead, among small
long-lived objects that keep its pages. The consumer and its fold process
fix the threshold at 128 KiB (``keep_large_blocks_apart``).
Consuming 1.9M events (`bench/growth.py`'s 240 days), the consumer's own
process peaked at 620 MB against 668 with that alone.
"""

from __future__ import annotations

import ctypes
from time import monotonic


def _glibc(name: str, *argtypes):
    """The C library's function ``name`` (returning an int), or None where there is none."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (AttributeError, OSError):
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return function


_TRIM = _glibc("malloc_trim", ctypes.c_size_t)
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
LARGE_BLOCK = 128 * 1024


def keep_large_blocks_apart(threshold: int = LARGE_BLOCK) -> bool:
    """Give a block of ``threshold`` bytes or more that the heap has no free room for a mapping of
    its own, whatever was freed before (glibc's threshold stops moving); True when the C library
    took it."""
    mallopt = _glibc("mallopt", ctypes.c_int, ctypes.c_int)
    return mallopt is not None and mallopt(_M_MMAP_THRESHOLD, threshold) == 1


EVERY_S = 1.0
_last = float("-inf")


def give_back_freed_memory(every_s: float = EVERY_S) -> bool:
    """Return the C heap's free pages to the system, unless that was done less than ``every_s``
    seconds ago; True when some went back."""
    global _last
    now = monotonic()
    if _TRIM is None or now - _last < every_s:
        return False
    _last = now
    return bool(_TRIM(0))
