"""The event shape rules an Avro schema cannot express, shared by every input path.

:func:`check_shape` runs on a *datum*: the full Avro form of an event, every
envelope field present (payloads of other types null), times as ``int``
milliseconds, types already guaranteed by the schema (the Avro reader or the
JSON converter saw to that). :func:`datum_to_record` then drops the null
payloads to give the record of docs/architecture.md.

Business rules (amounts, totals, shops, the ISO 4217 list) belong to the fold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from refledger.schemas.errors import invalid
from refledger.schemas.timestamps import MAX_MILLIS, MIN_MILLIS

PAYLOAD_TYPES = (
    "view", "click", "order", "refund", "member", "agreement", "settlement", "payout", "adjustment",
    "close", "policy",
)
SHOP_EVENT_TYPES = frozenset({"view", "click", "order", "refund"})
ALLIANCE_EVENT_TYPES = frozenset(PAYLOAD_TYPES) - SHOP_EVENT_TYPES
OPTIONAL_ENVELOPE_FIELDS = ("signature",)
EVENT_ID_MAX_CHARS = 64
AMOUNT_MODELS = frozenset({"cpa", "cpc"})
ALLIANCE = "alliance"  # the alliance's fund, a party to payouts and adjustments (SPEC §2)
MAX_MINOR = 10**12     # every amount in minor units is at most this, in absolute value (SPEC §2)
MAX_QUANTITY = 10**6
MAX_DAYS = 90          # attribution_window_days and hold_days are 0 to 90 (SPEC §9a)


def check_currency(field: str, code: str) -> None:
    """A currency code is three upper-case ASCII letters (whether ISO 4217 knows it is the fold's call)."""
    if not (len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()):
        raise invalid(field, f"expected three upper-case letters, got {code!r}")


def check_time(field: str, millis: int) -> None:
    """A time must be expressible in the JSON Lines text form (years 0001 to 9999)."""
    if not MIN_MILLIS <= millis <= MAX_MILLIS:
        raise invalid(field, f"time out of range (years 0001-9999): {millis}")


def check_minor(field: str, amount: int) -> None:
    """An amount in minor units is at most 10^12 in absolute value."""
    if not -MAX_MINOR <= amount <= MAX_MINOR:
        raise invalid(field, f"{amount} is beyond the bound of ±10^12 minor units")


def _check_money_payload(kind: str, payload: Mapping) -> None:
    check_currency(f"{kind}.currency", payload["currency"])
    check_minor(f"{kind}.amount_minor", payload["amount_minor"])


def _check_transfer(kind: str, payload: Mapping) -> None:
    _check_money_payload(kind, payload)
    if payload["merchant_shop_id"] == ALLIANCE and payload["referrer_shop_id"] == ALLIANCE:
        raise invalid(f"{kind}.referrer_shop_id", "merchant and referrer are both the alliance's fund")


def _check_order(kind: str, payload: Mapping) -> None:
    check_currency("order.currency", payload["currency"])
    if not payload["lines"]:
        raise invalid("order.lines", "an order needs at least one line")
    for i, line in enumerate(payload["lines"]):
        if not line["quantity"] <= MAX_QUANTITY:
            raise invalid(f"order.lines[{i}].quantity", f"{line['quantity']} is beyond the bound of 10^6")
        check_minor(f"order.lines[{i}].unit_price_minor", line["unit_price_minor"])
    check_minor("order.total_minor", payload["total_minor"])


def _check_agreement(kind: str, payload: Mapping) -> None:
    check_time("agreement.effective_from", payload["effective_from"])
    if payload["currency"] is not None:
        check_currency("agreement.currency", payload["currency"])
    if payload["amount_minor"] is not None:
        check_minor("agreement.amount_minor", payload["amount_minor"])
    for field in ("attribution_window_days", "hold_days"):
        if payload[field] > MAX_DAYS:
            raise invalid(f"agreement.{field}", f"{payload[field]} days; at most {MAX_DAYS}")
    model = payload["model"]
    if model == "cps" and payload["rate_bp"] is None:
        raise invalid("agreement.rate_bp", "required when model is cps")
    if model in AMOUNT_MODELS:
        for field in ("amount_minor", "currency"):
            if payload[field] is None:
                raise invalid(f"agreement.{field}", f"required when model is {model}")


def _check_settlement(kind: str, payload: Mapping) -> None:
    check_time("settlement.period_end", payload["period_end"])


def _check_close(kind: str, payload: Mapping) -> None:
    check_time("close.closed_through", payload["closed_through"])


_PAYLOAD_CHECKS: Mapping[str, Callable[[str, Mapping], None]] = {
    "order": _check_order,
    "refund": _check_money_payload,
    "payout": _check_transfer,
    "adjustment": _check_transfer,
    "agreement": _check_agreement,
    "settlement": _check_settlement,
    "close": _check_close,
}


def check_shape(datum: Mapping) -> None:
    """Raise :class:`~schemas.errors.SchemaInvalid` naming the field when the event breaks a shape rule.

    The rules: ``event_id`` has 1 to 64 characters; the payload named by
    ``type`` is present and every other payload is null or absent;
    ``visitor_id`` is set on shop events; times fit the text form; currency
    codes are three upper-case letters; an order has lines; amounts are
    within ±10^12 minor units and quantities at most 10^6; a cps agreement
    has ``rate_bp``, a cpa or cpc one ``amount_minor`` and ``currency``, and
    its window and hold are at most 90 days; a payout or adjustment does not
    have the alliance's fund on both sides.
    """
    event_id = datum["event_id"]
    if not 0 < len(event_id) <= EVENT_ID_MAX_CHARS:
        raise invalid("event_id", f"must have 1 to {EVENT_ID_MAX_CHARS} characters, has {len(event_id)}")
    kind = datum["type"]
    payload = datum.get(kind)
    if payload is None:
        raise invalid(kind, f"payload missing for an event of type {kind}")
    for other in PAYLOAD_TYPES:
        if other != kind and datum.get(other) is not None:
            raise invalid(other, f"payload not allowed on an event of type {kind}")
    if kind in SHOP_EVENT_TYPES and datum["visitor_id"] is None:
        raise invalid("visitor_id", f"required on {kind} events")
    check_time("occurred_at", datum["occurred_at"])
    check_payload = _PAYLOAD_CHECKS.get(kind)
    if check_payload is not None:
        check_payload(kind, payload)


def datum_to_record(datum: dict) -> dict:
    """Turn a checked datum into a record in place: drop null payloads and null optional envelope fields."""
    kind = datum["type"]
    for other in PAYLOAD_TYPES:
        if other != kind:
            datum.pop(other, None)
    for field in OPTIONAL_ENVELOPE_FIELDS:
        if datum.get(field, 0) is None:
            del datum[field]
    return datum

