"""The fold in a child process (`consumers.fold_worker`), as `consume` runs it.

The ledger must be the same entry for entry as with the fold in-process; a
failure in the child must surface in the parent with its traceback; a
child whose parent is gone must end by itself; and neither process waits on
the other while it has work: the next job is taken while one folds, and an
answer not yet read does not hold up the next fold.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import duckdb
import pytest

from refledger.consumers.batch import LogProcessor
from refledger.consumers.folding import FoldItem
from refledger.consumers.fold_worker import ChildProcessFolds, FoldWorkerError
from refledger.consumers.ingest import ingest_files
from refledger.ledger.fold import PartitionFold
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.schemas.event_files import write_event_file
from refledger.store.ledger_file import LedgerStore
from tests.ledger_support import SLOW_FOLD_SECONDS, ExplodingFold, SlowFold
from tests.scenario_files import SCENARIOS

ROOT = Path(__file__).resolve().parents[1]

ENTRY_COLUMNS = "topic, partition, seq, entry_id, txn_id, event_id, shop_id, account, amount, hash"


def ledger(path, files, *, fold_worker: bool, batch_size: int = 700):
    store = LedgerStore(path)
    processor = LogProcessor(store, PartitionFold, source="test", fold_worker=fold_worker)
    try:
        ingest_files(files, processor, batch_size=batch_size)
    finally:
        processor.close()
        store.close()
    con = duckdb.connect(str(path), read_only=True)
    try:
        return (con.execute(f"SELECT {ENTRY_COLUMNS} FROM entries ORDER BY topic, partition, seq").fetchall(),
                con.execute("""SELECT topic, partition, "offset", event_id, reason, stage FROM quarantine
                               ORDER BY ALL""").fetchall(),
                con.execute("SELECT topic, partition, event_id, entries, head FROM checkpoints ORDER BY ALL")
                .fetchall())
    finally:
        con.close()


def test_the_fold_process_writes_the_same_ledger_as_the_fold_in_process(tmp_path):
    events = tmp_path / "alliance.jsonl"
    write_event_file(simulate(SimulationConfig(seed=21, visitors=300, days=35)), events)
    files = [SCENARIOS / "night-market.jsonl", events]  # quarantines, payouts, a settlement
    in_process = ledger(tmp_path / "a.duckdb", files, fold_worker=False)
    in_child = ledger(tmp_path / "b.duckdb", files, fold_worker=True)
    entries, quarantine, checkpoints = in_child
    assert len(entries) > 1000 and quarantine and checkpoints
    assert in_child == in_process


def test_a_failure_in_the_fold_process_surfaces_with_its_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the fold process imports ExplodingFold as tests.ledger_support, from here
    store = LedgerStore(tmp_path / "ledger.duckdb")
    processor = LogProcessor(store, ExplodingFold, source="test", fold_worker=True)
    try:
        with pytest.raises(FoldWorkerError, match="ZeroDivisionError: a bug in the fold"):
            ingest_files([SCENARIOS / "baby-care.jsonl"], processor)
    finally:
        processor.close()
        store.close()
    con = duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM events").fetchone() == (0,), "the batch was not written"
    con.close()


def test_the_fold_process_ends_when_its_parent_goes_away():
    worker = ChildProcessFolds(PartitionFold)
    child = worker._process
    worker._jobs.close()  # what the parent's death does to the child's stdin
    deadline = time.monotonic() + 20
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() == 0
    worker._results.close()


def _jobs(records, first_offset=0):
    return [FoldItem("t", 0, first_offset + n, "", None, record, None) for n, record in enumerate(records)]


def warmed_up(worker) -> None:
    """One empty job there and back: the fold process has started and imported what it needs, so the
    timings below measure the hand-overs alone."""
    worker.result(worker.submit([]))


def _alliance_and_a_slow_view():
    records = list(simulate(SimulationConfig(seed=4, visitors=80, days=20)))
    view = next(r for r in records if r["type"] == "view")
    return records, dict(view, event_id="slow-view")


def test_the_next_job_is_taken_while_the_one_before_still_folds(monkeypatch):
    """`consume` hands the fold its next batch and goes on reading Kafka: the hand-over must not wait
    for the fold of the batch before, though the batch is far more than a pipe holds."""
    monkeypatch.chdir(ROOT)  # the fold process imports SlowFold as tests.ledger_support, from here
    records, slow = _alliance_and_a_slow_view()
    assert len(pickle.dumps(records)) > 1 << 17  # a pipe holds 64 KiB
    worker = ChildProcessFolds(SlowFold)
    try:
        worker.load("t", 0, [])
        warmed_up(worker)
        k = records.index(next(r for r in records if r["type"] == "view"))
        first = worker.submit(_jobs(records[:k] + [slow]))  # the log up to its first view, which is slow
        started = time.monotonic()
        second = worker.submit(_jobs(records[k + 1:], first_offset=k + 1))
        assert time.monotonic() - started < SLOW_FOLD_SECONDS / 2
        assert worker.result(first).rejections == [] and worker.result(second).entries_posted > 100
    finally:
        worker.close()


def test_an_answer_not_yet_read_does_not_hold_up_the_next_fold(monkeypatch):
    """While `consume`'s writer is busy with DuckDB, it reads no answer: the fold process must fold
    the next batch meanwhile, not wait for its answer to the one before to be taken."""
    monkeypatch.chdir(ROOT)
    records, slow = _alliance_and_a_slow_view()
    worker = ChildProcessFolds(SlowFold)
    try:
        worker.load("t", 0, [])
        warmed_up(worker)
        first = worker.submit(_jobs(records))
        second = worker.submit(_jobs([slow], first_offset=len(records)))
        time.sleep(SLOW_FOLD_SECONDS + 1.5)  # the writer busy elsewhere, reading nothing
        started = time.monotonic()
        answer = worker.result(first)
        worker.result(second)
        assert time.monotonic() - started < SLOW_FOLD_SECONDS / 2
        assert len(pickle.dumps(answer)) > 1 << 16, "an answer more than a pipe holds"
    finally:
        worker.close()


def test_each_stored_entry_holds_every_field_the_fold_posted(tmp_path):
    """The entries table, written from the fold process's columns, is the fold's entries field for field."""
    from refledger.ledger.entries import ENTRY_FIELDS

    records = list(simulate(SimulationConfig(seed=4, visitors=80, days=20)))
    events = tmp_path / "alliance.jsonl"
    write_event_file(records, events)
    store = LedgerStore(tmp_path / "l.duckdb")
    processor = LogProcessor(store, PartitionFold, source="test", fold_worker=True)
    try:
        ingest_files([events], processor, batch_size=500)
    finally:
        processor.close()
        store.close()
    fold = PartitionFold()
    posted = [entry.to_dict() for record in records for entry in fold.apply(record).entries]
    con = duckdb.connect(str(tmp_path / "l.duckdb"), read_only=True)
    try:
        names = ", ".join(f'"{n}"' for n in ENTRY_FIELDS)
        stored = [dict(zip(ENTRY_FIELDS, row)) for row in con.execute(f"SELECT {names} FROM entries ORDER BY seq").fetchall()]
    finally:
        con.close()
    assert len(posted) > 100
    assert stored == posted
