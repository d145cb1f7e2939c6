"""The settlement sheet's summary on the operator's page: who pays whom, once a month is settled.

A month counts as settled when the ledger folded its `settlement` (the
`checkpoints` table records each one folded): the one named for it
(`settlement_id` = ``YYYY-MM``, as `refledger settle` and `simulate` name
them), or one whose `period_end` falls in that month in the alliance's time
zone. The summary is the ledger's
payable balances as they stand, netted per pair of parties and currency
into one transfer each (`reports/netting.py`), with each party's totals.
"""

from __future__ import annotations

from refledger.reports.netting import PAYABLE_BY_PAIR, Owed, net_pairs, party_totals, transfers
from refledger.schemas import codec
from refledger.schemas.periods import alliance_zone, period_of
from refledger.schemas.timestamps import format_utc_millis, naive_utc_millis


def sheet_summary(cur, period: str, zone: str | None = None) -> dict | None:
    """The netted transfers and each party's totals, or None while ``period`` is not settled."""
    tz = alliance_zone(zone)
    settled = []
    for event_id, period_end, avro in cur.execute(
            """SELECT c.event_id, any_value(c."at"), any_value(e.avro) FROM checkpoints c
               JOIN events e ON e.topic = c.topic AND e.partition = c.partition AND e.event_id = c.event_id
                            AND e.type = 'settlement'
               WHERE c.kind = 'settlement'
               GROUP BY c.event_id ORDER BY 2, 1""").fetchall():
        ends = naive_utc_millis(period_end)
        if codec.decode(bytes(avro))["settlement"]["settlement_id"] == period or period_of(ends, tz) == period:
            settled.append((event_id, ends))
    if not settled:
        return None
    owed = [Owed(payer, payee, currency, int(amount))
            for payer, payee, currency, amount in cur.execute(PAYABLE_BY_PAIR.format(entries="entries")).fetchall()]
    moves = transfers(net_pairs(owed))
    return {"period": period,
            "settlements": [{"event_id": event_id, "period_end": format_utc_millis(ends)} for event_id, ends in settled],
            "transfers": [t.to_dict() for t in moves], "totals": party_totals(moves)}
