"""docs/audit.md's script, run exactly as written, agrees with refledger on chains and balances."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
from click.testing import CliRunner

from refledger.producers.simulate import SimulationConfig, simulate
from refledger.cli import cli
from refledger.schemas.event_files import write_event_file
from tests.scenario_files import SCENARIOS

DOC = Path(__file__).resolve().parents[1] / "docs" / "audit.md"


def the_script() -> str:
    text = DOC.read_text(encoding="utf-8")
    after = text.split("<!-- auditor-script -->", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def audit(script: Path, db: Path, shop: str):
    return subprocess.run([sys.executable, str(script), str(db), shop], capture_output=True, text=True)


def check_ledger(db: Path, tmp_path: Path) -> None:
    script = tmp_path / "audit.py"
    script.write_text(the_script())
    assert "refledger" not in the_script() and "from ledger" not in the_script()
    con = duckdb.connect(str(db), read_only=True)
    heads = {f"{t}:{p}": h for t, p, h in con.execute(
        "SELECT topic, partition, arg_max(hash, seq) FROM entries GROUP BY ALL").fetchall()}
    con.close()
    balances = json.loads(run("balances", "--db", db, "--format", "json"))
    for shop in sorted({r["shop_id"] for r in balances}):
        done = audit(script, db, shop)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["heads"] == heads
        for row in (r for r in balances if r["shop_id"] == shop):
            theirs = report["balances"].get(row["currency"], {})
            for account, value in row.items():
                if account not in ("shop_id", "currency"):
                    assert theirs.get(account, 0) == value, (shop, row["currency"], account)


def test_the_script_on_the_worked_example(tmp_path):
    db = tmp_path / "baby.duckdb"
    run("ingest", SCENARIOS / "baby-care.jsonl", "--db", db)
    check_ledger(db, tmp_path)


def test_the_script_on_a_simulated_alliance_and_a_tampered_copy(tmp_path):
    events = tmp_path / "alliance.jsonl"
    write_event_file(simulate(SimulationConfig(seed=12, visitors=200, days=35)), events)
    db = tmp_path / "sim.duckdb"
    run("ingest", events, "--db", db)
    check_ledger(db, tmp_path)

    con = duckdb.connect(str(db))
    [(entry_id,)] = con.execute("SELECT entry_id FROM entries ORDER BY seq LIMIT 1 OFFSET 10").fetchall()
    con.execute("UPDATE entries SET amount = amount - 1 WHERE entry_id = ?", [entry_id])
    con.close()
    done = audit(tmp_path / "audit.py", db, "li-kids")
    assert done.returncode == 1 and entry_id in done.stdout
