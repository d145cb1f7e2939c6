"""The dry run's SQL against the fold itself: on two months of a simulated alliance (cps, cpa and cpc
with their own holds, refunds, late clicks, suspensions), what `settle --dry-run` says a month's
settlement makes payable is, pair for pair, what the fold moves when that settlement is folded, and the
sheet it projects is the sheet that results."""

from __future__ import annotations

import json

import duckdb
import pytest
from click.testing import CliRunner

from refledger.cli import cli
from refledger.producers.operator import settlement_record
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.schemas.event_files import write_event_file
from refledger.schemas.periods import alliance_zone


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def moved_by(db, event_id) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            """SELECT counterparty_shop_id, shop_id, currency, sum(amount)::BIGINT, count(DISTINCT subject)
               FROM entries WHERE event_id = ? AND role = 'settle' AND account = 'earned_payable'
               GROUP BY ALL""", [event_id]).fetchall()
    finally:
        con.close()
    return {(payer, payee, currency): (amount, subjects) for payer, payee, currency, amount, subjects in rows}


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York"])
def test_the_dry_run_foretells_each_months_settlement(tmp_path, zone):
    traffic = tmp_path / "traffic.jsonl"
    write_event_file(simulate(SimulationConfig(seed=11, shops=6, visitors=300, days=70, settlements=False)),
                     traffic)
    db = tmp_path / "ledger.duckdb"
    run("ingest", traffic, "--db", db)
    for period in ("2026-11", "2026-12"):
        dry = json.loads(run("settle", "--period", period, "--dry-run", "--db", db, "--tz", zone, "--format", "json"))
        foretold = {(m["from"], m["to"], m["currency"]): (m["amount_minor"], m["subjects"])
                    for m in dry["preview"]["becomes_payable"]}
        assert foretold, "the month has something to settle"
        month_end = tmp_path / f"{period}.jsonl"
        write_event_file([settlement_record("sim", period, alliance_zone(zone))], month_end)
        run("ingest", month_end, "--db", db)
        assert moved_by(db, f"settlement-{period}") == foretold
        after = json.loads(run("sheet", "--db", db, "--period", period, "--tz", zone, "--format", "json"))
        assert after["transfers"] == dry["preview"]["sheet"]["transfers"]
        assert after["totals"] == dry["preview"]["sheet"]["totals"]
