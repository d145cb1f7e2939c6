"""What a month's settlement would make payable, read from the ledger before it is published.

`refledger settle --dry-run` answers it. A settlement with ``period_end`` P
moves to payable every nonzero pending amount whose order (or cpc click)
occurred at or before P − ``hold_days`` of the agreement that priced it
(SPEC §9). The fold keeps that state in memory; this module reads the same
facts from the ledger file with SQL, so the operator can see the figures
without the fold:

1. **Pending per subject.** Σ ``earned_pending`` per (log, subject, payee,
   payer, currency), kept when nonzero. An unsettled subject holds all of its
   net in pending and a settled one none of it (later changes to it go to
   payable), so a nonzero sum is exactly a subject the next settlement may
   move.
2. **When it occurred and how long it is held.** An order's last attribution
   decision (``decisions``, the latest row per order) carries the order's
   ``order_occurred_at`` and the ``hold_days`` of the agreement that priced
   it. A cpc click's time is its event's ``occurred_at``; its agreement is
   named on its latest ``commission`` entry (id and version), and that
   version's ``hold_days`` is read from the stored agreement events of the
   same log (decoded from Avro: there are few), the version in effect at the
   click when one was published twice.
3. **Due.** ``occurred_at ≤ P − hold_days × 24 h``, summed per (payer, payee,
   currency) with the number of orders and clicks.

Events the fold quarantined are left out (the ledger's ``folded_events``
view). What the ledger has not yet read from
the topic is not in the figures: consume first.

Alongside, the sheet as it will stand once the settlement is folded: what
is payable now plus what it moves, netted per pair (`reports/sheet.py`).
"""

from __future__ import annotations

import pyarrow as pa

from refledger.reports.money import DEFAULT_LOCALE, format_money
from refledger.reports.netting import Owed
from refledger.reports.months import alliance_month
from refledger.reports.sheet import payable_by_pair, settlements, sheet_lines, sheet_of
from refledger.reports.words import label, party, say
from refledger.schemas import codec
from refledger.schemas.periods import alliance_zone, show_time
from refledger.store.columns import click_subject_sql, subject_sql

DAY_MS = 86_400_000

_DUE = f"""
WITH pending AS (
    SELECT topic, partition, subject, shop_id AS payee, counterparty_shop_id AS payer, currency,
           sum(amount) AS amount
    FROM entries WHERE account = 'earned_pending'
    GROUP BY ALL HAVING sum(amount) <> 0
),
last_decision AS (
    SELECT topic, partition, {subject_sql("order", "merchant_shop_id", "order_id")} AS subject, decision,
           row_number() OVER (PARTITION BY topic, partition, merchant_shop_id, order_id
                              ORDER BY batch_id DESC, rowid DESC) AS latest
    FROM decisions
),
orders AS (
    SELECT topic, partition, subject,
           CAST(json_extract(decision, '$.order_occurred_at') AS BIGINT) AS occurred_ms,
           CAST(json_extract(decision, '$.hold_days') AS BIGINT) AS hold_days
    FROM last_decision WHERE latest = 1
),
click_terms AS (
    SELECT topic, partition, subject, arg_max(agreement_id, seq) AS agreement_id,
           arg_max(agreement_version, seq) AS agreement_version
    FROM entries WHERE role = 'commission' AND subject LIKE 'click:%'
    GROUP BY ALL
),
clicks AS (
    SELECT t.topic, t.partition, t.subject, epoch_ms(ev.occurred_at) AS occurred_ms,
           arg_max(a.hold_days, (a.effective_from, a.event_id)) AS hold_days
    FROM click_terms t
    JOIN folded_events ev ON ev.topic = t.topic AND ev.partition = t.partition AND ev.type = 'click'
                     AND {click_subject_sql("ev.event_id", "ev.occurred_at")} = t.subject
    JOIN agreement_holds a ON a.topic = t.topic AND a.partition = t.partition
                          AND a.agreement_id = t.agreement_id AND a.version = t.agreement_version
                          AND a.effective_from <= epoch_ms(ev.occurred_at)
    GROUP BY ALL
),
subjects AS (SELECT * FROM orders UNION ALL BY NAME SELECT * FROM clicks)
SELECT p.payer, p.payee, p.currency, sum(p.amount) AS amount, count(*) AS subjects
FROM pending p JOIN subjects s USING (topic, partition, subject)
WHERE s.occurred_ms <= $period_end - s.hold_days * {DAY_MS}
GROUP BY ALL ORDER BY p.currency, p.payer, p.payee
"""


def settlement_preview(cur, period: str, tz: str | None = None) -> dict:
    """What the settlement of ``period`` (period end: its last millisecond in the alliance's zone) would
    make payable per pair, and the sheet as it will stand once it is folded."""
    period_end = alliance_month(period, tz)[1]
    cur.register("agreement_holds", _agreement_holds(cur))
    try:
        due = cur.execute(_DUE, {"period_end": period_end}).fetchall()
    finally:
        cur.unregister("agreement_holds")
    moves = [{"from": payer, "to": payee, "currency": currency, "amount_minor": int(amount),
              "subjects": int(subjects)} for payer, payee, currency, amount, subjects in due]
    payable_now = payable_by_pair(cur, "entries")
    after = payable_now + [Owed(m["from"], m["to"], m["currency"], m["amount_minor"]) for m in moves]
    folded = [s for s in settlements(cur) if s["settlement_id"] == period
              or codec.parse_time(s["period_end"]) == period_end]
    return {
        "period": period,
        "period_end": codec.format_time(period_end),
        "becomes_payable": moves,
        "already_folded": folded,
        "sheet": sheet_of(after, period=period, settlement=None, logs_without_settlement=[]),
    }


def _agreement_holds(cur) -> pa.Table:
    """Every folded agreement version per log with its hold (SPEC §2: 15 days when not given)."""
    columns = {name: [] for name in ("topic", "partition", "event_id", "agreement_id", "version",
                                     "effective_from", "hold_days")}
    for topic, partition, event_id, avro in cur.execute(
            "SELECT topic, partition, event_id, avro FROM folded_events WHERE type = 'agreement'").fetchall():
        terms = codec.decode(avro)["agreement"]
        hold = terms.get("hold_days")
        for name, value in (("topic", topic), ("partition", partition), ("event_id", event_id),
                            ("agreement_id", terms["agreement_id"]), ("version", terms["version"]),
                            ("effective_from", terms["effective_from"]),
                            ("hold_days", 15 if hold is None else hold)):
            columns[name].append(value)
    ints = {"partition", "version", "effective_from", "hold_days"}
    return pa.table({name: pa.array(values, pa.int64() if name in ints else pa.string())
                     for name, values in columns.items()})


def preview_lines(result: dict, locale: str = DEFAULT_LOCALE, tz: str | None = None,
                  per_pair: bool = True) -> list[str]:
    """For people: what becomes payable (per pair, or in total per currency), then the sheet it leads to."""
    zone = alliance_zone(tz)
    end = show_time(codec.parse_time(result["period_end"]), zone)
    lines = [say("preview_title", locale, period=result["period"], end=end, zone=zone.key)]
    if result["already_folded"]:
        lines.append(say("already_folded", locale,
                         event_ids=", ".join(s["event_id"] for s in result["already_folded"])))
    moves = result["becomes_payable"]
    if per_pair:
        lines += [f"  {_due_line(move, locale)}" for move in moves]
    else:
        lines += [f"  {say('due_in_total', locale, amount=format_money(amount, currency, locale), count=count)}"
                  for currency, (amount, count) in sorted(_totals(moves).items())]
    if not moves:
        lines.append(f"  {label('nothing_due', locale)}")
    return lines + sheet_lines(result["sheet"], locale, tz, projected_end=result["period_end"])


def _totals(moves: list[dict]) -> dict[str, tuple[int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    for move in moves:
        amount, count = totals.get(move["currency"], (0, 0))
        totals[move["currency"]] = (amount + move["amount_minor"], count + move["subjects"])
    return totals


def _due_line(move: dict, locale: str) -> str:
    return say("becomes_payable", locale, payer=party(move["from"], locale), payee=party(move["to"], locale),
               amount=format_money(move["amount_minor"], move["currency"], locale), count=move["subjects"])
