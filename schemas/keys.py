"""Ed25519 signing keys of shops and of the alliance's operator (SPEC §4a).

A private key is kept in a PEM file in PKCS #8 form (``-----BEGIN PRIVATE
KEY-----``), the form ``openssl pkey``, Node's ``crypto.createPrivateKey`` and
most other tools read, written with mode 0600 and never over an existing
file. A public key is what members and the operator publish in ``member``
and ``policy`` events: the raw 32 bytes, base64.

``derived_key(seed, name)`` makes the same key for the same seed and name,
for simulated alliances (never for a real shop: anyone knowing the seed
knows the key).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

from nacl.signing import SigningKey

# PKCS #8 PrivateKeyInfo of an Ed25519 key (RFC 8410): a fixed DER prefix, then the 32-byte seed.
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM = re.compile(rb"-----BEGIN PRIVATE KEY-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END PRIVATE KEY-----")


class SigningKeyError(ValueError):
    """A key file that cannot be written or read as an Ed25519 private key."""


def new_key() -> SigningKey:
    """A new random key pair."""
    return SigningKey.generate()


def derived_key(seed: int | str, name: str) -> SigningKey:
    """The simulated key of ``name`` (a shop, or the operator) for a seed: always the same."""
    return SigningKey(hashlib.sha256(f"refledger simulated key|{seed}|{name}".encode("utf-8")).digest())


def public_key_text(key: SigningKey) -> str:
    """The public key as members and the operator publish it: base64 of the raw 32 bytes."""
    return base64.b64encode(bytes(key.verify_key)).decode("ascii")


def private_key_pem(key: SigningKey) -> bytes:
    body = base64.encodebytes(_PKCS8_PREFIX + bytes(key)).replace(b"\n", b"")
    return b"-----BEGIN PRIVATE KEY-----\n" + body + b"\n-----END PRIVATE KEY-----\n"


def write_key_file(path: str | Path, key: SigningKey) -> Path:
    """Write the private key to a new file readable by its owner only (0600)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningKeyError(f"{path} exists already: a key file is never overwritten") from None
    except OSError as exc:
        raise SigningKeyError(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)  # whatever the umask
        out.write(private_key_pem(key))
    return path


def read_key_file(path: str | Path) -> SigningKey:
    """The Ed25519 private key in a PEM (PKCS #8) file, as ``refledger keygen`` or
    ``openssl genpkey -algorithm ed25519`` write it."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    match = _PEM.search(text)
    der = None
    if match:
        try:
            der = base64.b64decode(b"".join(match[1].split()), validate=True)
        except ValueError:
            der = None
    if der is None or len(der) != len(_PKCS8_PREFIX) + 32 or not der.startswith(_PKCS8_PREFIX):
        raise SigningKeyError(f"{path} holds no Ed25519 private key (expected PEM, BEGIN PRIVATE KEY)")
    return SigningKey(der[len(_PKCS8_PREFIX):])
