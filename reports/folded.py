"""What the operator's reports count (SPEC §14), as SQL over the ledger file.

Reports count **folded** events only, by event time, as the ledger stands:

* the `events` table also keeps the events the fold quarantined, each beside
  its `quarantine` row; the store's view `folded_events` leaves them out, and
  the parked refunds given up later (a `late` row names them);
* traffic between members only: a view or click whose referrer is the
  merchant itself (a self-referral, SPEC §5) is not traffic given or
  received and is counted nowhere;
* an order's referrer is the one of its latest attribution decision (none:
  unattributed); its GMV is `total_minor` less the refunds of it folded so
  far (up to the report's time, when it has one);
* commission is what the ledger posted to the referrer's earned accounts
  (pending and payable together, so a settlement changes nothing) for the
  order, or for a `cpc` click; swap credits are not money and adjustments
  are not commission.

Times: the `events` table keeps `occurred_at` as UTC timestamps; callers give
bounds as UTC epoch milliseconds and `naive_utc()` turns them into
parameters. Sums are 128-bit in DuckDB (`sum` of BIGINT is HUGEINT), so no
number of events overflows them.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from refledger.schemas.timestamps import naive_utc, naive_utc_millis
from refledger.store.columns import click_subject_sql, subject_sql

FOREVER = datetime(9999, 12, 31, 23, 59, 59, 999000)  # "as the ledger stands": every refund folded so far

# Every event the fold took: the store's view (`store/ledger_file.py`), which leaves out the
# events the fold quarantined and the parked refunds it gave up later.
FOLDED_EVENTS = "folded_events"

# Views and clicks from one member to another.
TRAFFIC = f"""(
    SELECT type, occurred_at, shop_id, visitor_id, referrer_shop_id, merchant_shop_id
    FROM {FOLDED_EVENTS}
    WHERE type IN ('view', 'click') AND referrer_shop_id <> merchant_shop_id
)"""

# The folded orders placed in [$start, $end], with their referrer (NULL: unattributed; the
# latest attribution decision's) and their GMV net of the refunds folded up to $refunds_until.
# Columns: topic, partition, merchant_shop_id, order_id, occurred_at, currency, total_minor, gmv,
# referrer_shop_id.
ORDERS = f"""(
    WITH folded AS (SELECT * FROM {FOLDED_EVENTS}),
    placed AS (
        SELECT topic, partition, merchant_shop_id, order_id, occurred_at, currency, amount_minor AS total_minor
        FROM folded WHERE type = 'order' AND occurred_at BETWEEN $start AND $end),
    refunded AS (
        SELECT topic, partition, merchant_shop_id, order_id, sum(amount_minor) AS refunded
        FROM folded WHERE type = 'refund' AND occurred_at <= $refunds_until
        GROUP BY ALL),
    attributed AS (
        SELECT topic, partition, merchant_shop_id, order_id,
               arg_max(decision, rowid) ->> 'referrer_shop_id' AS referrer_shop_id
        FROM decisions SEMI JOIN placed USING (topic, partition, merchant_shop_id, order_id)
        GROUP BY ALL)
    SELECT o.*, o.total_minor - coalesce(r.refunded, 0) AS gmv, a.referrer_shop_id
    FROM placed o
    LEFT JOIN refunded r USING (topic, partition, merchant_shop_id, order_id)
    LEFT JOIN attributed a USING (topic, partition, merchant_shop_id, order_id)
)"""

# Commission for the orders and cpc clicks that occurred in [$start, $end], per referrer,
# merchant and currency: what the ledger posted to the referrer's earned accounts for them.
# (A click that earns by itself is the subject its name says: its id and its time.)
COMMISSION = f"""(
    WITH subjects AS (
        SELECT topic, partition, {subject_sql("order", "merchant_shop_id", "order_id")} AS subject
        FROM {FOLDED_EVENTS} WHERE type = 'order' AND occurred_at BETWEEN $start AND $end
        UNION ALL
        SELECT topic, partition, {click_subject_sql("event_id", "occurred_at")} AS subject
        FROM {FOLDED_EVENTS} WHERE type = 'click' AND occurred_at BETWEEN $start AND $end)
    SELECT shop_id AS referrer_shop_id, counterparty_shop_id AS merchant_shop_id, currency,
           sum(amount) AS commission
    FROM entries SEMI JOIN subjects USING (topic, partition, subject)
    WHERE account IN ('earned_pending', 'earned_payable') AND currency <> 'CLICK' {{caused}}
    GROUP BY ALL
)"""

# With a time T: only the entries caused by events that occurred by then.
CAUSED_BY_T = """AND (topic, partition, event_offset) IN (
        SELECT topic, partition, "offset" FROM events WHERE occurred_at <= $as_of)"""

# Member events folded in at least one partition, once each (an alliance event is stored in every
# partition; a re-delivery skipped as an identical duplicate may carry another signature): their
# event id and canonical Avro bytes (status and member live in the payload). An event is its id and
# its time: an id used again after a close (SPEC §9a) is another event, dated after the first.
MEMBER_EVENTS = f"""(
    SELECT event_id, any_value(avro) AS avro FROM {FOLDED_EVENTS}
    WHERE type = 'member'
    GROUP BY event_id, occurred_at
)"""


Counts = tuple[int, int, int]  # views, clicks, UV (distinct visitors of the clicks)


class WindowFacts(NamedTuple):
    """What happened between members in one window of time, as the reports need it."""

    pairs: dict[tuple[str, str], Counts]          # (referrer, merchant) → counts
    given: dict[str, Counts]                      # referrer → counts of its traffic to every member
    received: dict[str, Counts]                   # merchant → counts of the traffic it got
    orders: dict[tuple, tuple[int, int]]          # (referrer or None, merchant, currency) → (orders, GMV)
    commission: dict[tuple[str, str, str], int]   # (referrer, merchant, currency) → commission


def window_facts(cur, start: int, end: int, as_of: int | None = None) -> WindowFacts:
    """Traffic, orders and commission of [start, end]: three queries, one pass over each table.
    With ``as_of`` T, refunds and commission as they stood at T (what events up to T caused)."""
    pairs, given, received = traffic_counts(cur, start, end)
    return WindowFacts(pairs, given, received, pair_orders(cur, start, end, as_of),
                       pair_commission(cur, start, end, as_of))


def traffic_counts(cur, start: int, end: int):
    """Views, clicks and UV in [start, end] per (referrer, merchant), per referrer and per merchant."""
    pairs, given, received = {}, {}, {}
    for referrer, merchant, level, views, clicks, uv in cur.execute(f"""
            SELECT referrer_shop_id, merchant_shop_id, GROUPING(referrer_shop_id, merchant_shop_id),
                   count(*) FILTER (WHERE type = 'view'), count(*) FILTER (WHERE type = 'click'),
                   count(DISTINCT visitor_id) FILTER (WHERE type = 'click')
            FROM {TRAFFIC} WHERE occurred_at BETWEEN $start AND $end
            GROUP BY GROUPING SETS ((referrer_shop_id, merchant_shop_id), (referrer_shop_id), (merchant_shop_id))""",
                                                                    {"start": naive_utc(start),
                                                                     "end": naive_utc(end)}).fetchall():
        counts = (int(views), int(clicks), int(uv))
        if level == 0:
            pairs[(referrer, merchant)] = counts
        elif level == 1:
            given[referrer] = counts
        else:
            received[merchant] = counts
    return pairs, given, received


def _window(start: int, end: int, refunds_until: int | None = None) -> dict:
    return {"start": naive_utc(start), "end": naive_utc(end),
            "refunds_until": FOREVER if refunds_until is None else naive_utc(refunds_until)}


def pair_orders(cur, start: int, end: int, refunds_until: int | None = None) -> dict[tuple, tuple[int, int]]:
    """(referrer or None, merchant, currency) → (orders, GMV) of the orders placed in [start, end]."""
    rows = cur.execute(f"""SELECT referrer_shop_id, merchant_shop_id, currency, count(*), sum(gmv)
                           FROM {ORDERS} GROUP BY ALL""", _window(start, end, refunds_until)).fetchall()
    return {(r, m, c): (int(n), int(gmv)) for r, m, c, n, gmv in rows}


def pair_commission(cur, start: int, end: int, as_of: int | None = None) -> dict[tuple[str, str, str], int]:
    """(referrer, merchant, currency) → commission for the orders and cpc clicks of [start, end]
    (posted by events up to ``as_of`` when given)."""
    params = {"start": naive_utc(start), "end": naive_utc(end)}
    if as_of is not None:
        params["as_of"] = naive_utc(as_of)
    rows = cur.execute(f"SELECT * FROM {COMMISSION.format(caused='' if as_of is None else CAUSED_BY_T)}",
                       params).fetchall()
    return {(r, m, c): int(commission) for r, m, c, commission in rows}


def orders_by_month(cur, bounds: list[tuple[int, int]],
                    refunds_until: int | None = None) -> dict[tuple, tuple[int, int]]:
    """(month index, referrer or None, merchant, currency) → (orders, GMV) for each month of ``bounds``
    ((first, last millisecond) pairs, in order): one pass over the orders of all those months, net
    of the refunds folded so far (up to ``refunds_until`` when given)."""
    if not bounds:
        return {}
    months = ", ".join(f"({i}, $start{i}, $end{i})" for i in range(len(bounds)))
    params = _window(bounds[0][0], bounds[-1][1], refunds_until)
    params.update({f"{side}{i}": naive_utc(ms) for i, pair in enumerate(bounds)
                   for side, ms in zip(("start", "end"), pair)})
    rows = cur.execute(f"""
        WITH months(month, first, last) AS (VALUES {months})
        SELECT m.month, o.referrer_shop_id, o.merchant_shop_id, o.currency, count(*), sum(o.gmv)
        FROM {ORDERS} o JOIN months m ON o.occurred_at BETWEEN m.first AND m.last
        GROUP BY ALL""", params).fetchall()
    return {(index, r, m, c): (int(n), int(gmv)) for index, r, m, c, n, gmv in rows}


def monthly_gmv(by_month: dict[tuple, tuple[int, int]], months: int) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """(merchant, currency) → (GMV of all its orders, GMV of its attributed orders) per month, from
    `orders_by_month`."""
    found: dict[tuple[str, str], list[list[int]]] = {}
    for (index, referrer, merchant, currency), (_orders, gmv) in by_month.items():
        sums = found.setdefault((merchant, currency), [[0, 0] for _ in range(months)])[index]
        sums[0] += gmv
        if referrer is not None:
            sums[1] += gmv
    return {key: [tuple(pair) for pair in value] for key, value in found.items()}


def latest_event_time(cur) -> int | None:
    """SPEC §14's default T: the latest `occurred_at` among folded events (None: no event).

    The latest stored event is nearly always folded; only when none stored at that time is does
    the whole table get filtered."""
    [(latest,)] = cur.execute("SELECT max(occurred_at) FROM events").fetchall()
    if latest is None:
        return None
    [(folded,)] = cur.execute(f"SELECT count(*) FROM {FOLDED_EVENTS} WHERE occurred_at = $t", {"t": latest}).fetchall()
    if not folded:
        [(latest,)] = cur.execute(f"SELECT max(occurred_at) FROM {FOLDED_EVENTS}").fetchall()
    return None if latest is None else naive_utc_millis(latest)
