"""A small signed alliance for the SPEC §4a tests: its keys, and events in its members' words.

The operator and each shop get a fixed key (derived from a name, as
`simulate --sign` does), so every run signs the same bytes alike.
"""

from __future__ import annotations

import json

from refledger.schemas import codec
from refledger.schemas.keys import derived_key, public_key_text
from refledger.schemas.signing import signed_record

ALLIANCE_ID = "baby-care"
OPERATOR = derived_key("tests", "operator")
LI = derived_key("tests", "li-kids")
LI_NEW = derived_key("tests", "li-kids, rotated")
LI_NEWER = derived_key("tests", "li-kids, rotated twice")
WANG = derived_key("tests", "wang-bath")
STRANGER = derived_key("tests", "someone else")


def key(k) -> str:
    return public_key_text(k)


def event(event_id: str, kind: str, at: str, shop: str, payload: dict, visitor: str | None = None) -> dict:
    """An event in its JSON Lines form (SPEC §2)."""
    return {"event_id": event_id, "type": kind, "occurred_at": at, "alliance_id": ALLIANCE_ID, "shop_id": shop,
            "visitor_id": visitor, kind: payload}


def record(obj: dict) -> dict:
    """The codec's record of a JSON Lines event (checked as any input is)."""
    return codec.record_from_json(json.loads(json.dumps(obj)))


def signed(obj: dict, by) -> dict:
    """The event's record, signed with ``by``."""
    return signed_record(record(obj), by)


def member(event_id: str, at: str, shop: str, public_key: str | None = None, status: str = "active") -> dict:
    payload = {"member_shop_id": shop, "status": status}
    if public_key is not None:
        payload["public_key"] = public_key
    return event(event_id, "member", at, "alliance", payload)


def policy(event_id: str, at: str, require: bool | None, operator_key: str | None = None) -> dict:
    payload = {"policy_id": event_id}
    if require is not None:
        payload["require_signatures"] = require
    if operator_key is not None:
        payload["operator_public_key"] = operator_key
    return event(event_id, "policy", at, "alliance", payload)


def agreement(event_id: str, at: str, rate_bp: int = 800) -> dict:
    return event(event_id, "agreement", at, "alliance", {
        "agreement_id": "default", "version": 1, "effective_from": at, "merchant_shop_id": "*",
        "referrer_shop_id": "*", "model": "cps", "rate_bp": rate_bp})


def click(event_id: str, at: str, visitor: str = "v1", referrer: str = "li-kids", merchant: str = "wang-bath"):
    return event(event_id, "click", at, referrer, {"referrer_shop_id": referrer, "merchant_shop_id": merchant,
                                                   "placement_id": "article-12"}, visitor)


def order(event_id: str, at: str, order_id: str, visitor: str = "v1", merchant: str = "wang-bath",
          price: int = 10_000) -> dict:
    return event(event_id, "order", at, merchant, {
        "order_id": order_id, "merchant_shop_id": merchant, "currency": "CNY",
        "lines": [{"sku": "婴儿沐浴露", "category": "care", "quantity": 1, "unit_price_minor": price}],
        "total_minor": price}, visitor)


def close(event_id: str, at: str, through: str) -> dict:
    return event(event_id, "close", at, "alliance", {"close_id": event_id, "closed_through": through})


def founding() -> list[dict]:
    """The alliance before it signs: li-kids and wang-bath publish their keys, a cps agreement, then
    the operator's first policy requiring signatures, signed by the key it names."""
    return [record(member("m-li", "2026-10-31T00:00:00.000Z", "li-kids", key(LI))),
            record(member("m-wang", "2026-10-31T00:00:00.000Z", "wang-bath", key(WANG))),
            record(agreement("a-1", "2026-11-01T00:00:00.000Z")),
            signed(policy("p-1", "2026-11-01T00:00:00.000Z", True, key(OPERATOR)), OPERATOR)]


def json_line(rec: dict) -> str:
    return codec.record_to_json_line(rec)
