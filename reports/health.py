"""Member health at a time T (SPEC §14): the four flags, each with the numbers that raised it.

T defaults to the latest `occurred_at` among folded events. Windows are
exact multiples of 24 hours back from T, open at the start and closed at T
("(T − 7 d, T]"); months are calendar months in the alliance's time zone.
All comparisons are in integers. Every threshold is a field of `Thresholds`
(an option of `refledger health`), with SPEC's default.

* `silent_withdrawal`: status active at T − 35 d and unchanged up to T
  (a member event that restates `active` is no change); `views_out` in the
  baseline (T − 35 d, T − 7 d] at least 200; `views_out` in (T − 7 d, T]
  times 40 at most the baseline; at least one `clicks_in` in (T − 7 d, T].
* `free_rider`: over (T − 28 d, T], `clicks_in` ≥ 30 and `clicks_in` ≥
  3 × `clicks_out`.
* `declining`: `gmv_total` fell in each of the last 3 complete calendar
  months before T (a month is complete when its last millisecond is at or
  before T), each compared with the month before it; per currency, with
  the refunds that occurred by T.
* `inactive`: status active at T and no event emitted by the shop (its
  views, clicks, orders, refunds) in (T − 14 d, T].

Only shops that are members at T (any status) are looked at. Traffic is
between members (self-referrals count nowhere), as in every report.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from refledger.reports.folded import FOLDED_EVENTS, TRAFFIC, latest_event_time, monthly_gmv, orders_by_month
from refledger.reports.membership import MemberHistory, member_history
from refledger.schemas.periods import alliance_zone, month_bounds, period_of, shift_period
from refledger.schemas.timestamps import format_utc_millis, naive_utc, naive_utc_millis

DAY_MS = 86_400_000
FLAGS = ("silent_withdrawal", "free_rider", "declining", "inactive")


@dataclass(frozen=True)
class Thresholds:
    """SPEC §14's numbers; each is an option of `refledger health`."""

    baseline_days: int = 35       # silent withdrawal: the baseline starts T − 35 d ...
    recent_days: int = 7          # ... and ends where the recent week (T − 7 d, T] starts
    baseline_views: int = 200     # at least this many views_out in the baseline
    withdrawal_factor: int = 40   # recent views_out × 40 ≤ baseline views_out (10 % of a baseline week)
    free_rider_days: int = 28
    free_rider_clicks: int = 30   # clicks_in ≥ 30 ...
    free_rider_ratio: int = 3     # ... and clicks_in ≥ 3 × clicks_out
    declining_months: int = 3
    inactive_days: int = 14

    def __post_init__(self):
        for spec in fields(self):
            value = getattr(self, spec.name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{spec.name} must be a whole number ≥ 0, got {value!r}")
        if self.recent_days > self.baseline_days:
            raise ValueError("the recent window cannot be longer than the baseline's start")
        if self.declining_months < 1:
            raise ValueError("declining_months must be at least 1")


THRESHOLD_HELP = {
    "baseline_days": "Silent withdrawal: the baseline starts this many days before T.",
    "recent_days": "Silent withdrawal: the recent window, in days before T (where the baseline ends).",
    "baseline_views": "Silent withdrawal: least views out in the baseline.",
    "withdrawal_factor": "Silent withdrawal: recent views out times this is at most the baseline's.",
    "free_rider_days": "Free rider: the window, in days before T.",
    "free_rider_clicks": "Free rider: least clicks received in the window.",
    "free_rider_ratio": "Free rider: clicks received are at least this many times the clicks given.",
    "declining_months": "Declining: complete months in a row in which total GMV fell.",
    "inactive_days": "Inactive: days before T without any event emitted by the shop.",
}


def health(cur, at: int | None = None, zone: str | None = None, **thresholds) -> list[dict]:
    """The flags raised at T, ordered by flag, then shop id (and currency)."""
    limits = Thresholds(**thresholds)
    if at is None:
        at = latest_event_time(cur)
        if at is None:
            return []
    history = member_history(cur)
    shops = history.members(at)
    w = Windows(at, limits)
    traffic = window_traffic(cur, w)
    raised = (silent_withdrawals(history, shops, traffic, w, limits) + free_riders(shops, traffic, w, limits)
              + declining(cur, shops, at, limits, zone) + inactive(cur, history, shops, w, limits))
    return [{"shop_id": row.pop("shop_id"), "flag": row.pop("flag"), "at": format_utc_millis(at), **row}
            for row in raised]


class Windows:
    """T and the windows of the flags, in UTC epoch milliseconds."""

    def __init__(self, at: int, limits: Thresholds):
        self.at = at
        self.baseline_from = at - limits.baseline_days * DAY_MS
        self.recent_from = at - limits.recent_days * DAY_MS
        self.free_rider_from = at - limits.free_rider_days * DAY_MS
        self.inactive_from = at - limits.inactive_days * DAY_MS


def window_traffic(cur, w: Windows) -> dict[str, dict[str, int]]:
    """Shop → the views and clicks the flags look at, given and received, in one pass."""
    found: dict[str, dict[str, int]] = {}
    for referrer, merchant, baseline_views, recent_views, recent_clicks, rider_clicks in cur.execute(f"""
            SELECT referrer_shop_id, merchant_shop_id,
                   count(*) FILTER (WHERE type = 'view' AND occurred_at > $baseline_from
                                    AND occurred_at <= $recent_from),
                   count(*) FILTER (WHERE type = 'view' AND occurred_at > $recent_from),
                   count(*) FILTER (WHERE type = 'click' AND occurred_at > $recent_from),
                   count(*) FILTER (WHERE type = 'click' AND occurred_at > $free_rider_from)
            FROM {TRAFFIC}
            WHERE occurred_at > least($baseline_from, $free_rider_from) AND occurred_at <= $at
            GROUP BY GROUPING SETS ((referrer_shop_id), (merchant_shop_id))""",
                                            {name: naive_utc(getattr(w, name)) for name in
                                             ("at", "baseline_from", "recent_from", "free_rider_from")}).fetchall():
        side = "out" if referrer is not None else "in"
        found.setdefault(referrer or merchant, {}).update({
            f"baseline_views_{side}": int(baseline_views), f"recent_views_{side}": int(recent_views),
            f"recent_clicks_{side}": int(recent_clicks), f"clicks_{side}": int(rider_clicks)})
    return found


def silent_withdrawals(history: MemberHistory, shops, traffic, w: Windows, limits: Thresholds) -> list[dict]:
    found = []
    for shop in shops:
        if history.status_at(shop, w.baseline_from) != "active" or not history.steady_since(shop, w.baseline_from, w.at):
            continue
        seen = traffic.get(shop, {})
        before, now = seen.get("baseline_views_out", 0), seen.get("recent_views_out", 0)
        taken = seen.get("recent_clicks_in", 0)
        if before >= limits.baseline_views and now * limits.withdrawal_factor <= before and taken >= 1:
            found.append({"shop_id": shop, "flag": "silent_withdrawal",
                          "baseline_from": format_utc_millis(w.baseline_from),
                          "recent_from": format_utc_millis(w.recent_from), "baseline_views_out": before,
                          "recent_views_out": now, "recent_clicks_in": taken,
                          "baseline_views": limits.baseline_views, "withdrawal_factor": limits.withdrawal_factor})
    return found


def free_riders(shops, traffic, w: Windows, limits: Thresholds) -> list[dict]:
    found = []
    for shop in shops:
        seen = traffic.get(shop, {})
        clicks_in, clicks_out = seen.get("clicks_in", 0), seen.get("clicks_out", 0)
        if clicks_in >= limits.free_rider_clicks and clicks_in >= limits.free_rider_ratio * clicks_out:
            found.append({"shop_id": shop, "flag": "free_rider", "window_from": format_utc_millis(w.free_rider_from),
                          "clicks_in": clicks_in, "clicks_out": clicks_out,
                          "free_rider_clicks": limits.free_rider_clicks, "free_rider_ratio": limits.free_rider_ratio})
    return found


def complete_months(at: int, count: int, zone: str | None) -> list[str]:
    """The ``count`` + 1 calendar months before T that are complete, oldest first."""
    tz = alliance_zone(zone)
    current = period_of(at, tz)
    last = current if month_bounds(current, tz)[1] <= at else shift_period(current, -1)
    return [shift_period(last, -back) for back in range(count, -1, -1)]


def declining(cur, shops, at: int, limits: Thresholds, zone: str | None) -> list[dict]:
    months = complete_months(at, limits.declining_months, zone)
    bounds = [month_bounds(month, alliance_zone(zone)) for month in months]
    members = set(shops)
    found = []
    for (shop, currency), by_month in sorted(monthly_gmv(orders_by_month(cur, bounds, at), len(bounds)).items()):
        gmv = [total for total, _via in by_month]
        if shop in members and all(gmv[i] < gmv[i - 1] for i in range(1, len(gmv))):
            found.append({"shop_id": shop, "flag": "declining", "currency": currency, "months": months,
                          "gmv_total": gmv, "declining_months": limits.declining_months})
    return found


def inactive(cur, history: MemberHistory, shops, w: Windows, limits: Thresholds) -> list[dict]:
    window = {"since": naive_utc(w.inactive_from), "at": naive_utc(w.at)}
    emitting = {shop for (shop,) in cur.execute(f"""SELECT DISTINCT shop_id FROM {FOLDED_EVENTS}
                                                   WHERE occurred_at > $since AND occurred_at <= $at""",
                                                window).fetchall()}
    quiet = [shop for shop in shops if history.status_at(shop, w.at) == "active" and shop not in emitting]
    if not quiet:
        return []
    last = dict(cur.execute(f"""SELECT shop_id, max(occurred_at) FROM {FOLDED_EVENTS}
                                WHERE occurred_at <= $since AND shop_id IN (SELECT unnest($quiet)) GROUP BY 1""",
                            {"since": window["since"], "quiet": quiet}).fetchall())
    return [{"shop_id": shop, "flag": "inactive", "window_from": format_utc_millis(w.inactive_from),
             "last_event_at": format_utc_millis(naive_utc_millis(last[shop])) if shop in last else None,
             "inactive_days": limits.inactive_days} for shop in quiet]
