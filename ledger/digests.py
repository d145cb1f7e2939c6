"""The fold's 16-byte digests: what it remembers of event ids, contents and closed orders.

Two things are taken for one only when their BLAKE2b-128 digests are equal; every digest the
fold keeps and compares has this one size, so they can be stored side by side in fixed layouts.
"""

from __future__ import annotations

from hashlib import blake2b
from heapq import merge

DIGEST_SIZE = 16


def digest(data: bytes) -> bytes:
    """The BLAKE2b-128 digest of some bytes."""
    return blake2b(data, digest_size=DIGEST_SIZE).digest()


def text_digest(text: str) -> bytes:
    """The digest of a text; ids that came from JSON may hold lone surrogates, kept as they are."""
    return digest(text.encode("utf-8", "surrogatepass"))


class DigestSet:
    """A set of digests that only grows, 16 bytes each: sorted side by side in one buffer, found by
    bisection. What the fold keeps for good (every closed order, SPEC §9a) costs its digest's size
    and nothing more, however long the history."""

    __slots__ = ("_sorted",)

    def __init__(self, digests=()):
        self._sorted = b"".join(sorted(set(digests)))

    def __len__(self) -> int:
        return len(self._sorted) // DIGEST_SIZE

    def __iter__(self):
        data = self._sorted
        return (data[i:i + DIGEST_SIZE] for i in range(0, len(data), DIGEST_SIZE))

    def __contains__(self, key: bytes) -> bool:
        data, size = self._sorted, DIGEST_SIZE
        lo, hi = 0, len(data) // size
        while lo < hi:
            mid = (lo + hi) // 2
            if data[mid * size:mid * size + size] < key:
                lo = mid + 1
            else:
                hi = mid
        return len(key) == size and data[lo * size:lo * size + size] == key

    def update(self, digests) -> None:
        """Add digests (a close adds its period's at once: the buffer is sorted again once)."""
        added = sorted(set(digests))
        if not added:
            return
        merged, last = bytearray(), None
        for key in merge(self, added):  # without a Python object per digest kept
            if key != last:
                merged += key
                last = key
        self._sorted = bytes(merged)
