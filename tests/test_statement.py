"""A member's monthly statement: every entry with its provenance, opening and closing balances,
and who pays whom after netting (SPEC §9, worked example §13)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from refledger.cli import cli
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
    assert nets["zhang-toys"]["says"] == "li-kids pays zhang-toys 2,072 CNY"
    assert nets["wang-bath"]["says"] == "wang-bath pays li-kids 792 CNY"
    assert s["overall"] == [{"currency": "CNY", "net": -1280, "says": "li-kids pays 1,280 CNY overall"}]


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
    assert s["netting"][0]["says"] == "li-kids pays zhang-toys 2,072 CNY"


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
    assert z["owes"] == "li-kids owes zhang-toys 2,072 and zhang-toys owes li-kids 500: li-kids pays zhang-toys 1,572 CNY"


def test_csv_and_table(baby):
    rows = list(csv.DictReader(io.StringIO(
        run("statement", "--db", baby, "--shop", "li-kids", "--period", "2026-11", "--format", "csv").output)))
    assert {r["event_id"] for r in rows} == {"o-1", "r-1", "o-3", "s-1"}
    assert all(r["change"].lstrip("-").isdigit() for r in rows)
    table = run("statement", "--db", baby, "--shop", "li-kids", "--period", "2026-11").output
    assert "li-kids pays zhang-toys 2,072 CNY" in table and "li-kids pays 1,280 CNY overall" in table


def test_unknown_shop_and_bad_period_are_clear_errors(baby):
    assert "no shop 'nobody'" in run("statement", "--db", baby, "--shop", "nobody", "--period", "2026-11",
                                     code=1).output
    assert "YYYY-MM" in run("statement", "--db", baby, "--shop", "li-kids", "--period", "2026-13", code=1).output
