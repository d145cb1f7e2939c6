"""Each member's scorecard (SPEC §14): what it gives, what it takes, what it sells, where it ranks.

For a month (`period`, in the alliance's time zone) or for everything up to
a time T (`at`; default: the latest `occurred_at` among folded events), one
row per member and currency:

* as referrer: `views_out`, `clicks_out`, `uv_out` (distinct visitors of its
  clicks), `orders_referred`, `gmv_referred`, `commission_earned`;
* as merchant: `views_in`, `clicks_in`, `uv_in`, `gmv_total` (all its
  orders), `gmv_via_alliance` (its attributed orders), `commission_owed`;
* `reciprocity` = clicks_out / clicks_in (4 decimals, half up; null when it
  received no click): 1 gives as much traffic as it takes, below 1 it takes
  more than it gives;
* `rank` by contribution: `gmv_referred` descending, ties by shop id,
  within the currency;
* `status` at the end of the window, `status_since`, and `status_changes`
  (each date its status changed, the first being when it joined).

Orders, GMV and commission belong to the window their order (or cpc click)
occurred in; GMV is net of the refunds folded so far (with `at`: those that
occurred at or before T). Every member has a row in each currency that
appears in the window's money figures (zeros where it has none), or one row
with a null currency when there is no money at all.
"""

from __future__ import annotations

from refledger.reports.folded import WindowFacts, latest_event_time, window_facts
from refledger.reports.membership import MemberHistory, member_history
from refledger.reports.ratios import reciprocity
from refledger.reports.months import alliance_month
from refledger.schemas.timestamps import MIN_MILLIS, format_utc_millis

COUNTS = ("views_out", "clicks_out", "uv_out", "views_in", "clicks_in", "uv_in", "orders_referred")
MONEY = ("gmv_referred", "commission_earned", "gmv_total", "gmv_via_alliance", "commission_owed")
COLUMNS = ("rank", "shop_id", "currency", "status", "status_since", *COUNTS[:6], "reciprocity", "orders_referred",
           "gmv_referred", "commission_earned", "gmv_total", "gmv_via_alliance", "commission_owed", "status_changes")


def scorecard_window(cur, period: str | None, at: int | None, zone: str | None) -> tuple[int, int, int | None] | None:
    """(first, last millisecond, T for "as it stood at T" or None for "as it stands") of the window;
    None for an empty ledger."""
    if period is not None:
        start, end = alliance_month(period, zone)
        return start, end, None
    if at is None:  # the latest event: as the ledger stands
        latest = latest_event_time(cur)
        return None if latest is None else (MIN_MILLIS, latest, None)
    return MIN_MILLIS, at, at


def members(cur, period: str | None = None, at: int | None = None, zone: str | None = None) -> list[dict]:
    """The scorecards (see the module's doc), by currency, then rank."""
    window = scorecard_window(cur, period, at, zone)
    if window is None:
        return []
    start, end, as_of = window
    return scorecards(member_history(cur), end, window_facts(cur, start, end, as_of))


def scorecards(history: MemberHistory, end: int, facts: WindowFacts) -> list[dict]:
    """One card per member (made a member by ``end``) and currency, ranked within the currency."""
    money = shop_money(facts)
    currencies = sorted({currency for _shop, currency in money}) or [None]
    rows = []
    for currency in currencies:
        cards = [_card(history, shop, end, currency, facts, money.get((shop, currency), {}))
                 for shop in history.members(end)]
        cards.sort(key=lambda card: (-card["gmv_referred"], card["shop_id"]))
        for rank, card in enumerate(cards, 1):
            card["rank"] = rank
        rows.extend(cards)
    return rows


def shop_money(facts: WindowFacts) -> dict[tuple[str, str], dict[str, int]]:
    """(shop, currency) → its orders referred and money figures."""
    money: dict[tuple[str, str], dict[str, int]] = {}

    def add(shop, currency, **figures):
        row = money.setdefault((shop, currency), {})
        for name, value in figures.items():
            row[name] = row.get(name, 0) + value

    for (referrer, merchant, currency), (orders, gmv) in facts.orders.items():
        add(merchant, currency, gmv_total=gmv)
        if referrer is not None:
            add(referrer, currency, orders_referred=orders, gmv_referred=gmv)
            add(merchant, currency, gmv_via_alliance=gmv)
    for (referrer, merchant, currency), commission in facts.commission.items():
        add(referrer, currency, commission_earned=commission)
        add(merchant, currency, commission_owed=commission)
    return money


def _card(history: MemberHistory, shop: str, end: int, currency: str | None, facts: WindowFacts,
          figures: dict[str, int]) -> dict:
    views_out, clicks_out, uv_out = facts.given.get(shop, (0, 0, 0))
    views_in, clicks_in, uv_in = facts.received.get(shop, (0, 0, 0))
    changes = history.changes(shop, end)
    return {"rank": 0, "shop_id": shop, "currency": currency, "status": history.status_at(shop, end),
            "status_since": format_utc_millis(changes[-1].at) if changes else None,
            "views_out": views_out, "clicks_out": clicks_out, "uv_out": uv_out,
            "views_in": views_in, "clicks_in": clicks_in, "uv_in": uv_in,
            "reciprocity": reciprocity(clicks_out, clicks_in),
            **{name: figures.get(name, 0) for name in ("orders_referred", *MONEY)},
            "status_changes": [{"at": format_utc_millis(c.at), "status": c.status} for c in changes]}
