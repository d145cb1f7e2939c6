"""The README's first command: `refledger demo` runs the whole job against a real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pytest

pytestmark = pytest.mark.kafka


def test_demo_publishes_consumes_and_shows_balances(kafka_bootstrap, tmp_path):
    db = tmp_path / "demo.duckdb"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "refledger", "demo", "--db", str(db), "--visitors", "300"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "各店余额" in done.stdout and "结算单 · 当前账面" in done.stdout
    assert " 付给 " in done.stdout and "¥" in done.stdout
    assert "Look closer: refledger explain" in done.stdout and "ORDER_ID" not in done.stdout

    con = duckdb.connect(str(db), read_only=True)
    # two months end in the demo: November and December are settled, November closed with December's settlement
    month_end = con.execute("""SELECT DISTINCT event_id FROM events WHERE type IN ('settlement', 'close')
                               ORDER BY event_id""").fetchall()
    assert month_end == [("close-through-2026-11",), ("settlement-2026-11",), ("settlement-2026-12",)]
    [(read, stored, skipped)] = con.execute(
        "SELECT sum(events_read), sum(events_stored), sum(duplicates_skipped) FROM batches").fetchall()
    [(pre_fold,)] = con.execute("SELECT count(*) FROM quarantine WHERE stage = 'decode'").fetchall()
    con.close()
    published = int(done.stdout.split(" events as ")[1].split(" Kafka messages")[0].replace(",", ""))
    assert read == published == stored + skipped + pre_fold

    rows = json.loads(subprocess.run([sys.executable, "-m", "refledger", "balances", "--db", str(db),
                                      "--format", "json"], capture_output=True, text=True, check=True).stdout)
    assert any(r.get("earned_payable") for r in rows), "the demo's months end with settlements"
