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
    done = subprocess.run([sys.executable, "-m", "refledger", "demo", "--db", str(db), "--days", "35",
                           "--visitors", "300"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "balances (minor units)" in done.stdout
    assert "Look closer: refledger explain" in done.stdout and "ORDER_ID" not in done.stdout

    con = duckdb.connect(str(db), read_only=True)
    [(read, stored, skipped)] = con.execute(
        "SELECT sum(events_read), sum(events_stored), sum(duplicates_skipped) FROM batches").fetchall()
    [(pre_fold,)] = con.execute("SELECT count(*) FROM quarantine WHERE stage = 'decode'").fetchall()
    con.close()
    published = int(done.stdout.split(" events as ")[1].split(" Kafka messages")[0].replace(",", ""))
    assert read == published == stored + skipped + pre_fold

    rows = json.loads(subprocess.run([sys.executable, "-m", "refledger", "balances", "--db", str(db),
                                      "--format", "json"], capture_output=True, text=True, check=True).stdout)
    assert any(r.get("earned_payable") for r in rows), "35 days include a month-end settlement"
