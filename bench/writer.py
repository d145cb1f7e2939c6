"""The ledger writer's CPU: DuckDB's own choice of compression against the one the ledger names.

    python bench/writer.py                  # 300,000 simulated events, three rounds
    python bench/writer.py --events 1000000 --rounds 5

A simulated alliance is ingested once, into a ledger of its own. Its batches
(the events, entries and decisions each one wrote) are then written again,
four of them at a time (20,000 events, as `consume` commits them), through `LedgerStore.write_batch` as `consume`'s writer thread
writes them, into two new files: one whose tables name each text column's
compression (`store.ledger_file.SCHEMA_DDL`, `LEDGER_DDL`), and one whose
tables leave the choice to DuckDB (the same statements with the clauses taken
out). The two alternate, round after round, each first in turn, on the same thread; the bench
reports the median CPU seconds per event of each (user and system time of the
writing thread: DuckDB writes on the calling thread) and the files' sizes.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import duckdb
import pyarrow.compute as pc

from refledger.consumers.batch import LogProcessor
from refledger.consumers.ingest import ingest_files
from refledger.ledger.fold import PartitionFold
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.schemas.event_files import write_event_file
from refledger.store import ledger_file
from refledger.store.ledger_file import BatchWrite, LedgerStore

TABLES = ("events", "entries", "decisions")
INGEST_BATCHES_PER_WRITE = 4  # `ingest` commits 5,000 events a batch, `consume` 20,000


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def batches(source: Path) -> list[BatchWrite]:
    """The batches the ingested ledger wrote, each as a `BatchWrite` of its events, entries and decisions."""
    con = duckdb.connect(str(source), read_only=True)
    try:
        tables = {t: _table(con.execute(f"SELECT * EXCLUDE (batch_id), batch_id FROM {t} ORDER BY batch_id").arrow())
                  for t in TABLES}
        [(last,)] = con.execute("SELECT max(batch_id) FROM batches").fetchall()
    finally:
        con.close()
    out = []
    read = 0
    for first in range(1, last + 1, INGEST_BATCHES_PER_WRITE):
        write = BatchWrite(source="bench")
        for name, table in tables.items():
            ids = table["batch_id"]
            rows = table.filter(pc.and_(pc.greater_equal(ids, first), pc.less(ids, first + INGEST_BATCHES_PER_WRITE)))
            rows = rows.drop_columns(["batch_id"])
            if name == "events":
                write.events_table = rows
            elif rows.num_rows:
                write.extra_tables[name] = rows
        read += write.events_stored
        write.positions = {("bench", 0): read}
        out.append(write)
    return out


def _table(result):
    """A query's Arrow result as a table (DuckDB 1.5 hands a reader, read while the connection is open)."""
    return result.read_all() if hasattr(result, "read_all") else result


def thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def write_all(path: Path, writes: list[BatchWrite], named: bool) -> tuple[float, int]:
    """CPU seconds to write every batch into a new ledger (with the compression clauses, or DuckDB's
    own choice), and the file's size."""
    kept = ledger_file.SCHEMA_DDL, ledger_file.LEDGER_DDL
    if not named:
        ledger_file.SCHEMA_DDL, ledger_file.LEDGER_DDL = (re.sub(r" USING COMPRESSION \w+", "", ddl) for ddl in kept)
    try:
        store = LedgerStore(path)
    finally:
        ledger_file.SCHEMA_DDL, ledger_file.LEDGER_DDL = kept
    started = thread_cpu()
    for write in writes:
        store.write_batch(write)
    store.close()
    seconds = thread_cpu() - started
    size = path.stat().st_size
    path.unlink()
    return seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "alliance.jsonl"
        say(f"simulating {args.events:,} events and ingesting them")
        write_event_file(simulate(SimulationConfig(seed=31, events=args.events, visitors=4000)), source)
        store = LedgerStore(work / "source.duckdb")
        try:
            ingest_files([source], LogProcessor(store, PartitionFold, source="bench"))
        finally:
            store.close()
        writes = batches(work / "source.duckdb")
        events = sum(w.events_stored for w in writes)
        cpu: dict[str, list[float]] = {"named": [], "duckdb_choice": []}
        sizes: dict[str, int] = {}
        for round_ in range(args.rounds):
            for name in (list(cpu) if round_ % 2 == 0 else list(cpu)[::-1]):  # each goes first in turn
                seconds, sizes[name] = write_all(work / f"{name}.duckdb", writes, name == "named")
                cpu[name].append(seconds)
            say(f"round {round_ + 1}: " + ", ".join(f"{n} {v[-1]:.2f} s" for n, v in cpu.items()))
    result = {"events": events, "batches": len(writes)}
    for name, runs in cpu.items():
        result[f"{name}_cpu_us_per_event"] = round(statistics.median(runs) / events * 1e6, 2)
        result[f"{name}_file_mb"] = round(sizes[name] / 1e6, 1)
    result["ratio_named_over_duckdb_choice_cpu"] = round(
        result["named_cpu_us_per_event"] / result["duckdb_choice_cpu_us_per_event"], 3)
    for key, value in result.items():
        print(f"{key:>36}  {value:,}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
