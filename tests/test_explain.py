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


def test_explain_tells_a_chinese_reader_why_each_click_did_or_did_not_win(tmp_path):
    # every reason the fold can give a click, and the category rate that priced the order, read in Chinese
    from refledger.reports.explained import explained_lines

    a, head = baby_care()
    db = ledger_of(tmp_path, head + [
        a.member("zhao-photo", at="2026-10-20T00:00", status="suspended", event_id="m-zhao-off"),
        a.agreement(at="2026-10-01T00:00", agreement_id="none-for-toys", merchant="wang-bath",
                    referrer="zhang-toys", model="none", event_id="ag-none"),
        a.agreement(at="2026-10-01T00:00", agreement_id="photo", merchant="wang-bath", referrer="zhao-photo",
                    rate_bp=500, category_rates_bp={"care": 1200}, event_id="ag-photo"),
        a.click("2026-10-01T09:00", "li-kids", "wang-bath", "v1", event_id="c-old"),
        a.click("2026-11-01T08:00", "wang-bath", "wang-bath", "v1", event_id="c-self"),
        a.click("2026-11-01T08:30", "zhang-toys", "wang-bath", "v1", event_id="c-none"),
        a.click("2026-11-01T09:00", "zhao-photo", "wang-bath", "v1", event_id="c-off"),
        a.member("chen-shoes", at="2026-11-01T09:20", event_id="m-chen"),  # first in the log, dated later
        a.click("2026-11-01T09:10", "chen-shoes", "wang-bath", "v1", event_id="c-new"),
        a.agreement(at="2026-10-01T00:00", agreement_id="cpc-for-chen", merchant="wang-bath",
                    referrer="chen-shoes", model="cpc", amount_minor=30, currency="CNY", event_id="ag-cpc"),
        a.click("2026-11-01T09:25", "chen-shoes", "wang-bath", "v1", event_id="c-cpc"),
        a.click("2026-11-01T09:30", "li-kids", "wang-bath", "v1", event_id="c-1"),
        a.click("2026-11-01T09:45", "wang-bath", "wang-bath", "v1", event_id="c-self-2"),
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1", event_id="c-2"),
        a.click("2026-11-01T11:00", "li-kids", "wang-bath", "v1", event_id="c-late"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
    ])
    [explained] = query(db, explain, order_id="o1")
    tables = [part for part in explained_lines(explained, "zh_CN") if not isinstance(part, str)]
    reasons = {row["click_event_id"]: row["reason"] for row in tables[0][1]}
    assert reasons == {"c-old": "超出 15 天归因窗口", "c-self": "自我推荐", "c-self-2": "自我推荐",
                       "c-none": "没有生效的协议（模式 none）", "c-off": "点击时推荐方状态为 暂停",
                       "c-new": "点击时推荐方尚未入盟", "c-cpc": "协议模式 cpc 不按订单计佣",
                       "c-1": "符合条件，但更晚的点击胜出", "c-2": "最后一次符合条件的点击：胜出",
                       "c-late": "点击晚于订单"}
    english = {row["click_event_id"]: row["reason"]
               for row in [p for p in explained_lines(explained, "en_US") if not isinstance(p, str)][0][1]}
    assert english["c-2"] == "last eligible click: wins"


def test_explain_names_the_category_rates_that_priced_the_order(tmp_path):
    # 8% by default, toys at 30%: a toy of ¥100 and a cream of ¥100 earn ¥30 + ¥8, and the verdict says why
    from refledger.reports.explained import explained_lines

    a = Alliance("baby-care")
    db = ledger_of(tmp_path, [a.member(shop) for shop in SHOPS] + [
        a.agreement(rate_bp=800, category_rates_bp={"toys": 3000}),
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1", event_id="c-1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 10000, "toys"), (1, 10000, "care")])])
    [explained] = query(db, explain, order_id="o1")
    verdict = [line for line in explained_lines(explained, "zh_CN") if isinstance(line, str) and "胜出点击" in line]
    assert verdict == ["  胜出点击 c-1，推荐方 li-kids，协议 default v1（cps, 800 bp, toys 3000 bp），佣金 ¥38.00"]


def test_explain_shows_the_order_that_was_folded_and_names_the_copies_that_were_refused(tmp_path):
    # wang-bath sends o1 (¥10.00), then o1 again under another event id (duplicate_order) and the first
    # event id again with another total (conflicting_duplicate): the order is the first, the others refused
    from refledger.reports.explained import explained_lines

    a, head = baby_care()
    db = ledger_of(tmp_path, head + [
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1", event_id="c-1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 1000, "care")], event_id="o-1"),
        a.order("2026-11-01T11:05", "wang-bath", "v1", "o1", [(1, 99999, "care")], event_id="o-2"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 5000, "care")], event_id="o-1"),
    ])
    [explained] = query(db, explain, order_id="o1")
    assert [(o["event_id"], o["order"]["total_minor"]) for o in explained["order"]] == [("o-1", 1000)]
    assert [(q["event_id"], q["total_minor"], q["reason"]) for q in explained["refused"]] == [
        ("o-2", 99999, "duplicate_order"), ("o-1", 5000, "conflicting_duplicate")]
    lines = [line for line in explained_lines(explained, "zh_CN") if isinstance(line, str)]
    assert any("¥999.99" in line and "已隔离" in line and "duplicate_order" in line for line in lines)
    assert sum("¥10.00" in line for line in lines) == 1
    from refledger.reports.scoped import explained_as

    [as_referrer] = explained_as([explained], "li-kids")
    assert as_referrer["refused"] == [] and explained_as([explained], "wang-bath")[0]["refused"] == explained["refused"]
