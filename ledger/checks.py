"""The SPEC §4 checks an event can fail by itself, given which shops are members.

``check_event(event, knows)`` applies, in this order: shop_mismatch (the
emitter is not the party the type requires), unknown_shop (a shop the event
names has not been made a member earlier in the log), then the content
checks (negative_amount, unknown_currency, total_mismatch, the terms an
agreement's model needs, retroactive_agreement). The checks against more of
the fold's state (duplicate_order, currency_mismatch, refund_exceeds_order,
payout_exceeds_payable) are made by the fold's handlers.
"""

from __future__ import annotations

from typing import Callable

from refledger.ledger.currencies import is_currency
from refledger.ledger.events import (
    ALLIANCE, ANY, NEGATIVE_AMOUNT, RETROACTIVE_AGREEMENT, SCHEMA_INVALID, SHOP_MISMATCH, TOTAL_MISMATCH,
    UNKNOWN_CURRENCY, UNKNOWN_SHOP, Agreement, Event, Problem,
)

Knows = Callable[[str], bool]


def _mismatch(kind: str, required: str, emitter: str) -> Problem:
    article = "an" if kind[:1] in ("a", "e", "i", "o", "u") else "a"
    return SHOP_MISMATCH, f"{article} {kind} must be emitted by {required!r}, not {emitter!r}"


def _unknown(shop: str) -> Problem:
    return UNKNOWN_SHOP, f"{shop!r} has not been made a member earlier in the log"


def _check_traffic(ev, knows: Knows) -> Problem | None:
    if ev.shop_id != ev.referrer_shop_id:
        return _mismatch(ev.type, ev.referrer_shop_id, ev.shop_id)
    if not knows(ev.shop_id):
        return _unknown(ev.shop_id)
    if not knows(ev.merchant_shop_id):
        return _unknown(ev.merchant_shop_id)
    return None


def _check_merchant_event(ev, knows: Knows) -> Problem | None:
    if ev.shop_id != ev.merchant_shop_id:
        return _mismatch(ev.type, ev.merchant_shop_id, ev.shop_id)
    if not knows(ev.shop_id):
        return _unknown(ev.shop_id)
    return content_problem(ev)


def _check_alliance_event(ev, knows: Knows) -> Problem | None:
    if ev.shop_id != ALLIANCE:
        return _mismatch(ev.type, ALLIANCE, ev.shop_id)
    if ev.type == "member" and ev.member_shop_id in (ALLIANCE, ANY):
        return UNKNOWN_SHOP, f"{ev.member_shop_id!r} is not a shop and cannot be a member"
    if ev.type in ("payout", "adjustment"):
        if ev.merchant_shop_id == ev.referrer_shop_id:
            return SHOP_MISMATCH, f"a {ev.type} between {ev.merchant_shop_id!r} and itself"
        for party in (ev.merchant_shop_id, ev.referrer_shop_id):
            if party != ALLIANCE and not knows(party):  # the alliance's fund is a party, not a shop
                return _unknown(party)
    return content_problem(ev)


_CHECKS = {
    "view": _check_traffic, "click": _check_traffic,
    "order": _check_merchant_event, "refund": _check_merchant_event,
    "member": _check_alliance_event, "agreement": _check_alliance_event,
    "settlement": _check_alliance_event, "payout": _check_alliance_event,
    "adjustment": _check_alliance_event, "close": _check_alliance_event, "policy": _check_alliance_event,
}


def check_event(ev: Event, knows: Knows) -> Problem | None:
    """The first SPEC §4 problem the event itself shows; ``knows(shop)`` says whether a
    shop has been made a member earlier in the log."""
    return _CHECKS[ev.type](ev, knows)


def _currency_problem(code: str | None) -> Problem | None:
    if code is not None and not is_currency(code):
        return UNKNOWN_CURRENCY, f"{code!r} is not an active ISO 4217 code"
    return None


def content_problem(ev: Event) -> Problem | None:
    """negative_amount, unknown_currency, total_mismatch, retroactive_agreement, missing terms."""
    kind = ev.type
    if kind == "order":
        for sku, _category, quantity, unit_price in ev.lines:
            if quantity < 1:
                return NEGATIVE_AMOUNT, f"line {sku!r} has quantity {quantity} (< 1)"
            if unit_price < 0:
                return NEGATIVE_AMOUNT, f"line {sku!r} has unit price {unit_price}"
        if ev.total_minor < 0:
            return NEGATIVE_AMOUNT, f"total_minor {ev.total_minor}"
        problem = _currency_problem(ev.currency)
        if problem:
            return problem
        lines_sum = sum(quantity * unit_price for _sku, _category, quantity, unit_price in ev.lines)
        if lines_sum != ev.total_minor:
            return TOTAL_MISMATCH, f"total_minor {ev.total_minor} but the lines sum to {lines_sum}"
        return None
    if kind == "refund":
        if ev.amount_minor <= 0:
            return NEGATIVE_AMOUNT, f"refund amount_minor {ev.amount_minor} (must be > 0)"
        return _currency_problem(ev.currency)
    if kind == "payout":
        if ev.amount_minor < 0:
            return NEGATIVE_AMOUNT, f"payout amount_minor {ev.amount_minor}"
        return _currency_problem(ev.currency)
    if kind == "adjustment":
        return _currency_problem(ev.currency)
    if kind == "agreement":
        return _agreement_problem(ev)
    return None


def _agreement_problem(a: Agreement) -> Problem | None:
    numbers = [("rate_bp", a.rate_bp), ("amount_minor", a.amount_minor),
               ("attribution_window_days", a.attribution_window_days), ("hold_days", a.hold_days)]
    numbers += [(f"category_rates_bp[{k!r}]", v) for k, v in a.category_rates_bp]
    for name, value in numbers:
        if value is not None and value < 0:
            return NEGATIVE_AMOUNT, f"agreement {name} is {value}"
    if a.model == "cps" and a.rate_bp is None:
        return SCHEMA_INVALID, "a cps agreement needs rate_bp"
    if a.model in ("cpa", "cpc") and (a.amount_minor is None or a.currency is None):
        return SCHEMA_INVALID, f"a {a.model} agreement needs amount_minor and currency"
    problem = _currency_problem(a.currency)
    if problem:
        return problem
    if a.effective_from < a.occurred_at:
        return RETROACTIVE_AGREEMENT, "effective_from is earlier than the agreement event itself"
    return None
