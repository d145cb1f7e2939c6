"""The JSON Lines form of a record (SPEC section 2).

A record differs from its JSON object only in times: ``int`` milliseconds in
the record, ``YYYY-MM-DDTHH:MM:SS.mmmZ`` text in JSON. Writing also leaves
out what the record holds only because the schema needs a value:

* a null ``signature`` is omitted;
* agreement ``rate_bp``, ``amount_minor`` and ``currency`` are omitted when
  null, and ``category_rates_bp`` when empty unless the model is ``cps``
  (a cps agreement always shows its category rates, even ``{}``).

``visitor_id`` is always written, ``null`` included, and so are
``attribution_window_days`` and ``hold_days``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from refledger.schemas.timestamps import format_utc_millis

ENVELOPE_FIELDS = ("event_id", "type", "occurred_at", "alliance_id", "shop_id", "visitor_id")
AGREEMENT_NULLABLE_FIELDS = frozenset({"rate_bp", "amount_minor", "currency"})


def _plain_payload(payload: Mapping) -> dict:
    return dict(payload)


def _order_payload(payload: Mapping) -> dict:
    out = dict(payload)
    out["lines"] = [dict(line) for line in payload["lines"]]
    return out


def _agreement_payload(payload: Mapping) -> dict:
    out = {}
    for field, value in payload.items():
        if field in AGREEMENT_NULLABLE_FIELDS and value is None:
            continue
        if field == "category_rates_bp":
            if not value and payload["model"] != "cps":
                continue
            value = dict(value)
        out[field] = value
    out["effective_from"] = format_utc_millis(payload["effective_from"])
    return out


def _settlement_payload(payload: Mapping) -> dict:
    out = dict(payload)
    out["period_end"] = format_utc_millis(payload["period_end"])
    return out


def _close_payload(payload: Mapping) -> dict:
    out = dict(payload)
    out["closed_through"] = format_utc_millis(payload["closed_through"])
    return out


def _without_nulls(payload: Mapping) -> dict:
    """Optional fields (a member's public key, a policy's settings) appear only when given."""
    return {field: value for field, value in payload.items() if value is not None}


_PAYLOAD_TO_JSON: Mapping[str, Callable[[Mapping], dict]] = {
    "order": _order_payload,
    "agreement": _agreement_payload,
    "settlement": _settlement_payload,
    "close": _close_payload,
    "member": _without_nulls,
    "policy": _without_nulls,
}


def record_to_json_object(record: Mapping) -> dict:
    """The JSON Lines object of a valid record, keys in the order of SPEC section 2."""
    out = {field: record[field] for field in ENVELOPE_FIELDS}
    out["occurred_at"] = format_utc_millis(record["occurred_at"])
    kind = record["type"]
    out[kind] = _PAYLOAD_TO_JSON.get(kind, _plain_payload)(record[kind])
    signature = record.get("signature")
    if signature is not None:
        out["signature"] = signature
    return out
