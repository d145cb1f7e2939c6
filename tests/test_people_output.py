"""What people read (SPEC §11): tables show money as money (¥12.80, JP¥500) and times in the alliance's
zone, in Chinese unless asked otherwise; JSON keeps integer minor units and UTC text; names that came from
events are printed as they are."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from refledger.cli import cli
from refledger.schemas.event_files import write_event_file
from tests.ledger_support import Alliance


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def two_currencies(tmp_path_factory):
    """li-kids refers a CNY order to wang-bath and a JPY order to sato-sake; one order nobody referred."""
    a = Alliance("two-currencies")
    events = [
        a.member("li-kids"), a.member("wang-bath"), a.member("sato-sake"), a.agreement(rate_bp=800, hold=0),
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1", event_id="c-1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(2, 4950, "care"), (1, 3333, "care")],
                event_id="o-1"),
        a.refund("2026-11-03T10:00", "wang-bath", "o1", 3333, refund_id="r1", event_id="r-1"),
        a.click("2026-11-30T17:30", "li-kids", "sato-sake", "v2", event_id="c-2"),
        a.order("2026-11-30T18:00", "sato-sake", "v2", "o2", [(1, 6250, "sake")], currency="JPY", event_id="o-2"),
        a.order("2026-11-05T10:00", "wang-bath", "v3", "o3", [(1, 2900, "care")], event_id="o-3"),
        a.settlement("2026-12-01T00:00", "2026-11-30T15:59:59.999", settlement_id="2026-11", event_id="s-1"),
    ]
    root = tmp_path_factory.mktemp("people")
    write_event_file(events, root / "events.jsonl")
    db = root / "ledger.duckdb"
    run("ingest", root / "events.jsonl", "--db", db)
    return str(db)


def test_balances_show_yuan_and_yen_as_money_and_json_keeps_minor_units(two_currencies):
    table = run("balances", "--db", two_currencies)
    # o1 earned 792 + 267 − 267 = 792 fen: ¥7.92; o2 earned 8 % of 6,250 yen = 500 yen: JP¥500
    assert "各店余额" in table and "待结算收入" in table
    assert "¥7.92" in table and "JP¥500" in table and "792" not in table.replace("¥7.92", "")
    english = run("balances", "--db", two_currencies, "--locale", "en_US")
    assert "CN¥7.92" in english and "earned payable" in english
    rows = {(r["shop_id"], r["currency"]): r for r in json.loads(run("balances", "--db", two_currencies,
                                                                       "--format", "json"))}
    assert rows[("li-kids", "CNY")]["earned_payable"] == 792
    assert rows[("li-kids", "JPY")]["earned_pending"] == 500
    assert "792" in run("balances", "--db", two_currencies, "--format", "csv")


def test_explain_shows_money_times_in_beijing_and_says_when_nobody_referred(two_currencies):
    table = run("explain", "--db", two_currencies, "--order", "o1")
    assert "金额 ¥132.33" in table and "2026-11-01 18:05:00" in table  # 10:05 UTC
    assert "胜出点击 c-1，推荐方 li-kids，协议 default v1（cps, 800 bp），佣金 ¥10.59" in table
    assert "-¥2.67" in table  # the refund's reversal
    yen = run("explain", "--db", two_currencies, "--order", "o2")
    assert "2026-12-01 02:00:00" in yen and "JP¥6,250" in yen and "佣金 JP¥500" in yen
    nobody = run("explain", "--db", two_currencies, "--order", "o3")
    assert "未归因：没有符合条件的点击，不产生佣金" in nobody and "- v-" not in nobody
    english = run("explain", "--db", two_currencies, "--order", "o3", "--locale", "en_US", "--tz", "UTC")
    assert "unattributed: no eligible click, no commission" in english and "2026-11-05 10:00:00" in english
    assert json.loads(run("explain", "--db", two_currencies, "--order", "o1", "--format", "json"))[
        "order"][0]["occurred_at"] == "2026-11-01T10:05:00.000Z"


def test_parked_refunds_show_money_and_local_time(tmp_path):
    a = Alliance("parked")
    write_event_file([a.member("li-kids"), a.member("wang-bath"),
                      a.refund("2026-11-30T18:30", "wang-bath", "o-later", 1250, refund_id="r9")],
                     tmp_path / "events.jsonl")
    db = tmp_path / "ledger.duckdb"
    run("ingest", tmp_path / "events.jsonl", "--db", db)
    table = run("parked", "--db", db)
    assert "¥12.50" in table and "2026-12-01 02:30" in table
    assert json.loads(run("parked", "--db", db, "--format", "json"))[0]["amount_minor"] == 1250


def test_names_from_events_are_printed_as_they_are_never_as_markup(tmp_path):
    a = Alliance("markup")
    write_event_file([a.member("li-kids"), a.member("wang-bath"), a.agreement(rate_bp=800),
                      a.click("2026-11-01T10:00", "[bold red]ghost[/]", "wang-bath", "v1", event_id="[red]c-9[/red]"),
                      a.order("2026-11-01T10:05", "wang-bath", "v1", "[b]o9[/b]", [(1, 1000, "care")])],
                     tmp_path / "events.jsonl")
    db = tmp_path / "ledger.duckdb"
    run("ingest", tmp_path / "events.jsonl", "--db", db)
    quarantined = run("quarantine", "--db", db)
    assert "[red]c-9[/red]" in quarantined and "[bold red]ghost[/]" in quarantined
    assert "[b]o9[/b]" in run("explain", "--db", db, "--order", "[b]o9[/b]")


def test_an_unknown_locale_or_zone_is_a_clear_error(two_currencies):
    assert "unknown locale 'xx_YY'" in run("balances", "--db", two_currencies, "--locale", "xx_YY", code=2)
    assert "unknown time zone 'Mars/Olympus'" in run("explain", "--db", two_currencies, "--order", "o1", "--tz",
                                                     "Mars/Olympus", code=2)


def test_the_quarantine_table_says_what_each_reason_means_in_chinese(tmp_path):
    # SPEC §4's reason codes, each with words an operator reads; the JSON keeps the code alone
    import re

    from refledger.reports.words import quarantine_reason

    spec_codes = ("undecodable schema_invalid unknown_shop shop_mismatch negative_amount total_mismatch "
                  "unknown_currency currency_mismatch refund_exceeds_order conflicting_duplicate duplicate_order "
                  "retroactive_agreement payout_exceeds_payable bad_signature period_closed future_close "
                  "personal_data").split()
    for code in spec_codes:
        assert re.search(r"[\u4e00-\u9fff]", quarantine_reason(code, "zh_CN")), code
        assert quarantine_reason(code, "en_US") != code
    a = Alliance("baby-care")
    events_file = tmp_path / "events.jsonl"
    write_event_file([a.member("li-kids", event_id="m-1"), a.member("wang-bath", event_id="m-1")], events_file)
    db = tmp_path / "ledger.duckdb"
    run("ingest", events_file, "--db", db)
    table = run("quarantine", "--db", db)
    assert "同一事件 id 内容不同" in table and "说明" in table
    [row] = json.loads(run("quarantine", "--db", db, "--format", "json"))
    assert row["reason"] == "conflicting_duplicate" and "meaning" not in row


def test_the_quarantine_table_shows_the_details_money_as_money_and_its_times_in_beijing(tmp_path):
    """An operator reading why a payout was refused reads yuan, and why a click was refused reads the
    close in Beijing time; JSON keeps the fold's words in minor units and UTC."""
    a = Alliance("night-market")
    events_file = tmp_path / "events.jsonl"
    write_event_file([a.member("d-dumpling"), a.member("e-egg"),
                      a.payout("2026-10-05T10:00", "e-egg", "d-dumpling", 100, payout_id="p-1"),
                      a.close("2026-11-01T00:00", "2026-10-15T15:59:59.999Z", "2026-10-a"),
                      a.click("2026-10-10T09:00", "d-dumpling", "e-egg", "v1", event_id="c-late")], events_file)
    db = tmp_path / "ledger.duckdb"
    run("ingest", events_file, "--db", db)
    table = run("quarantine", "--db", db)
    assert "payout is ¥1.00" in table and "owes d-dumpling ¥0.00 payable" in table
    assert "closed through 2026-10-15 23:59:59" in table  # Asia/Shanghai, 8 hours ahead of UTC
    assert "100 CNY" not in table and "15:59:59.999Z" not in table
    details = {row["event_id"]: row["detail"] for row in json.loads(run("quarantine", "--db", db, "--format", "json"))}
    assert any("payout is 100 CNY" in d for d in details.values())
    assert any("2026-10-15T15:59:59.999Z" in d for d in details.values())


def test_ids_in_a_quarantine_detail_are_never_read_as_money_or_times(tmp_path):
    """An order id that reads like a time, a merchant whose name ends like an amount: the table
    prints them as the event wrote them."""
    from zoneinfo import ZoneInfo

    from refledger.reports.words import quarantine_detail

    shanghai = ZoneInfo("Asia/Shanghai")
    duplicate = "order INV-2026-10-01T10:00:00.000Z at wang-bath was already folded"
    assert quarantine_detail("duplicate_order", duplicate, "zh_CN", shanghai) == duplicate
    owed = "BATCH 7 EUR owes li-kids 800 CNY payable, payout is 801 CNY"
    assert quarantine_detail("payout_exceeds_payable", owed, "zh_CN", shanghai) == \
        "BATCH 7 EUR owes li-kids ¥8.00 payable, payout is ¥8.01"
    closed = "click of 2026-10-03T10:20:00.000Z: the books are closed through 2026-10-15T23:59:59.999Z"
    assert quarantine_detail("period_closed", closed, "zh_CN", shanghai) == \
        "click of 2026-10-03 18:20:00: the books are closed through 2026-10-16 07:59:59"
    assert quarantine_detail("total_mismatch", "total_minor 100 but the lines sum to 90", "zh_CN", shanghai) == \
        "total_minor 100 but the lines sum to 90"


def test_every_detail_the_table_rewrites_is_one_the_fold_writes(tmp_path):
    """The table reads the fold's own words back: a refund over its order and a close dated before
    what it closes are shown as money and Beijing time, so a change to the fold's words shows here."""
    a = Alliance("night-market")
    events_file = tmp_path / "events.jsonl"
    write_event_file([a.member("d-dumpling"), a.member("e-egg"),
                      a.order("2026-10-05T10:00", "e-egg", "v1", "E-1", [(1, 1000, "eggs")]),
                      a.refund("2026-10-06T10:00", "e-egg", "E-1", 1500),
                      a.close("2026-10-20T00:00", "2026-10-31T15:59:59.999Z", "2026-10")], events_file)
    db = tmp_path / "ledger.duckdb"
    run("ingest", events_file, "--db", db)
    table = run("quarantine", "--db", db)
    assert "refunds would total ¥15.00 of an order of ¥10.00" in table
    assert "closes through 2026-10-31 23:59:59, later than the close itself (2026-10-20 08:00:00)" in table
