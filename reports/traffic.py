"""Who brings what to whom: the referrer × merchant matrix of a month (SPEC §14).

One row per pair (R → M) and currency, for the month in the alliance's time
zone: views, clicks and UV (distinct visitors of R's clicks to M) that
occurred in the month, the orders placed at M in the month that are
attributed to R, their GMV (net of the refunds folded so far), the
commission posted for them and for R's `cpc` clicks to M in the month,
conversion (orders / UV) and UV yield (GMV / UV).

Money is per currency: a pair with orders or commission in two currencies
has two rows, each with the pair's views, clicks and UV; a pair with traffic
and no money has one row whose currency is null. Rows are ordered by GMV
descending, then referrer, merchant and currency.
"""

from __future__ import annotations

from refledger.reports.folded import WindowFacts, window_facts
from refledger.reports.ratios import conversion, uv_yield
from refledger.reports.months import alliance_month

COLUMNS = ("referrer_shop_id", "merchant_shop_id", "currency", "views", "clicks", "uv", "orders", "gmv_minor",
           "commission_minor", "conversion", "uv_yield_minor")


def traffic(cur, period: str, zone: str | None = None) -> list[dict]:
    """The month's referrer × merchant rows (see the module's doc)."""
    start, end = alliance_month(period, zone)
    return traffic_rows(window_facts(cur, start, end))


def traffic_rows(facts: WindowFacts) -> list[dict]:
    """The pair rows of a window's facts, by GMV descending, then shop ids and currency."""
    money = {(r, m, c): [n, gmv, 0] for (r, m, c), (n, gmv) in facts.orders.items() if r is not None}
    for key, commission in facts.commission.items():
        money.setdefault(key, [0, 0, 0])[2] += commission
    money = {key: figures for key, figures in money.items() if any(figures)}
    rows = [_row(r, m, currency, facts.pairs.get((r, m), (0, 0, 0)), figures)
            for (r, m, currency), figures in money.items()]
    with_money = {(r, m) for r, m, _ in money}
    rows += [_row(r, m, None, seen, (0, 0, 0)) for (r, m), seen in facts.pairs.items() if (r, m) not in with_money]
    rows.sort(key=lambda row: (-row["gmv_minor"], row["referrer_shop_id"], row["merchant_shop_id"],
                               row["currency"] or ""))
    return rows


def _row(referrer: str, merchant: str, currency: str | None, seen, money) -> dict:
    views, clicks, uv = seen
    orders, gmv, commission = money
    return {"referrer_shop_id": referrer, "merchant_shop_id": merchant, "currency": currency,
            "views": views, "clicks": clicks, "uv": uv, "orders": orders, "gmv_minor": gmv,
            "commission_minor": commission, "conversion": conversion(orders, uv), "uv_yield_minor": uv_yield(gmv, uv)}
