"""SPEC §12.3: killing the consumer at any moment loses and duplicates nothing.

A real `refledger consume` process is killed with SIGKILL at random points
while it folds a simulated alliance of 100k+ events from a real broker,
restarted each time, and finally left to finish. The ledger must then hold
exactly the topic's events, each once, in per-partition order.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from refledger.producers.simulate import SimulationConfig, simulate
from refledger.store.queries import stats
from refledger.store.readside import ReadError, query
from refledger.schemas import codec
from tests.pipeline_support import publish, read_topic, stored_log

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KILLS = 10


def start_consumer(bootstrap, topic, db, log):
    return subprocess.Popen(
        [sys.executable, "-m", "refledger", "consume", "--bootstrap-servers", bootstrap, "--db", str(db),
         "--topic", topic, "--group", f"{topic}-crash", "--instance-id", "crash-test", "--until-idle", "6",
         "--format", "json"],
        stdout=log, stderr=log, cwd=os.getcwd())


def events_read(db) -> int:
    try:
        return query(db, stats)["events_read"]
    except ReadError:
        return -1


def test_sigkill_at_random_points_loses_and_duplicates_nothing(kafka_bootstrap, kafka_topic, tmp_path):
    records = list(simulate(SimulationConfig(seed=11, events=100_000, bad_rate=0.0)))
    publish(kafka_bootstrap, kafka_topic, records)
    on_kafka = read_topic(kafka_bootstrap, kafka_topic)
    total = sum(len(v) for v in on_kafka.values())
    assert total >= 100_000

    db = tmp_path / "ledger.duckdb"
    rng = random.Random(20261122)
    kill_points = []
    with open(tmp_path / "consumer.log", "wb") as log:
        for _ in range(KILLS):
            proc = start_consumer(kafka_bootstrap, kafka_topic, db, log)
            before = max(events_read(db), 0) if db.exists() else 0
            # small steps, watched closely: the consumer reads tens of thousands of events a second
            target = before + rng.randint(1, total // (3 * KILLS))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if events_read(db) >= target:
                    break
                time.sleep(rng.uniform(0.005, 0.05))
            time.sleep(rng.uniform(0, 0.1))  # land anywhere inside a batch, too
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            con = duckdb.connect(str(db), read_only=True)
            (stored,) = con.execute("SELECT count(*) FROM events").fetchone()
            con.close()
            kill_points.append(stored)
        final = start_consumer(kafka_bootstrap, kafka_topic, db, log)
        assert final.wait(timeout=600) == 0

    assert sum(1 for k in kill_points if 0 < k < total) >= KILLS // 2, kill_points
    con = duckdb.connect(str(db), read_only=True)
    stored = stored_log(con, kafka_topic)
    expected = {p: [(off, codec.decode(value)["event_id"]) for off, value in msgs]
                for p, msgs in on_kafka.items()}
    assert stored == expected
    (quarantined,) = con.execute("SELECT count(*) FROM quarantine WHERE stage = 'decode'").fetchone()
    assert quarantined == 0
    con.close()

    # the same topic consumed without interruption gives the very same ledger
    clean = tmp_path / "uninterrupted.duckdb"
    with open(tmp_path / "clean.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "refledger", "consume", "--bootstrap-servers", kafka_bootstrap, "--db",
             str(clean), "--topic", kafka_topic, "--group", f"{kafka_topic}-clean", "--until-idle", "4"],
            stdout=log, stderr=log)
        assert proc.wait(timeout=600) == 0
    crashed_entries, crashed_heads = ledger_rows(db)
    clean_entries, clean_heads = ledger_rows(clean)
    assert len(crashed_entries) > 1000
    assert crashed_heads == clean_heads
    assert crashed_entries == clean_entries


def ledger_rows(db):
    con = duckdb.connect(str(db), read_only=True)
    entries = con.execute(
        "SELECT * EXCLUDE (batch_id) FROM entries ORDER BY topic, partition, seq").fetchall()
    heads = dict(con.execute(
        "SELECT partition, arg_max(hash, seq) FROM entries GROUP BY partition").fetchall())
    con.close()
    return entries, heads
