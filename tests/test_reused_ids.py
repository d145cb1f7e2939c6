"""An event id that comes back after a close is another event (SPEC §9a), in every output.

h-hats is paid ¥0.50 a click by i-ink (cpc, hold 0). Its click c-1 of 10 October
earns and is closed with October; on 10 November a new click reuses the id c-1 and
earns too. Each is its own event: once in the statement, in its own month in the
traffic report, in what a settlement run would move, and the ledger gives each
entry an id of its own. Every story here failed one of these outputs before.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from click.testing import CliRunner

from refledger.cli import cli
from refledger.schemas.event_files import write_event_file
from tests.ledger_support import Alliance

OCTOBER_END = "2026-10-31T15:59:59.999Z"    # the end of October in Beijing
NOVEMBER_END = "2026-11-30T15:59:59.999Z"


def run(*args, code=0) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def ledger(tmp_path: Path, records) -> Path:
    write_event_file(records, tmp_path / "events.jsonl")
    run("ingest", tmp_path / "events.jsonl", "--db", tmp_path / "ledger.duckdb")
    return tmp_path / "ledger.duckdb"


def two_clicks_named_c1(*later):
    a = Alliance("harbor-fair")
    return [a.member("h-hats", at="2026-10-01T00:00"), a.member("i-ink", at="2026-10-01T00:00"),
            a.agreement(at="2026-10-01T00:00", effective_from="2026-10-01T00:00", model="cpc", amount_minor=50,
                        currency="CNY", hold=0),
            a.click("2026-10-10T00:00", "h-hats", "i-ink", "v1", event_id="c-1"),
            a.close("2026-11-01T00:00", OCTOBER_END, "through-october"),
            a.click("2026-11-10T00:00", "h-hats", "i-ink", "v2", event_id="c-1"),
            *later]


def lines(db, period) -> list[tuple]:
    statement = json.loads(run("statement", "--db", db, "--shop", "h-hats", "--period", period, "--format", "json"))
    return [(line["event_id"], line["account"], line["change"]) for line in statement["lines"]], statement["closing"]


def test_the_statement_shows_each_click_once_in_its_own_month(tmp_path):
    a = Alliance("harbor-fair")
    db = ledger(tmp_path, two_clicks_named_c1(a.settlement("2026-12-01T00:00", NOVEMBER_END, "2026-11")))
    october, closing = lines(db, "2026-10")
    assert october == [("c-1", "earned_pending", 50)]
    assert closing[0]["earned_pending"] == 50
    november, closing = lines(db, "2026-11")
    assert november[0] == ("c-1", "earned_pending", 50)
    assert (closing[0]["earned_pending"], closing[0]["earned_payable"]) == (0, 100)
    [balance] = [r for r in json.loads(run("balances", "--db", db, "--format", "json")) if r["shop_id"] == "h-hats"]
    assert (balance["earned_pending"], balance["earned_payable"]) == (0, 100)


def test_each_click_earns_in_its_own_month_in_the_traffic_report(tmp_path):
    db = ledger(tmp_path, two_clicks_named_c1())
    for month in ("2026-10", "2026-11"):
        [pair] = json.loads(run("traffic", "--db", db, "--period", month, "--format", "json"))
        assert (pair["referrer_shop_id"], pair["commission_minor"]) == ("h-hats", 50), month


def test_a_settlement_run_would_move_each_click_once(tmp_path):
    db = ledger(tmp_path, two_clicks_named_c1())
    for month, amount, subjects in (("2026-10", 50, 1), ("2026-11", 100, 2)):
        preview = json.loads(run("settle", "--db", db, "--period", month, "--dry-run", "--format", "json"))
        [due] = preview["preview"]["becomes_payable"]
        assert (due["from"], due["to"], due["amount_minor"], due["subjects"]) == ("i-ink", "h-hats", amount, subjects)


def test_every_entry_has_an_id_of_its_own_and_a_replay_up_to_a_time_agrees(tmp_path):
    a = Alliance("harbor-fair")
    db = ledger(tmp_path, two_clicks_named_c1(a.settlement("2026-12-01T00:00", NOVEMBER_END, "2026-11")))
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT entry_id FROM entries GROUP BY 1 HAVING count(*) > 1").fetchall() == []
        assert con.execute("SELECT count(DISTINCT subject) FROM entries").fetchone()[0] == 2
    finally:
        con.close()
    run("replay", "--db", db, "--until", "2026-11-05T00:00:00Z")  # exits 0: what was folded by then agrees
    run("verify", "--db", db)


def test_members_at_a_time_count_what_events_by_then_caused_not_a_refused_copy_dated_earlier(tmp_path):
    # li-kids refers a ¥100.00 order (10 %); a copy of the refund rf, dated before T, is refused as a
    # conflicting duplicate, while the refund itself comes after T: at T, li-kids has earned ¥10.00
    a = Alliance("baby-care")
    db = ledger(tmp_path, [
        a.member("li-kids", at="2026-10-01T00:00"), a.member("wang-bath", at="2026-10-01T00:00"),
        a.agreement(at="2026-10-01T00:00", rate_bp=1000),
        a.click("2026-10-10T00:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-10-10T01:00", "wang-bath", "v1", "o1", [(1, 10000, "bath")]),
        a.refund("2026-11-10T00:00", "wang-bath", "o1", 10000, refund_id="r1", event_id="rf"),
        a.refund("2026-10-15T00:00", "wang-bath", "o1", 5000, refund_id="r1", event_id="rf")])
    members = json.loads(run("members", "--db", db, "--at", "2026-10-20T00:00:00.000Z", "--format", "json"))
    [li] = [m for m in members if m["shop_id"] == "li-kids"]
    assert (li["gmv_referred"], li["commission_earned"]) == (10000, 1000)


def test_stats_count_an_agreement_id_used_again_after_a_close_as_two_events(tmp_path):
    from tests.test_closing import agreement_story

    db = ledger(tmp_path, agreement_story())
    stats = json.loads(run("stats", "--db", db, "--format", "json"))
    assert stats["events"] == stats["events_read"] == len(agreement_story())


def test_a_what_if_version_replaces_only_the_agreement_event_it_names_not_an_older_one_of_the_same_id(tmp_path):
    # the default terms v1 (10 %, toys 30 %) price an October toy of ¥10.00 (¥3.00) and are closed; the id
    # ag comes back on v2 (20 %, toys 50 %). "What if v2 had been 40 % flat?" changes November's order
    # (toys ¥10.00 + care ¥10.00: ¥7.00 → ¥8.00) and leaves October's under v1 alone
    a = Alliance("harbor-fair")
    log = [a.member(s, at="2026-10-01T00:00") for s in ("h-hats", "i-ink")]
    log += [a.agreement(at="2026-10-01T00:00", rate_bp=1000, category_rates_bp={"toys": 3000}, event_id="ag"),
            a.click("2026-10-03T00:00", "h-hats", "i-ink", "v0"),
            a.order("2026-10-03T01:00", "i-ink", "v0", "O0", [(1, 1000, "toys")]),
            a.close("2026-10-16T00:00", "2026-10-15T00:00:00.000Z", "through-10-15"),
            a.agreement(at="2026-10-20T00:00", version=2, effective_from="2026-10-20T00:00", rate_bp=2000,
                        category_rates_bp={"toys": 5000}, event_id="ag"),
            a.click("2026-11-01T00:00", "h-hats", "i-ink", "v1"),
            a.order("2026-11-01T01:00", "i-ink", "v1", "O1", [(1, 1000, "toys"), (1, 1000, "care")])]
    db = ledger(tmp_path, log)
    what_if = tmp_path / "what-if.jsonl"
    write_event_file([a.agreement(at="2026-10-20T00:00", version=2, effective_from="2026-10-20T00:00",
                                  rate_bp=4000, event_id="what-if-1")], what_if)
    replayed = json.loads(run("replay", "--db", db, "--agreements", what_if, "--format", "json"))
    [h_hats] = [b for b in replayed["balances"] if b["shop_id"] == "h-hats"]
    assert h_hats["earned_pending"] == 300 + 800
