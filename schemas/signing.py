"""What an event's signature covers, and signing and checking it (SPEC §4a).

An event's signature is Ed25519 over its **canonical bytes**: the RFC 8785
canonical JSON (``schemas.jcs``) of its JSON Lines form (``schemas.jsonform``)
with ``signature`` removed and every field whose value is null removed, at
every depth. The JSON Lines form already writes times as
``YYYY-MM-DDTHH:MM:SS.mmmZ``, and agreements with ``attribution_window_days``
and ``hold_days`` always, and ``category_rates_bp`` as ``{}`` for a ``cps``
agreement without one (left out for other models when empty). A record read
from a JSON line, or from Avro of any schema version, is the same record, so
it has the same canonical bytes: a signature survives schema versions.

Signatures and public keys travel as base64 text (standard alphabet, padded):
64 and 32 raw bytes. Only the canonical spelling of those bytes is accepted
(what ``base64.b64encode`` writes), so one signature has one text.

Ed25519 is PyNaCl's (libsodium): it verified about twice as many events per
second of CPU as `cryptography` (OpenSSL) on our machines, and lets go of the
interpreter lock while it works (``bench/signing.py``; docs/audit.md).
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from functools import lru_cache

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey

from refledger.schemas import jcs
from refledger.schemas.jsonform import record_to_json_object
from refledger.schemas.timestamps import format_utc_millis

SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32


def _without_nulls(value):
    if type(value) is dict:
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if type(value) is list:
        return [_without_nulls(v) for v in value]
    return value


def signed_form(record: Mapping) -> dict:
    """The JSON object a signature covers: the JSON Lines form without ``signature`` and nulls."""
    obj = record_to_json_object(record)
    obj.pop("signature", None)
    return _without_nulls(obj)


def canonical_bytes(record: Mapping) -> bytes:
    """The bytes an event's signature covers; ``ValueError`` if the event has none (a string
    that is not Unicode text)."""
    return jcs.canonical(signed_form(record))


def traffic_canonical_bytes(kind: str, event_id: str, occurred_at: int, alliance_id: str, shop_id: str,
                            visitor_id: str | None, referrer: str, merchant: str, placement: str | None) -> bytes:
    """``canonical_bytes`` of a view or click given as the fields a reader found (the consumer's
    fast path; a test holds it to ``canonical_bytes``). The members are written in JCS order."""
    payload = {"merchant_shop_id": merchant}
    if placement is not None:
        payload["placement_id"] = placement
    payload["referrer_shop_id"] = referrer
    obj = {"alliance_id": alliance_id}
    if kind == "click":
        obj["click"] = payload
    obj["event_id"] = event_id
    obj["occurred_at"] = _iso_time(occurred_at)
    obj["shop_id"] = shop_id
    obj["type"] = kind
    if kind == "view":
        obj["view"] = payload
    if visitor_id is not None:
        obj["visitor_id"] = visitor_id
    return jcs.canonical_presorted(obj)


_DAYS: dict[int, str] = {}  # day number → "YYYY-MM-DDT", as format_utc_millis writes it


def _iso_time(millis: int) -> str:
    """``format_utc_millis`` for the fast path, its dates remembered (a test holds them alike)."""
    day, rest = divmod(millis, 86_400_000)
    date = _DAYS.get(day)
    if date is None:
        if len(_DAYS) > 4096:
            _DAYS.clear()
        date = _DAYS[day] = format_utc_millis(day * 86_400_000)[:11]
    seconds, ms = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{date}{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}Z"


def _strict_b64(text: str, size: int) -> bytes | None:
    """The raw bytes of canonical base64 text of ``size`` bytes, else None."""
    if type(text) is not str or not text.isascii():
        return None
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        return None
    if len(raw) != size or binascii.b2a_base64(raw, newline=False) != text.encode("ascii"):
        return None
    return raw


def public_key_bytes(text: str) -> bytes | None:
    """A public key's raw 32 bytes, or None when the text is not one."""
    return _strict_b64(text, PUBLIC_KEY_BYTES)


@lru_cache(maxsize=4096)
def _key(text: str) -> bytes | None:
    return public_key_bytes(text)


def verify(public_key: str, signature: str, message: bytes) -> bool:
    """Whether ``signature`` is the Ed25519 signature of ``message`` under ``public_key``
    (both base64 text). False for anything malformed; never raises for bad input."""
    key = _key(public_key)
    raw = _strict_b64(signature, SIGNATURE_BYTES)
    if key is None or raw is None or message is None:
        return False
    try:
        crypto_sign_open(raw + message, key)
    except BadSignatureError:
        return False
    return True


def sign_bytes(message: bytes, key: SigningKey) -> str:
    """The base64 Ed25519 signature of ``message``."""
    return binascii.b2a_base64(key.sign(message).signature, newline=False).decode("ascii")


def signed_record(record: Mapping, key: SigningKey) -> dict:
    """A copy of the record carrying its signature under ``key``."""
    out = dict(record)
    out.pop("signature", None)
    out["signature"] = sign_bytes(canonical_bytes(out), key)
    return out
