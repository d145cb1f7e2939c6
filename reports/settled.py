"""The settlement sheet's summary on the operator's page: who pays whom, once a month is settled.

A month counts as settled when the ledger folded a `settlement` whose
`period_end` falls in that month in the alliance's time zone (the
`checkpoints` table records each one folded). The summary is the ledger's
payable balances as they stand, netted per pair of parties and currency
into one transfer each (`reports/netting.py`), with each party's totals.
"""

from __future__ import annotations

from refledger.reports.netting import PAYABLE_BY_PAIR, Owed, net_pairs, party_totals, transfers
from refledger.schemas.periods import alliance_zone, month_bounds
from refledger.schemas.timestamps import format_utc_millis, naive_utc, naive_utc_millis


def sheet_summary(cur, period: str, zone: str | None = None) -> dict | None:
    """The netted transfers and each party's totals, or None while ``period`` is not settled."""
    start, end = month_bounds(period, alliance_zone(zone))
    settled = cur.execute("""SELECT event_id, max(period_end) FROM checkpoints
                             WHERE period_end BETWEEN $start AND $end GROUP BY event_id ORDER BY 2, 1""",
                          {"start": naive_utc(start), "end": naive_utc(end)}).fetchall()
    if not settled:
        return None
    owed = [Owed(payer, payee, currency, int(amount))
            for payer, payee, currency, amount in cur.execute(PAYABLE_BY_PAIR.format(entries="entries")).fetchall()]
    moves = transfers(net_pairs(owed))
    return {"period": period,
            "settlements": [{"event_id": event_id, "period_end": format_utc_millis(naive_utc_millis(period_end))}
                            for event_id, period_end in settled],
            "transfers": [t.to_dict() for t in moves], "totals": party_totals(moves)}
