"""The alliance's settlement sheet (结算单, SPEC §11): who pays whom, netted per pair, the fund's lines,
each party's totals, and the sheet as it stood right after a month's settlement."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from refledger.cli import cli
from refledger.schemas.event_files import write_event_file
from tests.ledger_support import Alliance
from tests.scenario_files import SCENARIOS


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def ledger(tmp_path, records, name="alliance") -> str:
    events = tmp_path / f"{name}.jsonl"
    write_event_file(records, events)
    db = tmp_path / f"{name}.duckdb"
    run("ingest", events, "--db", db)
    return str(db)


def sheet_json(db, *args):
    return json.loads(run("sheet", "--db", db, "--format", "json", *args))


def moves(sheet):
    return [(t["from"], t["to"], t["currency"], t["amount_minor"]) for t in sheet["transfers"]]


@pytest.fixture(scope="module")
def harbor(tmp_path_factory):
    db = tmp_path_factory.mktemp("harbor") / "harbor.duckdb"
    run("ingest", SCENARIOS / "harbor-fair.jsonl", "--db", db)
    return str(db)


def test_harbor_fair_as_the_ledger_stands(harbor):
    """i-ink owes h-hats 2,000 less the 500 correction; j-jade owes i-ink 800, the fund its 1,000 fine,
    and owed h-hats 500 for oC until it paid it."""
    sheet = sheet_json(harbor)
    assert sheet["period"] is None and sheet["settlement"] is None
    assert moves(sheet) == [("i-ink", "h-hats", "CNY", 1500), ("j-jade", "alliance", "CNY", 1000),
                            ("j-jade", "i-ink", "CNY", 800)]
    assert sheet["fund"] == [{"from": "j-jade", "to": "alliance", "currency": "CNY", "amount_minor": 1000}]
    totals = {t["party"]: (t["to_pay"], t["to_receive"]) for t in sheet["totals"]}
    assert totals == {"h-hats": (0, 1500), "i-ink": (1500, 800), "j-jade": (1800, 0), "alliance": (0, 1000)}


def test_the_sheet_balances_with_the_balances_command(harbor):
    """Σ over a party's pairs of what it is owed less what it owes = its earned_payable − owed_payable."""
    balances = json.loads(run("balances", "--db", harbor, "--format", "json"))
    nets = {t["party"]: t["net"] for t in sheet_json(harbor)["totals"]}
    for row in balances:
        assert nets.get(row["shop_id"], 0) == row["earned_payable"] - row["owed_payable"], row["shop_id"]


def test_a_period_gives_the_sheet_right_after_its_settlement_even_when_later_entries_exist(harbor):
    # harbor-fair's months end at midnight UTC: its settlements are found by their settlement ids
    october = sheet_json(harbor, "--period", "2026-10", "--tz", "UTC")
    assert october["settlement"]["event_id"] == "hf-09"
    # before the −500 correction, the fine, oC and the payout: only October's two orders
    assert moves(october) == [("i-ink", "h-hats", "CNY", 2000), ("j-jade", "i-ink", "CNY", 800)]
    assert october["fund"] == []
    november = sheet_json(harbor, "--period", "2026-11", "--tz", "UTC")
    assert november["settlement"]["event_id"] == "hf-19"
    # oC became payable; j-jade's payout of it (hf-20) came after the settlement
    assert ("j-jade", "h-hats", "CNY", 500) in moves(november)
    assert ("j-jade", "h-hats", "CNY", 500) not in moves(sheet_json(harbor))


def test_no_settlement_for_the_period_is_a_clear_error(harbor):
    out = run("sheet", "--db", harbor, "--period", "2026-09", code=1)
    assert "no settlement for 2026-09" in out and "2026-10" in out
    assert "YYYY-MM" in run("sheet", "--db", harbor, "--period", "2026-13", code=1)


def fund_alliance():
    a = Alliance("fund")
    return a, [a.member("a-tea"), a.member("b-cups"), a.agreement(rate_bp=1000, hold=5)]


def test_the_fund_collects_a_fine_and_pays_a_reward(tmp_path):
    a, head = fund_alliance()
    db = ledger(tmp_path, head + [
        a.adjustment("2026-11-03T10:00", "a-tea", "alliance", 1000, "banner taken down", adjustment_id="fine-1"),
        a.adjustment("2026-11-04T10:00", "alliance", "b-cups", 600, "top referrer of the month",
                     adjustment_id="reward-1"),
        a.payout("2026-11-05T10:00", "alliance", "b-cups", 200, payout_id="reward-1-part"),
    ])
    sheet = sheet_json(db)
    assert moves(sheet) == [("a-tea", "alliance", "CNY", 1000), ("alliance", "b-cups", "CNY", 400)]
    assert sheet["fund"] == sheet["transfers"]  # both involve the fund
    totals = {t["party"]: (t["to_pay"], t["to_receive"], t["net"]) for t in sheet["totals"]}
    assert totals["alliance"] == (400, 1000, 600)
    text = run("sheet", "--db", db)
    assert "联盟基金：\n  a-tea 付给 联盟基金 ¥10.00\n  联盟基金 付给 b-cups ¥4.00" in text
    assert "联盟基金：应付 ¥4.00，应收 ¥10.00" in text


def test_two_directions_of_a_pair_net_into_one_transfer(tmp_path):
    """a-tea refers a 20,000 order to b-cups (b-cups owes 2,000), b-cups a 5,000 one to a-tea (a-tea
    owes 500): b-cups pays a-tea 1,500, once."""
    a, head = fund_alliance()
    db = ledger(tmp_path, head + [
        a.click("2026-11-02T10:00", "a-tea", "b-cups", "v1"),
        a.order("2026-11-02T10:10", "b-cups", "v1", "o1", [(2, 10000, "cups")]),
        a.click("2026-11-03T10:00", "b-cups", "a-tea", "v2"),
        a.order("2026-11-03T10:10", "a-tea", "v2", "o2", [(1, 5000, "tea")]),
        a.settlement("2026-12-01T00:00", "2026-11-30T15:59:59.999", settlement_id="2026-11"),
    ])
    sheet = sheet_json(db)
    assert moves(sheet) == [("b-cups", "a-tea", "CNY", 1500)]
    assert sheet["pairs"] == [{"a": "a-tea", "b": "b-cups", "currency": "CNY", "a_owes_b": 500, "b_owes_a": 2000}]
    assert run("sheet", "--db", db).splitlines()[:3] == [
        "结算单 · 当前账面", "转账：", "  b-cups 付给 a-tea ¥15.00"]
    assert "b-cups pays a-tea CN¥15.00" in run("sheet", "--db", db, "--locale", "en_US")
    rows = list(csv.DictReader(io.StringIO(run("sheet", "--db", db, "--format", "csv"))))
    assert rows == [{"from": "b-cups", "to": "a-tea", "currency": "CNY", "amount_minor": "1500"}]


def test_yen_have_no_decimals_and_the_settlement_is_shown_in_the_alliances_time(tmp_path):
    a = Alliance("tokyo-kids")
    db = ledger(tmp_path, [
        a.member("c-cards"), a.member("d-dolls"), a.agreement(rate_bp=1000, hold=0),
        a.click("2026-11-10T01:00", "c-cards", "d-dolls", "v1"),
        a.order("2026-11-10T01:05", "d-dolls", "v1", "o1", [(1, 5000, "dolls")], currency="JPY"),
        # the last millisecond of November in Asia/Shanghai
        a.settlement("2026-11-30T16:00", "2026-11-30T15:59:59.999", settlement_id="2026-11"),
    ])
    text = run("sheet", "--db", db, "--period", "2026-11")
    assert text.splitlines()[0] == "结算单 · 2026-11 结算后（结算截止 2026-11-30 23:59，Asia/Shanghai）"
    assert "  d-dolls 付给 c-cards JP¥500" in text
    assert "c-cards: to receive ¥500" in run("sheet", "--db", db, "--locale", "en_US")
    assert sheet_json(db)["transfers"] == [{"from": "d-dolls", "to": "c-cards", "currency": "JPY",
                                            "amount_minor": 500}]


def test_a_ledger_with_nothing_payable_says_so(tmp_path):
    _, head = fund_alliance()
    db = ledger(tmp_path, head)
    assert run("sheet", "--db", db).splitlines() == ["结算单 · 当前账面", "无应付款项"]
    assert sheet_json(db)["transfers"] == []
