"""The fold's 16-byte digests: what it remembers of event ids, contents and closed orders.

Two things are taken for one only when their BLAKE2b-128 digests are equal; every digest the
fold keeps and compares has this one size, so they can be stored side by side in fixed layouts.
"""

from __future__ import annotations

from hashlib import blake2b

DIGEST_SIZE = 16


def digest(data: bytes) -> bytes:
    """The BLAKE2b-128 digest of some bytes."""
    return blake2b(data, digest_size=DIGEST_SIZE).digest()


def text_digest(text: str) -> bytes:
    """The digest of a text; ids that came from JSON may hold lone surrogates, kept as they are."""
    return digest(text.encode("utf-8", "surrogatepass"))
