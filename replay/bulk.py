"""An independent recomputation of what every shop earned and owes, in set-based SQL.

The fold (`ledger/`) walks each log event by event and keeps state. This
module answers the same question another way, from the stored events alone,
with DuckDB joins, ASOF joins and window functions, and no code shared with
the fold: SPEC §5–9 restated as queries. `refledger verify` compares the two;
any disagreement is a bug in one of them, and the output says where.

What it recomputes. Totals that do not depend on the order events were
folded in, per log (SPEC §3: each partition settles its own merchants):

* per (shop, currency): ``earned`` = earned_pending + earned_payable +
  received, ``owed`` = owed_pending + owed_payable + paid_out, and
  ``received`` and ``paid_out`` themselves; per shop in ``CLICK``:
  ``swap_given`` and ``swap_received``;
* per order and per cpc or swap click: which referrer earns how much, net
  of refunds.

Settlement only moves amounts between pending and payable, and which side an
amount is on depends on when it was folded (SPEC §9), so the split is left to
the fold; the totals are not. Which events count is taken from the ledger:
every stored event not quarantined by the fold (quarantine reasons such as
``unknown_shop`` or ``duplicate_order`` depend on log order by definition,
and so does ``bad_signature``: keys and the signing policy act in log order,
SPEC §4a; it is the fold's first check, so a badly signed close closes
nothing here either, and a badly signed member changes no status),
except that the closing rules (SPEC §9a) are applied here on their own: an
event the fold quarantined as ``period_closed`` or ``future_close`` is
judged again, and one it folded can be found closed.

The queries, in order (``t`` is ``occurred_at`` in epoch milliseconds):

0. Closing (SPEC §9a): ``b_stored`` is the stored events minus those the
   fold quarantined for reasons other than closing. The closes among them
   that do not close the future, in log order, give each log a running
   ``closed_through`` (``b_close_at``); each event meets the value in force
   just before its own offset. ``b_open`` drops the view, click, order,
   refund, member and agreement events dated at or before it, and the
   refunds of orders dated at or before it (when the order came first) or
   that waited for their order past a close of their own date.
1. ``b_ev``: the events of ``b_open`` that the recomputation prices.
2. Payload fields the event table has no column for are decoded from the
   stored Avro: members, agreements, payout and adjustment referrers first
   (few), and order lines (many) by a reader of the fixed current-schema
   layout, on a second cursor while DuckDB runs steps 3–5 and 8. A click's
   referrer is its emitter (SPEC §2), so clicks need no decoding.
3. Member status at t: ASOF join to the latest ``member`` event at or before
   t (ties: the greater event id).
4. Agreement resolution for (M, R, t): one ASOF join per scope — (M, R),
   (M, *), (*, R), (*, *) — on ``effective_from`` ≤ t, the most specific
   scope that has a version in effect wins (SPEC §5). Resolution only
   changes at an ``effective_from``, so it is computed once per pair and
   breakpoint (``b_timeline``) and everything else is one ASOF join into it.
5. Attribution: orders join the visitor's clicks to the merchant; eligible
   pairs filtered by self-referral, status at the click, model and window;
   ``row_number()`` keeps the last click (time, then event id).
6. Pricing: cps per line, half up, category rate or base rate; cpa flat.
7. Refunds: round(C × A / total) half up on the sum A of the order's refunds.
8. The 24-hour rule for cpc and swap clicks: a click is counted when it is
   the first of its (visitor, referrer, merchant) chain or the first at or
   after 24 h past the previous counted one; the "next" pointer of every
   click is an ASOF join, and a recursive CTE walks the pointers. Only
   chains whose pair ever has a cpc or swap agreement are walked.
9. Adjustments and payouts as they are.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa

from refledger.schemas import codec

DAY_MS = 86_400_000
ORDERS = "('order')"
ALLIANCE = "('member', 'agreement', 'payout', 'adjustment')"  # decoded, with orders
FOLDED_TYPES = "('click', 'order', 'refund', 'member', 'agreement', 'payout', 'adjustment')"  # views earn nothing
DEFAULT_DAYS = 15


def _half_up(num: str, den: str) -> str:
    """SQL for num / den rounded half away from zero, exactly (den > 0). ``num`` must be computed
    in HUGEINT already when its factors can pass 2^63 (SPEC §2: sums never overflow)."""
    return (f"(sign({num}) * ((2 * abs(CAST({num} AS HUGEINT)) + CAST({den} AS HUGEINT)) "
            f"// (2 * CAST({den} AS HUGEINT))))")


@dataclass
class Recomputed:
    """The recomputation's answer: balances per (shop, currency) and per subject."""

    balances: list[dict]
    subjects: int          # orders and clicks that earn something
    events: int            # events in the ledger's event table
    decode_seconds: float  # decoding order lines in Python (beside the SQL, on a second cursor)
    sql_seconds: float     # everything but waiting for those lines


# -- 2. decoding the payloads SQL cannot read -----------------------------------------------


def _table(columns: dict[str, list], ints: set[str]) -> pa.Table:
    return pa.table({k: pa.array(v, pa.int64() if k in ints else pa.string()) for k, v in columns.items()})


def _order_lines_table(orders: pa.Table) -> pa.Table:
    """Every open order's lines, read from its stored Avro (runs on a second thread, beside the SQL)."""
    names = ("topic", "partition", "merchant", "order_id", "category", "quantity", "unit_price")
    cols: list[list] = [[] for _ in names]
    appends = [c.append for c in cols]
    for batch in orders.to_batches(20_000):
        for topic, partition, avro in zip(*(column.to_pylist() for column in batch.columns)):
            order = codec.decode_canonical(avro)[0]["order"]  # the fixed-layout reader, nearly always
            merchant, order_id = order["merchant_shop_id"], order["order_id"]
            for line in order["lines"]:
                for append, value in zip(appends, (topic, partition, merchant, order_id, line["category"],
                                                   line["quantity"], line["unit_price_minor"])):
                    append(value)
    return _table(dict(zip(names, cols)), {"partition", "quantity", "unit_price"})


def _alliance_tables(con) -> dict[str, pa.Table]:
    """Members, agreement versions (and their category rates), payouts and adjustments."""
    members = {k: [] for k in ("topic", "partition", "shop", "t", "event_id", "status")}
    agreements = {k: [] for k in ("topic", "partition", "offset", "event_id", "agreement_id", "version", "effective_from",
                                  "m", "r", "model", "rate_bp", "amount_minor", "currency", "window_days")}
    rates = {k: [] for k in ("topic", "partition", "offset", "category", "rate_bp")}
    moves = {k: [] for k in ("topic", "partition", "kind", "merchant", "referrer", "currency", "amount")}
    rows = con.execute(f"""SELECT topic, partition, "offset", type, t, event_id, avro FROM b_open
                           WHERE type IN {ALLIANCE}""").fetchall()
    for topic, partition, offset, kind, t, event_id, avro in rows:
        p = codec.decode(avro)[kind]
        if kind == "member":
            for key, value in (("topic", topic), ("partition", partition), ("shop", p["member_shop_id"]),
                               ("t", t), ("event_id", event_id), ("status", p["status"])):
                members[key].append(value)
        elif kind == "agreement":
            window = p.get("attribution_window_days")  # no hold: the sums need no pending/payable split
            row = {"topic": topic, "partition": partition, "offset": offset, "event_id": event_id,
                   "agreement_id": p["agreement_id"], "version": p["version"],
                   "effective_from": p["effective_from"], "m": p["merchant_shop_id"],
                   "r": p["referrer_shop_id"], "model": p["model"], "rate_bp": p.get("rate_bp"),
                   "amount_minor": p.get("amount_minor"), "currency": p.get("currency"),
                   "window_days": DEFAULT_DAYS if window is None else window}
            for key, value in row.items():
                agreements[key].append(value)
            for category, rate in (p.get("category_rates_bp") or {}).items():
                for key, value in (("topic", topic), ("partition", partition), ("offset", offset),
                                   ("category", category), ("rate_bp", rate)):
                    rates[key].append(value)
        else:
            for key, value in (("topic", topic), ("partition", partition), ("kind", kind),
                               ("merchant", p["merchant_shop_id"]), ("referrer", p["referrer_shop_id"]),
                               ("currency", p["currency"]), ("amount", p["amount_minor"])):
                moves[key].append(value)
    ints = {"partition", "offset", "t", "version", "effective_from", "rate_bp", "amount_minor", "window_days", "amount"}
    return {"b_members": _table(members, ints), "b_agreements": _table(agreements, ints),
            "b_rates": _table(rates, ints), "b_moves": _table(moves, ints)}


# -- the queries ------------------------------------------------------------------------------

_CLOSING = """
-- 0. closing (SPEC §9a), recomputed here: the fold's period_closed and future_close verdicts are set aside
CREATE OR REPLACE TEMP TABLE b_stored AS
SELECT e.topic, e.partition, e."offset", e.event_id, e.type, epoch_ms(e.occurred_at) AS t, e.shop_id,
       e.visitor_id, e.merchant_shop_id, e.order_id, e.amount_minor, e.currency, e.avro
FROM events e
ANTI JOIN (
    SELECT topic, partition, "offset" FROM quarantine
    WHERE stage = 'fold' AND NOT late AND reason NOT IN ('period_closed', 'future_close')
    UNION ALL
    -- a late row (a parked refund given up when its order came) names the refund by id at the order's
    -- position: the latest refund of that id before it that the fold took (an earlier one, closed and
    -- forgotten, stays; one refused meanwhile was never the one waiting)
    SELECT q.topic, q.partition, max(r."offset") FROM quarantine q
    JOIN events r ON r.topic = q.topic AND r.partition = q.partition AND r.event_id = q.event_id
                 AND r.type = 'refund' AND r."offset" < q."offset"
    ANTI JOIN (SELECT topic, partition, "offset" FROM quarantine WHERE stage = 'fold' AND NOT late) own
           ON own.topic = r.topic AND own.partition = r.partition AND own."offset" = r."offset"
    WHERE q.stage = 'fold' AND q.late AND q.reason NOT IN ('period_closed', 'future_close')
    GROUP BY q.topic, q.partition, q."offset", q.event_id) gone
  ON gone.topic = e.topic AND gone.partition = e.partition AND gone."offset" = e."offset";

CREATE OR REPLACE TEMP TABLE b_close_at AS
SELECT topic, partition, "offset",
       max(through) OVER (PARTITION BY topic, partition ORDER BY "offset" ROWS UNBOUNDED PRECEDING) AS c
FROM b_closes WHERE through <= t;

CREATE OR REPLACE TEMP TABLE b_dated AS
SELECT s.*, k.c
FROM b_stored s
ASOF LEFT JOIN b_close_at k ON k.topic = s.topic AND k.partition = s.partition AND s."offset" > k."offset";

CREATE OR REPLACE TEMP TABLE b_open AS
WITH open AS (
    SELECT * FROM b_dated
    WHERE NOT (type IN ('view', 'click', 'order', 'refund', 'member', 'agreement') AND t <= coalesce(c, -1e18))),
first_orders AS (  -- a second order under one id is the fold's duplicate_order
    SELECT * FROM open WHERE type = 'order'
    QUALIFY row_number() OVER (PARTITION BY topic, partition, merchant_shop_id, order_id ORDER BY "offset") = 1)
SELECT o.* EXCLUDE (c) FROM open o
WHERE o.type <> 'refund' OR NOT EXISTS (
    SELECT 1 FROM first_orders f
    WHERE f.topic = o.topic AND f.partition = o.partition AND f.merchant_shop_id = o.merchant_shop_id
      AND f.order_id = o.order_id
      AND ((f."offset" < o."offset" AND f.t <= coalesce(o.c, -1e18))      -- a refund of a closed order
           OR (f."offset" > o."offset" AND o.t <= coalesce(f.c, -1e18))));  -- parked past a close of its date
"""


def _folded(types: str) -> str:
    """SQL: the open events of these types (0., 1.)."""
    return f"SELECT * EXCLUDE (\"offset\") FROM b_open WHERE type IN {types}"


_EVENTS = f"CREATE OR REPLACE TEMP VIEW b_ev AS {_folded(FOLDED_TYPES)}"


def _closes_table(con) -> pa.Table:
    """Every stored close, with its closed_through (the payload SQL cannot read)."""
    cols = {k: [] for k in ("topic", "partition", "offset", "t", "through")}
    for topic, partition, offset, t, avro in con.execute(
            """SELECT topic, partition, "offset", t, avro FROM b_stored WHERE type = 'close'""").fetchall():
        for key, value in zip(cols, (topic, partition, offset, t, codec.decode(avro)["close"]["closed_through"])):
            cols[key].append(value)
    return _table(cols, {"partition", "offset", "t", "through"})

_STATUS_AND_CLICKS = """
-- 3. a member's status at t: its latest member event at or before t (ties: greater event id)
CREATE OR REPLACE TEMP TABLE b_status AS
SELECT topic, partition, shop, t, arg_max(status, event_id) AS status FROM b_members GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE b_clicks AS
SELECT c.topic, c.partition, c.t, c.event_id, c.shop_id AS referrer, c.merchant_shop_id AS merchant,
       c.visitor_id AS visitor,
       c.shop_id <> c.merchant_shop_id AND coalesce(s.status = 'active', false) AS base_ok
FROM (SELECT * FROM b_ev WHERE type = 'click') c
ASOF LEFT JOIN b_status s
  ON c.topic = s.topic AND c.partition = s.partition AND c.shop_id = s.shop AND c.t >= s.t;

-- 4. agreement versions: per scope and effective_from, the greatest (version, id, event id)
CREATE OR REPLACE TEMP TABLE b_agr AS
SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY topic, partition, m, r, effective_from
                                 ORDER BY version DESC, agreement_id DESC, event_id DESC, "offset" DESC) AS pick
    FROM b_agreements) WHERE pick = 1;
CREATE OR REPLACE TEMP VIEW b_agr_m AS SELECT * FROM b_agr WHERE r = '*';
CREATE OR REPLACE TEMP VIEW b_agr_r AS SELECT * FROM b_agr WHERE m = '*';
CREATE OR REPLACE TEMP VIEW b_agr_any AS SELECT * FROM b_agr WHERE m = '*' AND r = '*';
"""


def _resolve(source: str, into: str) -> str:
    """SQL creating ``into``: ``source``'s rows (topic, partition, merchant, referrer, t, ...) with the
    agreement resolved for (merchant, referrer) at t (SPEC §5), its columns prefixed ``a_``."""
    return f"""
CREATE OR REPLACE TEMP TABLE {into} AS
WITH q AS (SELECT * FROM {source}),
scoped AS (
    SELECT q.*, a1."offset" AS k1, a2."offset" AS k2, a3."offset" AS k3, a4."offset" AS k4
    FROM q
    ASOF LEFT JOIN b_agr a1 ON a1.topic = q.topic AND a1.partition = q.partition
                           AND a1.m = q.merchant AND a1.r = q.referrer AND q.t >= a1.effective_from
    ASOF LEFT JOIN b_agr_m a2 ON a2.topic = q.topic AND a2.partition = q.partition
                             AND a2.m = q.merchant AND q.t >= a2.effective_from
    ASOF LEFT JOIN b_agr_r a3 ON a3.topic = q.topic AND a3.partition = q.partition
                             AND a3.r = q.referrer AND q.t >= a3.effective_from
    ASOF LEFT JOIN b_agr_any a4 ON a4.topic = q.topic AND a4.partition = q.partition
                               AND q.t >= a4.effective_from)
SELECT s.* EXCLUDE (k1, k2, k3, k4),
       a."offset" AS a_offset, a.agreement_id AS a_id, a.model AS a_model, a.rate_bp AS a_rate_bp,
       a.amount_minor AS a_amount, a.currency AS a_currency, a.window_days AS a_window_days
FROM scoped s
LEFT JOIN b_agr a ON a.topic = s.topic AND a.partition = s.partition
                 AND a."offset" = coalesce(s.k1, s.k2, s.k3, s.k4)  -- the version's own row: an event id
                                                                     -- may come back after a close
"""


_TIMELINE = """
-- 4b. resolution only changes at an effective_from: resolve every (merchant, referrer) pair that has
--     a countable click once per effective_from of its log, and look the rest up in that timeline
CREATE OR REPLACE TEMP TABLE b_breakpoints AS
SELECT p.topic, p.partition, p.merchant, p.referrer, s.effective_from AS t
FROM (SELECT DISTINCT topic, partition, merchant, referrer FROM b_clicks WHERE base_ok) p
JOIN (SELECT DISTINCT topic, partition, effective_from FROM b_agr) s USING (topic, partition);
"""


def _at_timeline(alias: str) -> str:
    """SQL: ASOF JOIN of ``alias`` (topic, partition, merchant, referrer, t) to the resolved timeline."""
    return (f"ASOF LEFT JOIN b_timeline tl ON tl.topic = {alias}.topic AND tl.partition = {alias}.partition "
            f"AND tl.merchant = {alias}.merchant AND tl.referrer = {alias}.referrer AND {alias}.t >= tl.t")


_ATTRIBUTION = f"""
-- 5. orders, every click that could have referred them, the agreement at the order's time;
--    eligible pairs only, and of those the last click (time, then event id)
CREATE OR REPLACE TEMP TABLE b_orders AS
SELECT topic, partition, event_id, merchant_shop_id AS merchant, order_id, visitor_id AS visitor, t,
       amount_minor AS total, currency
FROM b_ev WHERE type = 'order';

CREATE OR REPLACE TEMP TABLE b_winners AS
WITH pairs AS (
    SELECT o.topic, o.partition, o.merchant, o.order_id, o.t, c.referrer, c.t AS click_t, c.event_id AS click_id
    FROM b_orders o
    JOIN b_clicks c ON c.topic = o.topic AND c.partition = o.partition AND c.merchant = o.merchant
                   AND c.visitor = o.visitor AND c.t <= o.t AND c.base_ok
                   AND o.t - c.t <= (SELECT max(window_days) FROM b_agr) * {DAY_MS}),
priced AS (
    SELECT p.*, tl.a_offset, tl.a_model, tl.a_rate_bp, tl.a_amount, tl.a_currency, tl.a_window_days
    FROM pairs p {_at_timeline('p')})
SELECT * FROM priced
WHERE a_model IN ('cps', 'cpa') AND t - click_t <= a_window_days * {DAY_MS}
QUALIFY row_number() OVER (PARTITION BY topic, partition, merchant, order_id
                           ORDER BY click_t DESC, click_id DESC) = 1;
"""

_PRICING = f"""
-- 6. pricing, 7. refunds
CREATE OR REPLACE TEMP TABLE b_order_commission AS
WITH cps AS (
    SELECT w.topic, w.partition, w.merchant, w.order_id,
           sum({_half_up("CAST(l.quantity AS HUGEINT) * l.unit_price * coalesce(cr.rate_bp, w.a_rate_bp, 0)",
                         "10000")}) AS c
    FROM b_winners w
    JOIN b_lines l ON l.topic = w.topic AND l.partition = w.partition AND l.merchant = w.merchant
                  AND l.order_id = w.order_id
    LEFT JOIN b_rates cr ON cr.topic = w.topic AND cr.partition = w.partition AND cr."offset" = w.a_offset
                        AND cr.category = l.category
    WHERE w.a_model = 'cps'
    GROUP BY ALL),
refunded AS (
    SELECT topic, partition, merchant_shop_id AS merchant, order_id, sum(amount_minor) AS a
    FROM b_ev WHERE type = 'refund' GROUP BY ALL)
SELECT w.topic, w.partition, w.merchant, w.order_id, w.referrer, w.click_id,
       CASE WHEN w.a_model = 'cps' THEN o.currency ELSE coalesce(w.a_currency, o.currency) END AS currency,
       CAST(CASE WHEN w.a_model = 'cps' THEN coalesce(cps.c, 0) ELSE coalesce(w.a_amount, 0) END AS HUGEINT) AS c,
       o.total, coalesce(rf.a, 0) AS a
FROM b_winners w
JOIN b_orders o USING (topic, partition, merchant, order_id)
LEFT JOIN cps USING (topic, partition, merchant, order_id)
LEFT JOIN refunded rf USING (topic, partition, merchant, order_id);

CREATE OR REPLACE TEMP TABLE b_order_net AS
SELECT topic, partition, 'order:' || replace(replace(merchant, '%', '%25'), ':', '%3A') || ':'
       || replace(replace(order_id, '%', '%25'), ':', '%3A') AS subject,  -- '%', ':' escaped, as the fold names it
       referrer, merchant, currency,
       CAST(c - CASE WHEN a <= 0 OR total <= 0 THEN 0
                     WHEN a >= total THEN c
                     ELSE {_half_up("c * a", "total")} END AS HUGEINT) AS net
FROM b_order_commission;
"""

_VALID_CLICKS = f"""
-- 8. the 24-hour rule: chains of (visitor, referrer, merchant), clicks in (t, event id) order
CREATE OR REPLACE TEMP TABLE b_chain AS
SELECT topic, partition, t, event_id, referrer, merchant, visitor,
       dense_rank() OVER (ORDER BY topic, partition, visitor, referrer, merchant) AS cid,
       row_number() OVER (PARTITION BY topic, partition, visitor, referrer, merchant ORDER BY t, event_id) AS rn,
       t + {DAY_MS} AS due
FROM b_clicks c
WHERE base_ok AND EXISTS (  -- only chains whose pair ever has a cpc or swap agreement can earn
    SELECT 1 FROM b_timeline tl WHERE tl.topic = c.topic AND tl.partition = c.partition
       AND tl.merchant = c.merchant AND tl.referrer = c.referrer AND tl.a_model IN ('cpc', 'swap'));

CREATE OR REPLACE TEMP TABLE b_first_at AS SELECT cid, t, min(rn) AS rn FROM b_chain GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE b_next AS
SELECT c.cid, c.rn, f.rn AS nxt
FROM b_chain c ASOF LEFT JOIN b_first_at f ON f.cid = c.cid AND f.t >= c.due;

CREATE OR REPLACE TEMP TABLE b_counted AS
WITH RECURSIVE walk(cid, rn) AS (
    SELECT cid, rn FROM b_chain WHERE rn = 1
    UNION ALL
    SELECT n.cid, n.nxt FROM walk w JOIN b_next n ON n.cid = w.cid AND n.rn = w.rn WHERE n.nxt IS NOT NULL)
SELECT c.topic, c.partition, c.merchant, c.referrer, c.t, c.event_id
FROM walk w JOIN b_chain c USING (cid, rn);
"""

_CLICK_EARNINGS = f"""
-- the agreement at each counted click's own time: cpc earns its amount, swap one credit
CREATE OR REPLACE TEMP TABLE b_click_net AS
SELECT c.topic, c.partition,  -- the fold's name of a click: its id ('%', ':' escaped) and its time
       'click:' || replace(replace(c.event_id, '%', '%25'), ':', '%3A') || ':' || CAST(c.t AS VARCHAR) AS subject,
       c.referrer, c.merchant,
       CASE WHEN tl.a_model = 'swap' THEN 'CLICK' ELSE tl.a_currency END AS currency,
       CASE WHEN tl.a_model = 'swap' THEN 1 ELSE tl.a_amount END AS net
FROM b_counted c {_at_timeline('c')}
WHERE tl.a_model IN ('cpc', 'swap');
"""

_BALANCES = """
CREATE OR REPLACE TEMP TABLE b_subjects AS
SELECT * FROM b_order_net WHERE net <> 0
UNION ALL SELECT * FROM b_click_net WHERE net <> 0;

CREATE OR REPLACE TEMP TABLE b_balances AS
WITH legs AS (
    SELECT referrer AS shop, currency, net AS earned, 0 AS owed, 0 AS received, 0 AS paid_out FROM b_subjects
    UNION ALL SELECT merchant, currency, 0, net, 0, 0 FROM b_subjects
    UNION ALL SELECT referrer, currency, amount, 0, 0, 0 FROM b_moves WHERE kind = 'adjustment' AND amount <> 0
    UNION ALL SELECT merchant, currency, 0, amount, 0, 0 FROM b_moves WHERE kind = 'adjustment' AND amount <> 0
    UNION ALL SELECT referrer, currency, 0, 0, amount, 0 FROM b_moves WHERE kind = 'payout' AND amount <> 0
    UNION ALL SELECT merchant, currency, 0, 0, 0, amount FROM b_moves WHERE kind = 'payout' AND amount <> 0)
SELECT shop AS shop_id, currency,
       CAST(sum(earned) AS HUGEINT) AS earned, CAST(sum(owed) AS HUGEINT) AS owed,
       CAST(sum(received) AS HUGEINT) AS received, CAST(sum(paid_out) AS HUGEINT) AS paid_out
FROM legs GROUP BY ALL;
"""


def recompute(con) -> Recomputed:
    """Run the recomputation on a connection to a ledger (read-only is enough: temp tables only)."""
    started = time.perf_counter()
    first, rest = _CLOSING.split("CREATE OR REPLACE TEMP TABLE b_close_at", 1)
    con.execute(first)
    _load(con, "b_closes", _closes_table(con))
    con.execute("CREATE OR REPLACE TEMP TABLE b_close_at" + rest)
    con.execute(_EVENTS)
    for name, table in _alliance_tables(con).items():
        _load(con, name, table)
    # Order lines are decoded in Python on a second thread while DuckDB runs everything that does
    # not need them (DuckDB releases the GIL while it works).
    orders = con.execute(f"SELECT topic, partition, avro FROM ({_folded(ORDERS)})").to_arrow_table()
    with ThreadPoolExecutor(1, thread_name_prefix="bulk-decode") as pool:
        lines = pool.submit(_timed, _order_lines_table, orders)
        for sql in (_STATUS_AND_CLICKS, _TIMELINE, _resolve("b_breakpoints", "b_timeline"), _ATTRIBUTION,
                    _VALID_CLICKS, _CLICK_EARNINGS):
            con.execute(sql)
        waited = time.perf_counter()
        lines_table, decode_seconds = lines.result()
        waited = time.perf_counter() - waited
    _load(con, "b_lines", lines_table)
    con.execute(_PRICING)
    con.execute(_BALANCES)
    cols = ("shop_id", "currency", "earned", "owed", "received", "paid_out")
    rows = con.execute(f"SELECT {', '.join(cols)} FROM b_balances ORDER BY currency = 'CLICK', shop_id, currency"
                       ).fetchall()
    [(subjects,)] = con.execute("SELECT count(*) FROM b_subjects").fetchall()
    [(events,)] = con.execute("SELECT count(*) FROM events").fetchall()
    sql_seconds = time.perf_counter() - started - waited
    return Recomputed([dict(zip(cols, row)) for row in rows], subjects, events, decode_seconds, sql_seconds)


def _timed(fn, *args):
    started = time.perf_counter()
    return fn(*args), time.perf_counter() - started


def _load(con, name: str, table: pa.Table) -> None:
    con.register(f"{name}_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")


# -- comparing with the fold ----------------------------------------------------------------

_FOLD_BALANCES = """
SELECT shop_id, currency,
       CAST(sum(CASE WHEN account IN ('earned_pending', 'earned_payable', 'received', 'swap_given')
                     THEN amount ELSE 0 END) AS HUGEINT) AS earned,
       CAST(-sum(CASE WHEN account IN ('owed_pending', 'owed_payable', 'paid_out', 'swap_received')
                      THEN amount ELSE 0 END) AS HUGEINT) AS owed,
       CAST(sum(CASE WHEN account = 'received' THEN amount ELSE 0 END) AS HUGEINT) AS received,
       CAST(-sum(CASE WHEN account = 'paid_out' THEN amount ELSE 0 END) AS HUGEINT) AS paid_out
FROM entries GROUP BY ALL
"""

_SUBJECT_DIFF = """
WITH fold AS (
    SELECT topic, partition, subject, shop_id AS referrer, currency, CAST(sum(amount) AS HUGEINT) AS net
    FROM entries
    WHERE account IN ('earned_pending', 'earned_payable', 'swap_given')
      AND (subject LIKE 'order:%' OR subject LIKE 'click:%')
    GROUP BY ALL HAVING sum(amount) <> 0),
sql AS (
    SELECT topic, partition, subject, referrer, currency, CAST(sum(net) AS HUGEINT) AS net FROM b_subjects
    GROUP BY ALL HAVING sum(net) <> 0)
SELECT coalesce(f.topic, s.topic), coalesce(f.partition, s.partition), coalesce(f.subject, s.subject),
       coalesce(f.referrer, s.referrer), coalesce(f.currency, s.currency), f.net, s.net
FROM fold f FULL OUTER JOIN sql s USING (topic, partition, subject, referrer, currency)
WHERE f.net IS DISTINCT FROM s.net
ORDER BY 1, 2, 3, 4, 5
LIMIT ?
"""


def compare(con, limit: int = 10) -> tuple[list[tuple[str, str]], Recomputed]:
    """(where, what) for each disagreement between the fold's entries and the SQL recomputation."""
    result = recompute(con)
    fold = {(r[0], r[1]): r[2:] for r in con.execute(_FOLD_BALANCES).fetchall()}
    sql = {(r["shop_id"], r["currency"]): (r["earned"], r["owed"], r["received"], r["paid_out"])
           for r in result.balances}
    problems = []
    for shop, currency in sorted(set(fold) | set(sql)):
        f, s = fold.get((shop, currency), (0, 0, 0, 0)), sql.get((shop, currency), (0, 0, 0, 0))
        names = ("swap_given", "swap_received") if currency == "CLICK" else ("earned", "owed", "received", "paid_out")
        for name, fv, sv in zip(names, f, s):
            if fv != sv:
                problems.append((f"shop {shop} {currency}", f"{name}: the fold has {fv:,}, SQL recomputes {sv:,}"))
    if problems:
        for topic, partition, subject, referrer, currency, fv, sv in con.execute(_SUBJECT_DIFF, [limit]).fetchall():
            problems.append((f"{topic}:{partition} {subject}",
                             f"{referrer} earns {'nothing' if fv is None else f'{fv:,} {currency}'} in the fold, "
                             f"{'nothing' if sv is None else f'{sv:,} {currency}'} by SQL"))
    return problems, result
