"""What only a shared ledger on DuckLake promises: claims that fence off a writer that lost its logs,
compaction beside the writers, and a local catalog an operator can start, stop and ask."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from refledger import broker
from refledger.cli import cli
from refledger.consumers.batch import LogProcessor
from refledger.ledger.fold import PartitionFold
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.schemas.event_files import write_event_file
from refledger.schemas.messages import Message, JSON
from refledger.store import lake as lake_module
from refledger.store import queries
from refledger.store.lake import FencedOut, LakeStore
from refledger.store.lake_files import compact
from refledger.store.ledger_file import StoreError
from refledger.store.readside import query
from tests.catalog_env import ensure_postgresql

TOPIC = "alliance"


@pytest.fixture(scope="module")
def events():
    """A month of a small alliance, as JSON lines."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "alliance.jsonl"
        write_event_file(simulate(SimulationConfig(seed=9, shops=8, visitors=100, days=40)), path)
        return path.read_text().splitlines()


def messages(lines, partition: int, start: int, count: int) -> list[Message]:
    return [Message(TOPIC, partition, offset, lines[offset].encode(), JSON, None)
            for offset in range(start, min(start + count, len(lines)))]


def writer(lake) -> tuple[LakeStore, LogProcessor]:
    store = LakeStore(lake)
    return store, LogProcessor(store, PartitionFold, source="kafka:alliance")


def test_a_writer_whose_partition_was_claimed_by_another_writes_nothing_more(lake, events):
    a_store, a = writer(lake)
    b_store, b = writer(lake)
    try:
        a.assign([(TOPIC, 0)])
        a.commit(a.process(messages(events, 0, 0, 500)))
        b.assign([(TOPIC, 0)])                       # li-kids' partition moves to the other consumer
        assert b.position(TOPIC, 0) == 500           # which reads on where the first one stopped
        with pytest.raises(FencedOut) as refused:
            a.commit(a.process(messages(events, 0, 500, 500)))
        assert refused.value.logs == ((TOPIC, 0),)
        assert "another consumer has claimed alliance:0" in str(refused.value)
        b.commit(b.process(messages(events, 0, 500, 500)))
        assert query(lake, queries.stats)["positions"] == {"alliance:0": 1000}
        assert query(lake, queries.stats)["events_read"] == 1000
    finally:
        for processor, store in ((a, a_store), (b, b_store)):
            processor.close()
            store.close()


def test_a_batch_begun_before_another_writer_claimed_its_partition_is_not_committed(lake, events, monkeypatch):
    """The race: the first writer has checked that it owns the partition and is writing its batch
    when the second one claims it. The first one's commit conflicts and is refused."""
    a_store, a = writer(lake)
    b_store, b = writer(lake)
    checked, claimed = threading.Event(), threading.Event()
    real_insert = lake_module.insert_batch

    def slow_insert(cur, batch, batch_id, **how):
        real_insert(cur, batch, batch_id, **how)
        if threading.current_thread().name == "first-writer":
            checked.set()
            assert claimed.wait(60)

    monkeypatch.setattr(lake_module, "insert_batch", slow_insert)
    outcome = {}
    try:
        a.assign([(TOPIC, 1)])
        pending = a.process(messages(events, 1, 0, 400))

        def first():
            try:
                outcome["batch"] = a.commit(pending)
            except FencedOut as exc:
                outcome["refused"] = exc

        thread = threading.Thread(target=first, name="first-writer")
        thread.start()
        assert checked.wait(60)
        b.assign([(TOPIC, 1)])
        claimed.set()
        thread.join(60)
        assert "refused" in outcome, outcome
        assert query(lake, queries.stats)["events_read"] == 0
        assert b.position(TOPIC, 1) is None
    finally:
        claimed.set()
        for processor, store in ((a, a_store), (b, b_store)):
            processor.close()
            store.close()


def test_writers_of_different_partitions_do_not_refuse_each_other(lake, events):
    a_store, a = writer(lake)
    b_store, b = writer(lake)
    try:
        a.assign([(TOPIC, 0)])
        b.assign([(TOPIC, 1)])
        for start in range(0, 1500, 500):
            a.commit(a.process(messages(events, 0, start, 500)))
            b.commit(b.process(messages(events, 1, start, 500)))
        stats = query(lake, queries.stats)
        assert stats["positions"] == {"alliance:0": 1500, "alliance:1": 1500}
        batch_ids = [row[0] for row in a_store.cursor().execute(
            "SELECT batch_id FROM positions WHERE partition = 0 ORDER BY rowid").fetchall()]
        assert batch_ids == sorted(batch_ids) and len(set(batch_ids)) == 3
    finally:
        for processor, store in ((a, a_store), (b, b_store)):
            processor.close()
            store.close()


def test_compaction_merges_files_while_a_writer_goes_on(lake, events):
    store, processor = writer(lake)
    try:
        processor.assign([(TOPIC, 2)])
        for start in range(0, 2000, 200):
            processor.commit(processor.process(messages(events, 2, start, 200)))
        before = query(lake, queries.stats)
        done = {}
        thread = threading.Thread(target=lambda: done.update(result=compact(lake, keep_s=0)))
        thread.start()
        for start in range(2000, 3000, 200):   # the writer is not held up, nor refused
            processor.commit(processor.process(messages(events, 2, start, 200)))
        thread.join(120)
        assert done["result"].files_after < done["result"].files_before
        for start in range(3000, 4000, 200):
            processor.commit(processor.process(messages(events, 2, start, 200)))
        after_writes = query(lake, queries.stats)
        compact(lake, keep_s=0)
        after = query(lake, queries.stats)
        assert after["data_files"] < after_writes["data_files"]
        assert {k: v for k, v in after.items() if k != "data_files"} == \
            {k: v for k, v in after_writes.items() if k != "data_files"}
        assert after["events_read"] == 4000 and before["events_read"] == 2000
        assert query(lake, queries.balances) == query(lake, queries.balances)
        result = CliRunner().invoke(cli, ["verify", "--db", str(lake)])
        assert result.exit_code == 0, result.output
    finally:
        processor.close()
        store.close()


def test_a_new_lake_needs_a_data_path(lake):
    from refledger.store.lake import LakeLedger

    with pytest.raises(StoreError, match="--data-path"):
        LakeStore(LakeLedger(lake.catalog, None))


def test_the_catalog_starts_stops_and_names_the_ledger_to_use(tmp_path, events):
    ensure_postgresql()
    runner = CliRunner()
    directory, port = tmp_path / "catalog", broker.free_port()

    def run(*args, expect=0):
        result = runner.invoke(cli, ["catalog", *args, "--dir", str(directory)])
        assert result.exit_code == expect, result.output
        return result.output

    run("start", "--port", str(port))
    try:
        run("start")                              # already running: not an error
        shown = json.loads(run("status", "--format", "json"))
        assert shown == {"db": f"ducklake:postgres:host=127.0.0.1 port={port} dbname=refledger user=refledger",
                         "data_path": str(directory.resolve() / "lake")}
        file = tmp_path / "events.jsonl"
        file.write_text("\n".join(events[:300]) + "\n")
        ingested = runner.invoke(cli, ["ingest", str(file), "--db", shown["db"], "--data-path", shown["data_path"]])
        assert ingested.exit_code == 0, ingested.output
        assert any((directory / "lake").rglob("*.parquet"))
        stats = runner.invoke(cli, ["stats", "--db", shown["db"], "--format", "json"])
        assert json.loads(stats.output)["events_read"] == 300
    finally:
        run("stop")
    assert "stopped" in run("status", expect=1)
    run("stop")                                   # already stopped: not an error
    unreachable = runner.invoke(cli, ["balances", "--db", shown["db"]])
    assert unreachable.exit_code == 1 and "cannot open ledger" in unreachable.output
