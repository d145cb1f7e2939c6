"""Closing, as properties over generated alliances (SPEC §9a, §12.4, §12.7).

* After a close, the order in which the later shop events arrive does not
  change any balance (§12.4 for what is still open).
* The SQL recomputation of `refledger verify`, which applies the closing rules
  on its own, agrees with the fold on logs with closes, late and re-delivered
  events included.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refledger.cli import cli
from refledger.ledger.balances import balances
from refledger.replay.bulk import compare
from refledger.schemas.event_files import write_event_file
from tests.ledger_support import Alliance, all_entries, fold_all, ms, nonzero_rows
from tests.examples import examples

SHOPS = ("h-hats", "i-ink", "j-jade")
VISITORS = ("v1", "v2", "v3")
DAY = 86_400_000
OCT_1 = ms("2026-10-01T00:00")


def at(offset_ms: int) -> str:
    from refledger.ledger.times import iso

    return iso(OCT_1 + offset_ms)


@st.composite
def shop_events(draw, a: Alliance, start_day: int, end_day: int, n: int):
    """Clicks, orders and refunds between two days of October-November (day 0 is October 1)."""
    events = []
    orders = []
    placed_so_far = 0
    for _ in range(n):
        kind = draw(st.sampled_from(["click", "click", "order", "refund"]))
        t = draw(st.integers(start_day * DAY, end_day * DAY - 1))
        visitor = draw(st.sampled_from(VISITORS))
        merchant = draw(st.sampled_from(SHOPS))
        if kind == "click":
            events.append(a.click(at(t), draw(st.sampled_from(SHOPS)), merchant, visitor))
        elif kind == "order":
            order_id = f"o{placed_so_far}-{start_day}"  # each order its own id (a refunded one leaves `orders`)
            placed_so_far += 1
            orders.append((merchant, order_id, t))
            events.append(a.order(at(t), merchant, visitor, order_id, [(draw(st.integers(1, 3)),
                                                                     draw(st.integers(100, 9000)), "misc")]))
        elif orders:  # one refund per order at most, never above its total: no refund_exceeds_order, whose
            # verdict (at once, or when a parked refund's order comes) depends on the order of arrival
            merchant, order_id, placed = orders.pop(draw(st.integers(0, len(orders) - 1)))
            events.append(a.refund(at(max(t, placed)), merchant, order_id, draw(st.integers(1, 100))))
    return events


@st.composite
def closed_alliances(draw):
    """(log up to and with the close, the shop events after it, a settlement after those)."""
    a = Alliance("prop")
    head = [a.member(s, at="2026-09-30T00:00") for s in SHOPS]
    head.append(a.agreement(at="2026-09-30T00:00", rate_bp=draw(st.sampled_from([500, 1000, 1234])),
                            window=draw(st.integers(0, 10)), hold=draw(st.integers(0, 10))))
    if draw(st.booleans()):
        head.append(a.agreement(at="2026-09-30T00:00", agreement_id="pc", merchant="i-ink", referrer="h-hats",
                                model="cpc", amount_minor=30, currency="CNY", hold=0))
    before = draw(shop_events(a, 0, 20, draw(st.integers(5, 25))))
    close_day = draw(st.integers(10, 25))
    through = at(close_day * DAY - 1)
    settle = a.settlement(at(31 * DAY), at(31 * DAY - 1), "2026-10")
    close = a.close(at(32 * DAY), through, "c-10")
    # after the close: late events from before it (quarantined), events after it, re-deliveries
    after = draw(shop_events(a, close_day - 5, 45, draw(st.integers(5, 25))))
    after += draw(st.lists(st.sampled_from(before), max_size=3)) if before else []
    return head + before + [settle, close], after, a.settlement(at(61 * DAY), at(61 * DAY - 1), "2026-11")


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(closed_alliances(), st.randoms(use_true_random=False))
def test_after_a_close_the_order_of_later_shop_events_changes_no_balance(alliance, rnd):
    closed, after, _settlement = alliance
    shuffled = list(after)
    rnd.shuffle(shuffled)
    _, first = fold_all(closed + after)
    _, second = fold_all(closed + shuffled)
    assert nonzero_rows(balances(all_entries(first))) == nonzero_rows(balances(all_entries(second)))
    # the late events from before the close are refused either way, whatever their place
    def verdicts(outcomes):
        return sorted([o.quarantine or "" for o in outcomes] + [r for o in outcomes for _e, r in o.late_quarantines])
    assert verdicts(first) == verdicts(second)


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(closed_alliances())
def test_the_sql_recomputation_applies_the_close_as_the_fold_does(alliance):
    closed, after, settlement = alliance
    log = closed + after + [settlement]
    with tempfile.TemporaryDirectory() as work:
        events, db = Path(work) / "log.jsonl", Path(work) / "ledger.duckdb"
        write_event_file(log, events)
        result = CliRunner().invoke(cli, ["ingest", str(events), "--db", str(db)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        con = duckdb.connect(str(db), read_only=True)
        try:
            problems, _ = compare(con)
            [(closed_out,)] = con.execute("SELECT count(*) FROM quarantine WHERE reason = 'period_closed'").fetchall()
        finally:
            con.close()
    assert problems == []
    through = closed[-1]["close"]["closed_through"]
    dated_before = [e for e in after if e["occurred_at"] <= through]
    assert closed_out >= len(dated_before)  # each is refused, and so are refunds of closed orders
