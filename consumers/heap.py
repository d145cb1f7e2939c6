"""Freed memory given back to the system after each batch.

glibc's malloc keeps what a process frees in its heaps for the next
allocation, and a consumer frees a batch's worth of messages, rows and Arrow
columns a few times a second, from several threads: on 1.9M events its
heaps held 100–180 MB that nothing used (``mallinfo2``), and that free
memory grew with the ledger, since DuckDB's checkpoints of a larger file
allocate more. ``malloc_trim`` hands the free pages back (those inside a
heap as well as its top). Elsewhere than glibc there is nothing to call and
nothing is done.
"""

from __future__ import annotations

import ctypes


def _malloc_trim():
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def give_back_freed_memory() -> bool:
    """Return the C heap's free pages to the system; True when some were."""
    return bool(_TRIM(0)) if _TRIM is not None else False
