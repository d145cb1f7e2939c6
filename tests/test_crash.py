"""SPEC §12.3: killing the consumer at any moment loses and duplicates nothing; nor does losing the
broker in the middle of a consume.

Kill -9 at scale: a real `refledger consume` process folds a simulated
alliance from a real broker and is killed with SIGKILL at random points
(some while it starts: rebuilding its folds, joining the group, on its
first batch; most after a random number of events, anywhere inside a
batch), restarted each time, and finally left to finish. `RUNS` alliances
of `KILLS` kills each: at least 50 kill points in every CI run.

Broker outage: the consumer's broker is stopped and started again while the
consumer folds; the consumer carries on by itself.

Each time the ledger must hold exactly the topic's events, each once, in
per-partition order, and be the very ledger an uninterrupted consume gives:
the same balances, the same entries (every column but the batch id), the
same chain heads.
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

from refledger import broker
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.schemas import codec
from refledger.store.queries import balances, stats
from refledger.store.readside import ReadError, query
from tests.kafka_env import fresh_topic
from tests.pipeline_support import publish, read_topic, stored_log

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

RUNS = 5
KILLS = 10  # per run: RUNS * KILLS = 50 kill -9 points
EVENTS = 60_000  # per run; each restart folds up to STEP further, then some (the kill's own latency)
OUTAGE_EVENTS = 120_000
EARLY_KILLS = 0.3  # the share of kills at a random moment of the start instead of after some events
STEP = 1_500  # each restart is killed once it has folded up to this many messages further on


def consume_command(bootstrap, topic, db, group, *extra):
    return [sys.executable, "-m", "refledger", "consume", "--bootstrap-servers", bootstrap, "--db", str(db),
            "--topic", topic, "--group", group, "--format", "json", *extra]


def start_consumer(bootstrap, topic, db, log, *extra):
    # a commit every 1,000 records: sixty batches in the 60,000 events, so kills fall inside batches,
    # between them, and within a STEP of a restart alike, however fast the machine folds (with batches
    # of 2,500 over 30,000 events, a fast machine folded 5,000 to 7,500 events past each kill point's
    # target before the kill landed, and half the kills came after the end of the log)
    return subprocess.Popen(consume_command(bootstrap, topic, db, f"{topic}-ledger", "--instance-id", "crash-test",
                                            "--batch-records", "1000", *extra), stdout=log, stderr=log)


def ledger_stats(db) -> dict | None:
    try:
        return query(db, stats, wait=1)
    except ReadError:
        return None


def messages_folded(db) -> int:
    """How far the ledger has folded the topic: its stored positions, summed over partitions."""
    found = ledger_stats(db) if db.exists() else None
    return sum(found["positions"].values()) if found else -1


def stored_events(db) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        (count,) = con.execute("SELECT count(*) FROM events").fetchone()
        return count
    finally:
        con.close()


def alliance_on_kafka(bootstrap, topic, seed, events):
    publish(bootstrap, topic, simulate(SimulationConfig(seed=seed, events=events, bad_rate=0.0)))
    on_kafka = read_topic(bootstrap, topic)
    return on_kafka, sum(len(v) for v in on_kafka.values())


@pytest.mark.parametrize("run", range(RUNS))
def test_sigkill_at_random_points_loses_and_duplicates_nothing(kafka_bootstrap, kafka_topic, tmp_path, run):
    on_kafka, total = alliance_on_kafka(kafka_bootstrap, kafka_topic, seed=11 + run, events=EVENTS)
    assert total >= EVENTS

    db = tmp_path / "ledger.duckdb"
    rng = random.Random(20261122 + run)
    # kill points spread over the log: each restart is killed once the ledger has folded up to a
    # random position a little further on (or at a random moment of its start)
    kill_points = []
    with open(tmp_path / "consumer.log", "wb") as log:
        for _ in range(KILLS):
            target = max(messages_folded(db), 0) + rng.randint(1, STEP)
            proc = start_consumer(kafka_bootstrap, kafka_topic, db, log, "--until-idle", "6")
            if rng.random() < EARLY_KILLS:
                time.sleep(rng.uniform(0, 1.5))
            else:
                # watched closely: the consumer folds tens of thousands of events a second
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and proc.poll() is None and messages_folded(db) < target:
                    time.sleep(rng.uniform(0.005, 0.05))
                time.sleep(rng.uniform(0, 0.1))  # land anywhere inside a batch, too
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kill_points.append(stored_events(db) if db.exists() else 0)
        if messages_folded(db) < total:  # else the last one folded the end of the log before its kill
            finish(start_consumer(kafka_bootstrap, kafka_topic, db, log), db, total)

    assert len(kill_points) == KILLS
    assert sum(1 for k in kill_points if 0 < k < total) >= KILLS // 2, kill_points
    assert_exactly_the_topic(db, kafka_topic, on_kafka)
    assert_same_as_uninterrupted(db, kafka_bootstrap, kafka_topic, tmp_path)


def test_a_broker_stopped_and_started_mid_consume_loses_and_duplicates_nothing(tmp_path):
    """The operator restarts the broker (`refledger broker stop`, `start`) while the ledger folds."""
    directory, port = tmp_path / "broker", broker.free_port()
    bootstrap = broker.start(port, directory, exit_with_parent=True).bootstrap
    try:
        topic = fresh_topic(bootstrap, "outage")
        on_kafka, total = alliance_on_kafka(bootstrap, topic, seed=29, events=OUTAGE_EVENTS)
        db = tmp_path / "ledger.duckdb"
        rng = random.Random(2026)
        with open(tmp_path / "consumer.log", "wb") as log:
            proc = start_consumer(bootstrap, topic, db, log)
            try:
                wait_for(lambda: messages_folded(db) >= total // 10, proc, "the consumer to fold a tenth")
                broker.stop(directory, port)
                folded_when_stopped = messages_folded(db)
                assert 0 < folded_when_stopped < total, "the broker went away in the middle of the consume"
                time.sleep(rng.uniform(1, 3))
                broker.start(port, directory, exit_with_parent=True)
            finally:
                finish(proc, db, total)
        assert_exactly_the_topic(db, topic, on_kafka)
        assert_same_as_uninterrupted(db, bootstrap, topic, tmp_path)
    finally:
        broker.stop(directory, port)


def finish(proc, db, total: int) -> None:
    """Let the consumer fold every message of the topic, then stop it as an operator does (SIGTERM:
    it finishes its batch, commits and exits 0)."""
    try:
        wait_for(lambda: messages_folded(db) >= total, proc, "the consumer to fold every message")
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=120)
    assert status == 0
    assert messages_folded(db) == total


def wait_for(condition, proc, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the consumer exited (status {proc.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def assert_exactly_the_topic(db, topic, on_kafka) -> None:
    """Every message of the topic stored once, in its partition's order; nothing undecodable."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        expected = {p: [(off, codec.decode(value)["event_id"]) for off, value in msgs] for p, msgs in on_kafka.items()}
        assert stored_log(con, topic) == expected
        (quarantined,) = con.execute("SELECT count(*) FROM quarantine WHERE stage = 'decode'").fetchone()
        assert quarantined == 0
    finally:
        con.close()


def assert_same_as_uninterrupted(db, bootstrap, topic, tmp_path) -> None:
    """The same topic consumed without interruption gives the very same ledger."""
    clean = tmp_path / "uninterrupted.duckdb"
    with open(tmp_path / "clean.log", "wb") as log:
        proc = subprocess.Popen(consume_command(bootstrap, topic, clean, f"{topic}-clean"), stdout=log, stderr=log)
        finish(proc, clean, messages_folded(db))
    interrupted_entries, interrupted_heads = ledger_rows(db)
    clean_entries, clean_heads = ledger_rows(clean)
    assert len(clean_entries) > 1000
    assert query(db, balances) == query(clean, balances)
    assert interrupted_heads == clean_heads
    assert interrupted_entries == clean_entries


def ledger_rows(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        entries = con.execute("SELECT * EXCLUDE (batch_id) FROM entries ORDER BY topic, partition, seq").fetchall()
        heads = dict(con.execute("SELECT partition, arg_max(hash, seq) FROM entries GROUP BY partition").fetchall())
    finally:
        con.close()
    return entries, heads
