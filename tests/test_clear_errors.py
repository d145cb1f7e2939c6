"""What cannot be done is said in one clear line, exit status 1: never a traceback, never a page of
kafka-python's own log.

An operator who mistypes the broker's address, fills the disk or points
`--db` at some other database must learn what is wrong from the last line
on the terminal, at once, and find the ledger as consistent as before.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time

import duckdb
import pytest
from click.testing import CliRunner

from refledger import broker
from refledger.cli import cli, user_message
from refledger.producers.simulate import SimulationConfig, simulate
from tests.pipeline_support import publish
from tests.scenario_files import SCENARIOS

BABY_CARE = SCENARIOS / "baby-care.jsonl"


def refledger(*args, limit_file_bytes: int | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The command line as a user runs it: its own process, its real stderr."""

    def limit():
        if limit_file_bytes is not None:  # a full disk, as far as the ledger's files can tell
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    return subprocess.run([sys.executable, "-m", "refledger", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit)


def assert_one_clear_line(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "kafka." not in result.stderr, f"kafka-python's log reached the terminal:\n{result.stderr}"
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.stderr
    for word in words:
        assert word in last, (word, last)
    return last


def nothing_listens() -> str:
    return f"127.0.0.1:{broker.free_port()}"


def test_produce_to_an_address_where_nothing_listens_fails_at_once():
    address = nothing_listens()
    started = time.monotonic()
    result = refledger("produce", BABY_CARE, "--bootstrap-servers", address)
    assert time.monotonic() - started < 10
    assert_one_clear_line(result, address, "refledger broker start")


def test_consume_from_an_address_where_nothing_listens_fails_at_once(tmp_path):
    address = nothing_listens()
    started = time.monotonic()
    result = refledger("consume", "--bootstrap-servers", address, "--db", tmp_path / "l.duckdb",
                       "--until-idle", "1")
    assert time.monotonic() - started < 10
    assert_one_clear_line(result, address)


def test_any_kafka_error_at_the_boundary_becomes_one_line():
    from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError

    assert user_message(KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:9")) == \
        "Kafka: KafkaTimeoutError: Unable to bootstrap from 127.0.0.1:9"
    refused = user_message(TopicAuthorizationFailedError("shop-events"))
    assert refused.startswith("Kafka refused this client") and "shop-events" in refused


@pytest.mark.kafka
def test_consume_on_a_full_disk_says_so_in_one_line_and_the_ledger_stays_consistent(kafka_bootstrap, kafka_topic,
                                                                                     tmp_path):
    records = list(simulate(SimulationConfig(seed=5, events=30_000, bad_rate=0.0)))
    publish(kafka_bootstrap, kafka_topic, records)
    db = tmp_path / "full.duckdb"
    group = f"{kafka_topic}-full"
    consume = ("consume", "--bootstrap-servers", kafka_bootstrap, "--db", db, "--topic", kafka_topic,
               "--group", group, "--until-idle", "3", "--format", "json")

    full = refledger(*consume, limit_file_bytes=2 * 1024 * 1024)
    assert_one_clear_line(full, "cannot write to ledger", str(db.name))
    assert "rebalance" not in full.stderr

    verified = refledger("verify", "--db", db)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    finished = refledger(*consume)
    assert finished.returncode == 0, finished.stderr
    stats = json.loads(refledger("stats", "--db", db, "--format", "json").stdout)
    assert stats["events_read"] >= len(records)
    assert refledger("verify", "--db", db).returncode == 0


def _other_database(path, ddl: str) -> None:
    con = duckdb.connect(str(path))
    con.execute(ddl)
    con.close()


def _tables(path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return sorted(con.execute("SELECT table_name, column_count, estimated_size FROM duckdb_tables()").fetchall())
    finally:
        con.close()


@pytest.mark.parametrize("ddl", [
    "CREATE TABLE events (id INTEGER, name VARCHAR); INSERT INTO events VALUES (1, 'launch')",
    "CREATE TABLE sales (order_no INTEGER, total DECIMAL(12, 2)); INSERT INTO sales VALUES (7, 99.5)",
], ids=["a table named like ours", "tables of its own"])
def test_ingest_into_a_duckdb_file_that_is_not_a_ledger_says_so_and_leaves_it_alone(tmp_path, ddl):
    other = tmp_path / "warehouse.duckdb"
    _other_database(other, ddl)
    before = _tables(other)
    result = refledger("ingest", BABY_CARE, "--db", other)
    assert_one_clear_line(result, "warehouse.duckdb", "not a refledger ledger")
    assert _tables(other) == before


def test_a_new_file_and_an_existing_ledger_are_both_welcome(tmp_path):
    db = tmp_path / "ledger.duckdb"
    for _ in range(2):
        result = CliRunner().invoke(cli, ["ingest", str(BABY_CARE), "--db", str(db), "--format", "json"])
        assert result.exit_code == 0, result.output


@pytest.mark.kafka
def test_no_batch_is_written_after_one_that_could_not_be_written(kafka_bootstrap, kafka_topic, tmp_path):
    """The disk fills while a batch is written and the batches read after it wait in line: none of
    them is written, or the ledger would hold later events without that batch's (a gap in each
    log's chain). The consumer stops on the failure; a restart folds on from the last batch written."""
    from refledger.consumers.batch import LogProcessor
    from refledger.consumers.kafka_consumer import consume
    from refledger.consumers.verification import signed_fold
    from refledger.store.ledger_file import LedgerStore, StoreError

    class DiskFillsAtTheSecondBatch(LedgerStore):
        writes = 0

        def write_batch(self, batch):
            self.writes += 1
            if self.writes == 2:
                time.sleep(1.5)  # the poll loop queues the batches after it meanwhile
                raise StoreError(f"cannot write to ledger {self.path}: No space left on device")
            return super().write_batch(batch)

    records = list(simulate(SimulationConfig(seed=5, events=30_000, bad_rate=0.0)))
    publish(kafka_bootstrap, kafka_topic, records)
    db = tmp_path / "ledger.duckdb"
    store = DiskFillsAtTheSecondBatch(db)

    class CountingProcessor(LogProcessor):
        batches = 0

        def process(self, messages, **kwargs):
            self.batches += 1
            return super().process(messages, **kwargs)

    processor = CountingProcessor(store, signed_fold, source=f"kafka:{kafka_topic}", fold_worker=True)
    try:
        with pytest.raises(StoreError, match="No space left"):
            consume(kafka_bootstrap, processor, topic=kafka_topic, group=f"{kafka_topic}-g", until_idle=3,
                    handle_signals=False, max_records=5000)
        assert processor.batches >= 3  # batches were read and waiting behind the failed one
        assert store.writes == 2
    finally:
        processor.close()
        store.close()
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM batches").fetchone() == (1,)
    finally:
        con.close()
    assert refledger("verify", "--db", db).returncode == 0
    finished = refledger("consume", "--bootstrap-servers", kafka_bootstrap, "--db", db, "--topic", kafka_topic,
                         "--group", f"{kafka_topic}-g", "--until-idle", "3", "--format", "json")
    assert finished.returncode == 0, finished.stderr
    assert json.loads(refledger("stats", "--db", db, "--format", "json").stdout)["events_read"] >= len(records)
    assert refledger("verify", "--db", db).returncode == 0
