"""Everything the operator's monthly page shows, gathered in one read query (`refledger report`).

For a month P in the alliance's time zone:

* `traffic`: the referrer × merchant rows of P (`reports/traffic.py`);
* `members`: the scorecards of P (`reports/scorecard.py`);
* `monthly`: the alliance's GMV per month and currency, all orders and those
  attributed to a referrer, from the month of the first order to P;
* `health`: the flags at T = the end of P, or the latest event when P has
  not ended yet (`reports/health.py`);
* `sheet`: the settlement sheet right after P's settlement
  (`reports/sheet.py`), once the ledger has folded it, else null.

The page itself is drawn by `reports/report_page.py`; this module only
reads, so it runs on the file or through a running consumer alike.
"""

from __future__ import annotations

from refledger.reports.folded import (WindowFacts, latest_event_time, monthly_gmv, orders_by_month, pair_commission,
                                      traffic_counts)
from refledger.reports.health import health
from refledger.reports.membership import member_history
from refledger.reports.sheet import SheetError, sheet
from refledger.reports.months import alliance_month
from refledger.reports.scorecard import scorecards
from refledger.reports.traffic import traffic_rows
from refledger.schemas import codec
from refledger.schemas.periods import alliance_zone, month_bounds, period_of, shift_period
from refledger.schemas.timestamps import format_utc_millis, naive_utc_millis

MAX_MONTHS = 36  # the GMV chart shows at most the three years before the month


def operator_report(cur, period: str, zone: str | None = None, **thresholds) -> dict:
    tz = alliance_zone(zone)
    start, end = alliance_month(period, zone)
    latest = latest_event_time(cur)
    at = end if latest is None else min(latest, end)
    months = months_up_to(cur, period, tz)
    by_month = orders_by_month(cur, [month_bounds(month, tz) for month in months])
    pairs, given, received = traffic_counts(cur, start, end)
    facts = WindowFacts(pairs, given, received,
                        {(r, m, c): figures for (index, r, m, c), figures in by_month.items() if index == len(months) - 1},
                        pair_commission(cur, start, end))
    return {
        "period": period,
        "zone": tz.key,
        "alliance_ids": alliance_ids(cur),
        "latest_event_at": None if latest is None else format_utc_millis(latest),
        "health_at": format_utc_millis(at),
        "traffic": traffic_rows(facts),
        "members": scorecards(member_history(cur), end, facts),
        "monthly": gmv_by_month(months, by_month),
        "health": health(cur, at=at, zone=zone, **thresholds) if latest is not None else [],
        "sheet": settled_sheet(cur, period, zone),
    }


def alliance_ids(cur) -> list[str]:
    """The alliance named on the stored events (one, unless files of several were ingested together)."""
    rows = cur.execute("SELECT avro FROM events WHERE type = 'member' ORDER BY batch_id LIMIT 1").fetchall()
    return [codec.decode(bytes(avro))["alliance_id"] for (avro,) in rows]


def settled_sheet(cur, period: str, zone: str | None) -> dict | None:
    """The settlement sheet right after the month's settlement (`reports/sheet.py`); None while the
    month is not settled."""
    try:
        return sheet(cur, period, zone)
    except SheetError:
        return None


def months_up_to(cur, period: str, tz) -> list[str]:
    """The months from the first order's (at most MAX_MONTHS) to ``period``, oldest first."""
    [(first,)] = cur.execute("SELECT min(occurred_at) FROM events WHERE type = 'order'").fetchall()
    months = [period]
    oldest = period if first is None else period_of(naive_utc_millis(first), tz)
    while months[0] > oldest and len(months) < MAX_MONTHS:
        months.insert(0, shift_period(months[0], -1))
    return months


def gmv_by_month(months: list[str], by_month: dict) -> list[dict]:
    """Per month and currency: GMV of all orders and of the attributed ones."""
    totals: dict[tuple[str, str], list[int]] = {}
    for (_shop, currency), sums in monthly_gmv(by_month, len(months)).items():
        for month, (gmv, via) in zip(months, sums):
            total = totals.setdefault((currency, month), [0, 0])
            total[0] += gmv
            total[1] += via
    currencies = sorted({currency for currency, _month in totals})
    return [{"month": month, "currency": currency, "gmv_total": totals.get((currency, month), [0, 0])[0],
             "gmv_via_alliance": totals.get((currency, month), [0, 0])[1]}
            for currency in currencies for month in months]
