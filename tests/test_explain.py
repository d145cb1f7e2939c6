"""`explain` answers from the ledger's read side (SQL over the stored events, decisions,
entries and quarantine), as members and auditors ask it: which clicks were looked at, who won,
what was posted, and what became of every refund."""

from __future__ import annotations

import json

from refledger.consumers.batch import LogProcessor
from refledger.consumers.ingest import ingest_files
from refledger.ledger.fold import PartitionFold
from refledger.schemas.event_files import write_event_file
from refledger.store.ledger_file import LedgerStore
from refledger.store.queries import explain
from refledger.store.readside import query
from tests.ledger_support import Alliance

SHOPS = ("li-kids", "wang-bath", "zhang-toys", "zhao-photo")


def ledger_of(tmp_path, records) -> str:
    events = tmp_path / "events.jsonl"
    write_event_file(records, events)
    db = tmp_path / "ledger.duckdb"
    store = LedgerStore(db)
    try:
        ingest_files([events], LogProcessor(store, PartitionFold, source="test"))
    finally:
        store.close()
    return str(db)


def baby_care():
    a = Alliance("baby-care")
    return a, [a.member(shop, event_id=f"m-{shop}") for shop in SHOPS] + [a.agreement(rate_bp=800, event_id="ag")]


def test_explain_shows_the_clicks_the_winner_the_entries_and_the_refunds(tmp_path):
    a, head = baby_care()
    db = ledger_of(tmp_path, head + [
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1", event_id="c-1"),
        a.click("2026-11-01T09:00", "wang-bath", "wang-bath", "v1", event_id="c-self"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
        a.refund("2026-11-02T10:00", "wang-bath", "o1", 2500, refund_id="rf-1", event_id="r-1"),
    ])
    [explained] = query(db, explain, order_id="o1")
    assert explained["order"][0]["order"]["total_minor"] == 10000
    assert explained["winning_click"] == "c-1"
    assert [(c["click_event_id"], c["eligible"], c["reason"]) for c in explained["decision"]["clicks"]] == \
        [("c-self", False, "self-referral"), ("c-1", True, "last eligible click: wins")]
    assert [(e["shop_id"], e["role"], e["amount"]) for e in explained["entries"]] == [
        ("li-kids", "commission", 800), ("wang-bath", "commission", -800),
        ("li-kids", "refund", -200), ("wang-bath", "refund", 200)]
    assert explained["refunds"] == [{"event_id": "r-1", "refund_id": "rf-1", "amount_minor": 2500,
                                     "currency": "CNY", "occurred_at": "2026-11-02T10:00:00.000Z",
                                     "status": "applied"}]
    assert json.loads(json.dumps(explained)) == explained
    assert query(db, explain, order_id="nope") == []


def test_explain_says_which_refunds_applied_and_which_were_quarantined_when_their_order_came(tmp_path):
    a, head = baby_care()
    db = ledger_of(tmp_path, head + [
        a.refund("2026-11-02T09:00", "wang-bath", "o1", 800, event_id="r-ok"),
        a.refund("2026-11-02T10:00", "wang-bath", "o1", 300, event_id="r-too-much"),
        a.refund("2026-11-02T11:00", "wang-bath", "o1", 100, currency="USD", event_id="r-usd"),
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 1000, "care")]),
    ])
    [explained] = query(db, explain, order_id="o1")
    assert [(r["event_id"], r["status"]) for r in explained["refunds"]] == [
        ("r-ok", "applied"), ("r-too-much", "quarantined: refund_exceeds_order"),
        ("r-usd", "quarantined: currency_mismatch")]


def test_parked_lists_a_refund_waiting_for_its_order_until_the_order_arrives(tmp_path):
    from click.testing import CliRunner

    from refledger.cli import cli

    a, head = baby_care()
    refund = a.refund("2026-11-03T09:00", "li-kids", "o2", 500, event_id="r-2", refund_id="rf2")
    db = ledger_of(tmp_path, head + [a.click("2026-11-03T07:00", "zhao-photo", "li-kids", "v2"), refund])
    result = CliRunner().invoke(cli, ["parked", "--db", db, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [(p["event_id"], p["order_id"], p["merchant_shop_id"], p["amount_minor"], p["currency"])
            for p in json.loads(result.output)] == [("r-2", "o2", "li-kids", 500, "CNY")]
    order = tmp_path / "order.jsonl"
    write_event_file([a.order("2026-11-03T08:00", "li-kids", "v2", "o2", [(1, 1500, "apparel")])], order)
    assert CliRunner().invoke(cli, ["ingest", str(order), "--db", db]).exit_code == 0
    assert json.loads(CliRunner().invoke(cli, ["parked", "--db", db, "--format", "json"]).output) == []
    [explained] = query(db, explain, order_id="o2")
    assert [(r["event_id"], r["status"]) for r in explained["refunds"]] == [("r-2", "applied")]
