"""A consumer killed after it took snapshots restarts from the latest one and ends with the very
ledger an uninterrupted consumer writes (SPEC §12.3, §12.8), against a real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from refledger.producers.simulate import SimulationConfig, simulate
from refledger.store.queries import stats
from refledger.store.readside import ReadError, query
from tests.pipeline_support import publish

pytestmark = [pytest.mark.kafka]


def consume(bootstrap, topic, db, log, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "refledger", "consume", "--bootstrap-servers", bootstrap, "--db", str(db),
         "--topic", topic, "--group", f"{topic}-{db.stem}", "--until-idle", "5",
         "--batch-records", "5000", *extra],  # snapshots come at the end of a batch: a dozen batches
        stdout=log, stderr=log, cwd=os.getcwd())


def snapshots_taken(db) -> int:
    try:
        return query(db, stats, wait=1)["snapshots"]
    except ReadError:
        return -1


def ledger(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return (con.execute("SELECT * EXCLUDE (batch_id) FROM entries ORDER BY topic, partition, seq").fetchall(),
                con.execute('SELECT topic, partition, "offset", reason FROM quarantine ORDER BY ALL').fetchall())
    finally:
        con.close()


def test_a_consumer_killed_after_a_snapshot_restarts_from_it_and_loses_nothing(kafka_bootstrap, kafka_topic,
                                                                               tmp_path):
    history = list(simulate(SimulationConfig(seed=23, events=33_000)))
    publish(kafka_bootstrap, kafka_topic, history[:30_000])
    killed = tmp_path / "killed.duckdb"
    with open(tmp_path / "killed.log", "wb") as log:
        proc = consume(kafka_bootstrap, kafka_topic, killed, log, "--snapshot-every", "1000", "--instance-id", "k")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and snapshots_taken(killed) < 6:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert snapshots_taken(killed) >= 6
        # more events while it is down, so the restart has something to fold after its snapshots
        # even when the kill came late (a busy machine answers the stats slowly)
        publish(kafka_bootstrap, kafka_topic, history[30_000:])
        again = consume(kafka_bootstrap, kafka_topic, killed, log, "--snapshot-every", "1000", "--instance-id", "k")
        assert again.wait(timeout=300) == 0
    restart_log = (tmp_path / "killed.log").read_text(errors="replace")
    assert "from its snapshot after offset" in restart_log

    clean = tmp_path / "clean.duckdb"
    with open(tmp_path / "clean.log", "wb") as log:
        assert consume(kafka_bootstrap, kafka_topic, clean, log).wait(timeout=300) == 0
    killed_entries, killed_quarantine = ledger(killed)
    clean_entries, clean_quarantine = ledger(clean)
    assert len(clean_entries) > 1000
    assert killed_entries == clean_entries and killed_quarantine == clean_quarantine
