"""A member's monthly statement: every entry with its provenance, opening and closing balances,
and who pays whom after netting (SPEC §9, worked example §13)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from refledger.cli import cli
from tests.ledger_support import Alliance
from tests.scenario_files import SCENARIOS


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def baby(tmp_path_factory):
    db = tmp_path_factory.mktemp("statement") / "baby.duckdb"
    run("ingest", SCENARIOS / "baby-care.jsonl", "--db", db)
    return db


def statement(db, shop, period):
    return json.loads(run("statement", "--db", db, "--shop", shop, "--period", period, "--format", "json").output)


def test_li_kids_november(baby):
    s = statement(baby, "li-kids", "2026-11")
    assert s["opening"] == []
    by_event = {(line["event_id"], line["account"]): line for line in s["lines"]}
    # o1: li-kids referred wang-bath's order, 1,059 pending, clicked c-1, default v1 at 800 bp
    o1 = by_event[("o-1", "earned_pending")]
    assert (o1["change"], o1["counterparty_shop_id"], o1["click_event_id"]) == (1059, "wang-bath", "c-1")
    assert (o1["agreement_id"], o1["agreement_version"], o1["rate_bp"], o1["model"]) == ("default", 1, 800, "cps")
    # the 3,333 refund took back 267, naming the refund
    r1 = by_event[("r-1", "earned_pending")]
    assert (r1["change"], r1["refund_id"]) == (-267, "r1")
    # o3: li-kids owes zhang-toys 2,072, the last click c-4 won
    o3 = by_event[("o-3", "owed_pending")]
    assert (o3["change"], o3["counterparty_shop_id"], o3["click_event_id"]) == (2072, "zhang-toys", "c-4")
    # the settlement closing November moved both to payable, booked in November
    assert by_event[("s-1", "earned_payable")]["change"] == 792
    assert by_event[("s-1", "owed_payable")]["change"] == 2072
    [cny] = s["closing"]
    assert (cny["earned_pending"], cny["earned_payable"], cny["owed_pending"], cny["owed_payable"]) == (0, 792, 0, 2072)
    nets = {n["counterparty_shop_id"]: n for n in s["netting"]}
    # 2,072 fen is ¥20.72 (it used to say "2,072 CNY")
    assert nets["zhang-toys"]["says"] == "li-kids 付给 zhang-toys ¥20.72"
    assert nets["wang-bath"]["says"] == "wang-bath 付给 li-kids ¥7.92"
    assert s["overall"] == [{"currency": "CNY", "net": -1280, "says": "li-kids 合计应付 ¥12.80"}]
    english = json.loads(run("statement", "--db", baby, "--shop", "li-kids", "--period", "2026-11", "--format",
                             "json", "--locale", "en_US").output)
    assert english["overall"][0]["says"] == "li-kids pays CN¥12.80 overall"


def test_closing_balances_equal_the_ledgers(baby):
    balances = {r["shop_id"]: r for r in json.loads(run("balances", "--db", baby, "--format", "json").output)}
    for shop in ("li-kids", "wang-bath", "zhang-toys"):
        [closing] = statement(baby, shop, "2026-11")["closing"]
        assert {k: v for k, v in closing.items() if k != "currency"} == \
            {k: v for k, v in balances[shop].items() if k not in ("shop_id", "currency")}


def test_a_quiet_month_opens_as_it_closes(baby):
    s = statement(baby, "zhang-toys", "2027-01")
    assert s["lines"] == []
    assert s["opening"] == s["closing"]
    assert s["opening"][0]["earned_payable"] == 2072
    assert s["netting"][0]["says"] == "li-kids 付给 zhang-toys ¥20.72"


def test_netting_both_ways(tmp_path):
    """li-kids owes zhang-toys 2,072 and zhang-toys owes li-kids 500: li-kids pays zhang-toys 1,572."""
    events = (SCENARIOS / "baby-care.jsonl").read_text().splitlines()
    extra = [
        {"event_id": "c-z", "type": "click", "occurred_at": "2026-11-06T10:00:00.000Z", "alliance_id": "baby-care",
         "shop_id": "li-kids", "visitor_id": "vz",
         "click": {"referrer_shop_id": "li-kids", "merchant_shop_id": "zhang-toys", "placement_id": "p"}},
        {"event_id": "o-z", "type": "order", "occurred_at": "2026-11-06T10:10:00.000Z", "alliance_id": "baby-care",
         "shop_id": "zhang-toys", "visitor_id": "vz",
         "order": {"order_id": "oz", "merchant_shop_id": "zhang-toys", "currency": "CNY",
                   "lines": [{"sku": "kite", "category": "toys", "quantity": 1, "unit_price_minor": 5000}],
                   "total_minor": 5000}},  # toys at 10 %: 500 for li-kids
    ]
    settlement = [line for line in events if '"settlement"' in line]
    others = [line for line in events if '"settlement"' not in line]
    path = tmp_path / "both-ways.jsonl"
    path.write_text("\n".join(others + [json.dumps(e) for e in extra] + settlement) + "\n")
    db = tmp_path / "both.duckdb"
    run("ingest", path, "--db", db)
    nets = {n["counterparty_shop_id"]: n for n in statement(db, "li-kids", "2026-11")["netting"]}
    z = nets["zhang-toys"]
    assert (z["they_owe_payable"], z["we_owe_payable"]) == (500, 2072)
    assert z["owes"] == ("li-kids 欠 zhang-toys ¥20.72，zhang-toys 欠 li-kids ¥5.00："
                         "li-kids 付给 zhang-toys ¥15.72")


def test_csv_and_table(baby):
    rows = list(csv.DictReader(io.StringIO(
        run("statement", "--db", baby, "--shop", "li-kids", "--period", "2026-11", "--format", "csv").output)))
    assert {r["event_id"] for r in rows} == {"o-1", "r-1", "o-3", "s-1"}
    assert all(r["change"].lstrip("-").isdigit() for r in rows)
    table = run("statement", "--db", baby, "--shop", "li-kids", "--period", "2026-11").output
    assert "li-kids 付给 zhang-toys ¥20.72" in table and "li-kids 合计应付 ¥12.80" in table
    assert "¥10.59" in table and "1,059" not in table  # o1's commission, as money
    assert "2026-11-01 18:05" in table  # o1 at 10:05 UTC is 18:05 in Beijing


def test_unknown_shop_and_bad_period_are_clear_errors(baby):
    assert "no shop 'nobody'" in run("statement", "--db", baby, "--shop", "nobody", "--period", "2026-11",
                                     code=1).output
    assert "YYYY-MM" in run("statement", "--db", baby, "--shop", "li-kids", "--period", "2026-13", code=1).output


def test_the_month_is_the_alliances_month(tmp_path):
    """An order at 02:00 Beijing time on December 1st (18:00 UTC on November 30th) is December's."""
    a = Alliance("baby-care")
    events = [a.member("li-kids"), a.member("wang-bath"), a.agreement(rate_bp=1000),
              a.click("2026-11-30T17:50", "li-kids", "wang-bath", "v1", event_id="c-late"),
              a.order("2026-11-30T18:00", "wang-bath", "v1", "o-night", [(1, 10000, "care")], event_id="o-night")]
    db = ingest(tmp_path, events)

    def order_lines(period, *tz):
        s = json.loads(run("statement", "--db", db, "--shop", "li-kids", "--period", period, "--format", "json",
                           *tz).output)
        return [line["event_id"] for line in s["lines"]]

    assert order_lines("2026-11") == [] and order_lines("2026-12") == ["o-night"]
    assert order_lines("2026-11", "--tz", "UTC") == ["o-night"]
    table = run("statement", "--db", db, "--shop", "li-kids", "--period", "2026-12").output
    assert "2026-12-01 02:00" in table and "¥10.00" in table
    assert "（2026-12-01 00:00 至 2027-01-01 00:00，Asia/Shanghai）" in table.splitlines()[0]


def test_the_fund_has_its_own_section_and_swap_credits_are_shown_per_pair(tmp_path):
    a = Alliance("tea-street")
    events = [a.member("a-tea"), a.member("c-snacks"), a.member("d-dates"),
              a.agreement(agreement_id="swap", merchant="a-tea", referrer="c-snacks", model="swap"),
              a.agreement(agreement_id="swap-back", merchant="c-snacks", referrer="a-tea", model="swap"),
              a.click("2026-11-02T02:00", "c-snacks", "a-tea", "v1"),
              a.click("2026-11-03T03:00", "c-snacks", "a-tea", "v1"),  # 25 h later: a second credit
              a.click("2026-11-04T02:00", "a-tea", "c-snacks", "v2"),
              a.adjustment("2026-11-05T02:00", "a-tea", "alliance", 2000, "late fee", adjustment_id="fee-1")]
    db = ingest(tmp_path, events)
    s = json.loads(run("statement", "--db", db, "--shop", "a-tea", "--period", "2026-11", "--format", "json").output)
    assert [(f["counterparty_shop_id"], f["we_owe_payable"], f["says"]) for f in s["fund"]] == \
        [("alliance", 2000, "a-tea 付给 联盟基金 ¥20.00")]
    assert all(n["counterparty_shop_id"] != "alliance" for n in s["netting"])
    assert [(w["counterparty_shop_id"], w["given"], w["received"], w["balance"]) for w in s["swaps"]] == \
        [("c-snacks", 1, 2, -1)]
    table = run("statement", "--db", db, "--shop", "a-tea", "--period", "2026-11").output
    assert "联盟基金" in table and "a-tea 付给 联盟基金 ¥20.00" in table and "资源互换点击" in table
    assert "1 次点击" in table and "CLICK0" not in table  # a swap credit is a click, not money


def ingest(tmp_path, records) -> str:
    from refledger.schemas.event_files import write_event_file

    path = tmp_path / "events.jsonl"
    write_event_file(records, path)
    db = tmp_path / "ledger.duckdb"
    run("ingest", path, "--db", db)
    return str(db)
