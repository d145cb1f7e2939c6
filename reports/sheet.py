"""The alliance's settlement sheet (结算单, SPEC §11): who pays whom, netted per pair.

Per pair of parties and currency, what each owes the other as payable,
netted into one transfer (`reports/netting.py`); each party's totals to pay
and to receive; and the lines of the alliance's fund (``"alliance"``), which
collects fines and fees and pays rewards like any party.

Without a period the sheet is the ledger as it stands. With a period it is
the ledger as it stood right after that period's settlement was folded: the
`checkpoints` table records, per log, the number of entries right after each
settlement, so the sheet reads each log's entries with ``seq`` below that
count, whatever was folded since. A period's settlement is the one named for
it (``settlement_id`` = ``YYYY-MM``, as `refledger settle` and `simulate` name
them), else the last one folded whose ``period_end`` falls in that month in
the alliance's time zone. A log that has not folded it (a consumer still
behind) is listed in ``logs_without_settlement`` and left out.
"""

from __future__ import annotations

from refledger.reports.netting import PAYABLE_BY_PAIR, Owed, net_pairs, party_totals, transfers
from refledger.reports.money import DEFAULT_LOCALE, format_money
from refledger.reports.words import FUND, chinese, label, party, pays, say
from refledger.schemas import codec
from refledger.reports.months import alliance_month
from refledger.schemas.periods import alliance_zone, show_time
from refledger.schemas.timestamps import naive_utc_millis
from refledger.store.queries import QueryError


class SheetError(QueryError):
    """The sheet asked for cannot be made (no settlement for that period)."""


def sheet(cur, period: str | None = None, tz: str | None = None) -> dict:
    """The settlement sheet as the ledger stands, or as it stood right after ``period``'s settlement."""
    if period is None:
        owed = payable_by_pair(cur, "entries")
        return sheet_of(owed, period=None, settlement=None, logs_without_settlement=[])
    found = period_settlement(cur, period, tz)
    cut = """(SELECT e.* FROM entries e JOIN checkpoints c ON c.topic = e.topic AND c.partition = e.partition
              WHERE c.kind = 'settlement' AND c.event_id = $settlement AND e.seq < c.entries)"""
    missing = [f"{t}:{p}" for t, p in cur.execute(
        """SELECT DISTINCT topic, partition FROM entries
           EXCEPT SELECT topic, partition FROM checkpoints WHERE kind = 'settlement' AND event_id = ?
           ORDER BY ALL""",
        [found["event_id"]]).fetchall()]
    owed = payable_by_pair(cur, cut, {"settlement": found["event_id"]})
    return sheet_of(owed, period=period, settlement=found, logs_without_settlement=missing)


def sheet_of(owed: list[Owed], *, period: str | None, settlement: dict | None,
             logs_without_settlement: list[str]) -> dict:
    """The sheet's JSON from what each payer owes each payee as payable."""
    pairs = net_pairs(owed)
    moves = transfers(pairs)
    return {
        "period": period,
        "settlement": settlement,
        "logs_without_settlement": logs_without_settlement,
        "transfers": [t.to_dict() for t in moves],
        "totals": party_totals(moves),
        "fund": [t.to_dict() for t in moves if FUND in (t.payer, t.payee)],
        "pairs": [p.to_dict() for p in pairs],
    }


def payable_by_pair(cur, entries: str = "entries", params: dict | None = None) -> list[Owed]:
    """What each payer owes each payee as payable, read from ``entries`` (a table or a subquery)."""
    rows = cur.execute(PAYABLE_BY_PAIR.format(entries=entries), params or {}).fetchall()
    return [Owed(payer, payee, currency, int(amount)) for payer, payee, currency, amount in rows]


def settlements(cur) -> list[dict]:
    """Every settlement the ledger folded, in the order it was first folded: event id, settlement id,
    period end (UTC text) and how many logs folded it."""
    rows = cur.execute(
        """SELECT c.event_id, min(c.batch_id) AS first_batch, any_value(c."at"), count(*) AS logs,
                  any_value(e.avro)
           FROM checkpoints c
           JOIN folded_events e ON e.topic = c.topic AND e.partition = c.partition
                               AND e.event_id = c.event_id AND e.type = 'settlement'
           WHERE c.kind = 'settlement'
           GROUP BY c.event_id ORDER BY first_batch, c.event_id""").fetchall()
    return [{"event_id": event_id, "settlement_id": codec.decode(avro)["settlement"]["settlement_id"],
             "period_end": codec.format_time(naive_utc_millis(period_end)), "logs": int(logs)}
            for event_id, _batch, period_end, logs, avro in rows]


def period_settlement(cur, period: str, tz: str | None = None) -> dict:
    """The settlement of ``period``: the last one named for it, else the last whose period end falls in it."""
    start, end = alliance_month(period, tz)
    folded = settlements(cur)
    named = [s for s in folded if s["settlement_id"] == period]
    within = [s for s in folded if start <= codec.parse_time(s["period_end"]) <= end]
    if named or within:
        return (named or within)[-1]
    known = ", ".join(f"{s['settlement_id']} (ends {s['period_end']})" for s in folded) or "none"
    raise SheetError(f"no settlement for {period} in this ledger (settlements folded: {known}); "
                     "leave out --period for the sheet as the ledger stands")




def sheet_lines(result: dict, locale: str = DEFAULT_LOCALE, tz: str | None = None,
                projected_end: str | None = None) -> list[str]:
    """The sheet as plain lines an operator can paste into the alliance's group chat:
    ``j-jade 付给 h-hats ¥5.00``, the fund's lines, then each party's totals."""
    zone = alliance_zone(tz)
    if projected_end is not None:
        when = say("projected", locale, period=result["period"], zone=zone.key,
                   end=show_time(codec.parse_time(projected_end), zone))
    elif result["settlement"] is not None:
        when = say("settlement_cut", locale, period=result["period"], zone=zone.key,
                   end=show_time(codec.parse_time(result["settlement"]["period_end"]), zone))
    else:
        when = say("ledger_now", locale)
    lines = [say("sheet_title", locale, when=when)]
    if result["logs_without_settlement"]:
        lines.append(say("logs_missing", locale, logs=", ".join(result["logs_without_settlement"])))
    between_shops = [t for t in result["transfers"] if FUND not in (t["from"], t["to"])]
    if not result["transfers"]:
        lines.append(label("nothing_due", locale))
    for title, moves in ((label("transfers", locale), between_shops), (label("fund_lines", locale), result["fund"])):
        if moves:
            lines.append(f"{title}:" if not chinese(locale) else f"{title}：")
            lines += [f"  {pays(t['from'], t['to'], t['amount_minor'], t['currency'], locale)}" for t in moves]
    if result["totals"]:
        lines.append(f"{label('totals', locale)}{'：' if chinese(locale) else ':'}")
        lines += [f"  {_total_line(row, locale)}" for row in result["totals"]]
    return lines


def _total_line(row: dict, locale: str) -> str:
    name = party(row["party"], locale)
    pay = format_money(row["to_pay"], row["currency"], locale)
    receive = format_money(row["to_receive"], row["currency"], locale)
    if row["to_pay"] and row["to_receive"]:
        return say("to_pay_receive", locale, party=name, pay=pay, receive=receive)
    if row["to_pay"]:
        return say("to_pay_only", locale, party=name, pay=pay)
    return say("to_receive_only", locale, party=name, receive=receive)
