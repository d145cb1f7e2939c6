"""An order's explanation (`refledger explain`) for people: money as money, times in the alliance's zone.

The read query (`store.queries.explain`) answers with UTC text and integer
minor units; this module turns one answer into the lines and tables a member
reads, in the locale's language: the order, the clicks considered, who won
under which agreement (or why nobody did), every entry posted, and each
refund with what became of it.
"""

from __future__ import annotations

from typing import Iterator

from refledger.reports.money import DEFAULT_LOCALE, format_money
from refledger.reports.words import amount, click_reason, label, party, say
from refledger.schemas import codec
from refledger.schemas.periods import alliance_zone, show_time

# (title, rows, columns, right-aligned columns): a table for the renderer
Table = tuple[str, list[dict], tuple[str, ...], tuple[str, ...]]


def explained_lines(item: dict, locale: str = DEFAULT_LOCALE, tz: str | None = None) -> Iterator[str | Table]:
    """The explanation of one order as lines (str) and tables, in reading order."""
    zone = alliance_zone(tz)

    def when(text: str) -> str:
        return show_time(codec.parse_time(text), zone, seconds=True)

    decision = item["decision"] or {}
    yield say("order_title", locale, order=item["order_id"], merchant=item["merchant_shop_id"], log=item["log"])
    for order in item["order"]:
        body = order["order"]
        yield "  " + say("order_line", locale, time=when(order["occurred_at"]), visitor=order["visitor_id"] or "-",
                         total=format_money(body["total_minor"], body["currency"], locale), event=order["event_id"])
    for copy in item.get("refused") or ():
        yield "  " + say("order_refused", locale, time=when(copy["occurred_at"]),
                         total=format_money(copy["total_minor"], copy["currency"], locale), event=copy["event_id"],
                         reason=copy["reason"], position=copy["position"])
    clicks = [{**c, "occurred_at": when(c["occurred_at"]), "eligible": label("yes" if c["eligible"] else "no", locale),
               "reason": click_reason(c["reason"], locale)}
              for c in decision.get("clicks") or []]
    yield (label("clicks_considered", locale), clicks,
           ("click_event_id", "referrer_shop_id", "occurred_at", "eligible", "reason"), ())
    yield "  " + _verdict(decision, locale)
    entries = [{**e, "shop_id": party(e["shop_id"], locale),
                "amount": amount(e["amount"], e["currency"], locale)} for e in item["entries"]]
    yield (label("entries", locale), entries,
           ("seq", "event_id", "shop_id", "account", "counterparty_shop_id", "amount", "role"), ("seq", "amount"))
    if item["refunds"]:
        refunds = [{**r, "amount_minor": format_money(r["amount_minor"], r["currency"], locale),
                    "occurred_at": when(r["occurred_at"])} for r in item["refunds"]]
        yield (label("refunds", locale), refunds, ("event_id", "refund_id", "amount_minor", "occurred_at", "status"),
               ("amount_minor",))


def _verdict(decision: dict, locale: str) -> str:
    """Who won and under which terms, or that nobody did (never "agreement: - v-")."""
    if not decision.get("referrer_shop_id"):
        return say("unattributed", locale)
    rate = decision.get("rate_bp")
    terms = decision["model"] + (f", {rate} bp" if rate is not None else "")
    for category, category_rate in sorted((decision.get("category_rates_bp") or {}).items()):
        terms += f", {category} {category_rate} bp"  # the rate of that category's lines (SPEC §6)
    return say("attributed", locale, click=decision["winning_click_event_id"], referrer=decision["referrer_shop_id"],
               agreement=decision["agreement_id"], version=decision["agreement_version"], terms=terms,
               commission=("—" if decision["commission"] is None
                           else format_money(decision["commission"], decision["currency"], locale)))
