"""The operator's reports as people read them (SPEC §11): money as money, months and times in the
alliance's zone, statuses and flags in words. Terminal tables and the HTML page both use these.

Every function takes a report row (the JSON-able dict a read query returns)
and gives back text; nothing here computes a figure.
"""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

from refledger.reports.money import DEFAULT_LOCALE, format_count, format_money
from refledger.reports.words import label, say
from refledger.schemas.periods import show_date, show_time
from refledger.schemas.timestamps import parse_utc_millis

NOTHING = "—"


def money(amount: int | None, currency: str | None, locale: str = DEFAULT_LOCALE) -> str:
    """¥1,234.56; a dash when there is no currency (no money at all)."""
    if currency is None or amount is None:
        return NOTHING
    return format_money(amount, currency, locale)


def count(value: int | None, locale: str = DEFAULT_LOCALE) -> str:
    return NOTHING if value is None else format_count(value, locale)


def percent(ratio: float | None) -> str:
    """A 4-decimal ratio as a percentage with 2 decimals, exactly: 0.0833 → 8.33%."""
    return NOTHING if ratio is None else f"{Decimal(str(ratio)) * 100:.2f}%"


def ratio(value: float | None) -> str:
    return NOTHING if value is None else f"{Decimal(str(value)):.4f}"


def when(iso: str | None, zone: ZoneInfo, *, date_only: bool = False) -> str:
    """A UTC time from a report row, in the alliance's zone."""
    if iso is None:
        return NOTHING
    millis = parse_utc_millis(iso)
    return show_date(millis, zone) if date_only else show_time(millis, zone)


def in_words(value: str | None, locale: str = DEFAULT_LOCALE) -> str:
    """A status or a flag (``suspended``, ``free_rider``) in the locale's words."""
    return NOTHING if value is None else label(value, locale)


def traffic_cells(row: dict, locale: str = DEFAULT_LOCALE) -> dict[str, str]:
    currency = row["currency"]
    return {"referrer": row["referrer_shop_id"], "merchant": row["merchant_shop_id"],
            "currency": currency or NOTHING, "views": count(row["views"], locale),
            "clicks": count(row["clicks"], locale), "uv": count(row["uv"], locale),
            "orders": count(row["orders"], locale), "gmv": money(row["gmv_minor"], currency, locale),
            "commission": money(row["commission_minor"], currency, locale),
            "conversion": percent(row["conversion"]), "uv_yield": money(row["uv_yield_minor"], currency, locale)}


TRAFFIC_CELLS = ("referrer", "merchant", "currency", "views", "clicks", "uv", "orders", "gmv", "commission",
                 "conversion", "uv_yield")

SCORECARD_CELLS = ("rank", "shop_id", "member_status", "status_since", "views_out", "clicks_out", "uv_out", "views_in",
                   "clicks_in", "uv_in", "reciprocity", "orders_referred", "gmv_referred", "commission_earned",
                   "gmv_total", "gmv_via_alliance", "commission_owed")


def scorecard_cells(row: dict, zone: ZoneInfo, locale: str = DEFAULT_LOCALE) -> dict[str, str]:
    currency = row["currency"]
    cells = {"rank": str(row["rank"]), "shop_id": row["shop_id"], "member_status": in_words(row["status"], locale),
             "status_since": when(row["status_since"], zone, date_only=True),
             "reciprocity": ratio(row["reciprocity"])}
    for name in ("views_out", "clicks_out", "uv_out", "views_in", "clicks_in", "uv_in", "orders_referred"):
        cells[name] = count(row[name], locale)
    for name in ("gmv_referred", "commission_earned", "gmv_total", "gmv_via_alliance", "commission_owed"):
        cells[name] = money(row[name], currency, locale)
    return cells


def evidence(row: dict, zone: ZoneInfo, locale: str = DEFAULT_LOCALE) -> str:
    """The numbers that raised a flag, as one sentence the operator can check."""
    flag = row["flag"]
    if flag == "silent_withdrawal":
        recent_days = (parse_utc_millis(row["at"]) - parse_utc_millis(row["recent_from"])) // 86_400_000
        return say(flag, locale, baseline=count(row["baseline_views_out"], locale),
                   minimum=count(row["baseline_views"], locale), recent_days=recent_days,
                   recent=count(row["recent_views_out"], locale), factor=row["withdrawal_factor"],
                   product=count(row["recent_views_out"] * row["withdrawal_factor"], locale),
                   clicks_in=count(row["recent_clicks_in"], locale))
    if flag == "free_rider":
        days = (parse_utc_millis(row["at"]) - parse_utc_millis(row["window_from"])) // 86_400_000
        return say(flag, locale, days=days, clicks_in=count(row["clicks_in"], locale),
                   minimum=count(row["free_rider_clicks"], locale), clicks_out=count(row["clicks_out"], locale),
                   ratio=row["free_rider_ratio"], product=count(row["free_rider_ratio"] * row["clicks_out"], locale))
    if flag == "declining":
        path = " → ".join(f"{month} {money(gmv, row['currency'], locale)}"
                          for month, gmv in zip(row["months"], row["gmv_total"]))
        return say(flag, locale, count=row["declining_months"], path=path)
    if flag == "inactive":
        last = when(row["last_event_at"], zone) if row["last_event_at"] else say("never", locale)
        return say(flag, locale, days=row["inactive_days"], last=last)
    return flag
