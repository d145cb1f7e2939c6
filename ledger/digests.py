"""The fold's 16-byte digests: what it remembers of event ids, contents and closed orders.

Two things are taken for one only when their BLAKE2b-128 digests are equal; every digest the
fold keeps and compares has this one size, so they can be stored side by side in fixed layouts.
"""

from __future__ import annotations

from array import array
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
    bisection within the digests that share the key's first byte (an index of 257 offsets). What the
    fold keeps for good (every closed order, SPEC §9a) costs its digest's size, however long the
    history."""

    __slots__ = ("_sorted", "_first")

    def __init__(self, digests=()):
        self._sorted = b""
        self._first = array("I", bytes(4 * 257))  # first byte b → where its digests start; 256 → the end
        self.update(digests)

    def __len__(self) -> int:
        return len(self._sorted) // DIGEST_SIZE

    def __iter__(self):
        data = self._sorted
        return (data[i:i + DIGEST_SIZE] for i in range(0, len(data), DIGEST_SIZE))

    def __contains__(self, key: bytes) -> bool:
        if len(key) != DIGEST_SIZE:
            return False
        data, size, first = self._sorted, DIGEST_SIZE, self._first
        lo, hi = first[key[0]], first[key[0] + 1]
        while lo < hi:
            mid = (lo + hi) // 2
            if data[mid * size:mid * size + size] < key:
                lo = mid + 1
            else:
                hi = mid
        return data[lo * size:lo * size + size] == key

    def update(self, digests) -> None:
        """Add digests (a close adds its period's at once: the buffer is merged again once)."""
        added = sorted(set(digests))
        if not added:
            return
        if any(len(key) != DIGEST_SIZE for key in added):
            raise ValueError(f"a digest is {DIGEST_SIZE} bytes")
        merged, last = bytearray(), None
        for key in merge(self, added):  # without a Python object per digest kept
            if key != last:
                merged += key
                last = key
        self._sorted = bytes(merged)
        first, n = self._first, 0
        for byte in range(256):
            first[byte] = n
            while n < len(merged) // DIGEST_SIZE and merged[n * DIGEST_SIZE] == byte:
                n += 1
        first[256] = n
