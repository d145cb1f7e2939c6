"""The per-partition hash chain over entries (SPEC §10).

    canonical_bytes(entry) = UTF-8 of json.dumps({every field except prev_hash
                             and hash}, separators=(",", ":"), sort_keys=True,
                             ensure_ascii=False)
    hash = sha256(bytes.fromhex(prev_hash) + canonical_bytes(entry)).hexdigest()

The first entry of a partition has prev_hash = GENESIS (64 zeros).
"""

from __future__ import annotations

import hashlib
import json
from json.encoder import encode_basestring

from refledger.ledger.entries import ENTRY_FIELDS

GENESIS = "0" * 64
HASHED_FIELDS = tuple(name for name in ENTRY_FIELDS if name not in ("prev_hash", "hash"))

_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode


def canonical_bytes(fields: dict) -> bytes:
    """Canonical bytes of an entry given as a dict of (at least) its hashed fields."""
    return _dumps({name: fields[name] for name in HASHED_FIELDS}).encode("utf-8")


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """sha256(bytes.fromhex(prev_hash) + canonical), as 64 hex digits."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


def canonical_values(values: tuple) -> bytes:
    """canonical_bytes for the hashed fields given as a tuple in Entry field order.

    Writes exactly the bytes ``canonical_bytes`` gives (keys in sorted order,
    compact, non-ASCII kept) without building a dict, for the field types an
    Entry has (str; int for seq and amount; str or None, int or None for the
    agreement fields); a test checks that the two agree.
    """
    (entry_id, txn_id, seq, event_id, shop_id, account, counterparty, currency, amount, subject, role,
     agreement_id, agreement_version, model, rate_bp, click_event_id, refund_id, reason) = values
    enc = encode_basestring
    return (
        f'{{"account":{enc(account)},'
        f'"agreement_id":{"null" if agreement_id is None else enc(agreement_id)},'
        f'"agreement_version":{"null" if agreement_version is None else int.__repr__(agreement_version)},'
        f'"amount":{int.__repr__(amount)},'
        f'"click_event_id":{"null" if click_event_id is None else enc(click_event_id)},'
        f'"counterparty_shop_id":{enc(counterparty)},"currency":{enc(currency)},'
        f'"entry_id":{enc(entry_id)},"event_id":{enc(event_id)},'
        f'"model":{"null" if model is None else enc(model)},'
        f'"rate_bp":{"null" if rate_bp is None else int.__repr__(rate_bp)},'
        f'"reason":{"null" if reason is None else enc(reason)},'
        f'"refund_id":{"null" if refund_id is None else enc(refund_id)},'
        f'"role":{enc(role)},"seq":{int.__repr__(seq)},"shop_id":{enc(shop_id)},'
        f'"subject":{enc(subject)},"txn_id":{enc(txn_id)}}}'
    ).encode("utf-8")
