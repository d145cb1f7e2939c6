"""How fast the ledger answers as it grows: balances, stats and explain on 10 million entries.

    python bench/reads.py                    # builds (or reuses) the big ledger under /tmp, then times
    python bench/reads.py --entries 2000000  # a smaller one

A simulated alliance is ingested once; its logs are then copied, each copy under
a topic of its own (`ingest-2`, `ingest-3`, …) and with order ids of its own
(an order lives in one log, as it does under Kafka), until the ledger holds the
entries asked for, with the events, decisions, quarantine rows, per-batch
balance moves and counters that go with them, so every table is as large as a
real ledger of that many entries. Each query then runs in this process on a
read-only connection, as the command line runs it (five times; the median
is reported, in milliseconds). Target (issue 14): each under 50 ms on 10M entries.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from refledger.consumers.batch import LogProcessor
from refledger.consumers.ingest import ingest_files
from refledger.ledger.fold import PartitionFold
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.schemas.event_files import write_event_file
from refledger.store import queries
from refledger.store.ledger_file import BALANCE_ROLLUP, LedgerStore

COPIED = ("events", "entries", "decisions", "quarantine", "balance_moves", "alliance_events", "order_events",
          "positions", "checkpoints", "fold_state")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build(path: Path, entries: int, events: int) -> None:
    source = path.with_suffix(".jsonl")
    say(f"simulating {events:,} events")
    write_event_file(simulate(SimulationConfig(seed=31, events=events, visitors=4000)), source)
    store = LedgerStore(path)
    try:
        say("ingesting them")
        ingest_files([source], LogProcessor(store, PartitionFold, source="bench"))
    finally:
        store.close()
    con = duckdb.connect(str(path))
    try:
        [(base,)] = con.execute("SELECT count(*) FROM entries").fetchall()
        copies = -(-entries // base)
        say(f"{base:,} entries; copying the logs {copies - 1} times")
        [(batch,)] = con.execute("SELECT max(batch_id) FROM batches").fetchall()
        columns = {table: {name for (name,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()}
            for table in COPIED}
        for k in range(2, copies + 1):
            for table in COPIED:
                renamed = "".join(f", {column} || '-{k}' AS {column}" for column in ("order_id", "subject")
                                  if column in columns[table])
                con.execute(f"""INSERT INTO {table} SELECT * REPLACE (topic || '-{k}' AS topic,
                                batch_id + {batch * (k - 1)} AS batch_id{renamed}) FROM {table}
                                WHERE batch_id <= {batch} AND topic NOT LIKE '%-%'"""
                            if table != "balance_moves" else
                            f"""INSERT INTO balance_moves SELECT * REPLACE (batch_id + {batch * (k - 1)} AS batch_id)
                                FROM balance_moves WHERE batch_id <= {batch}""")
            con.execute(f"""INSERT INTO batches SELECT * REPLACE (batch_id + {batch * (k - 1)} AS batch_id)
                            FROM batches WHERE batch_id <= {batch}""")
        # the writer sums the moves every BALANCE_ROLLUP batches; leave the most a reader ever adds after them
        [(last,)] = con.execute("SELECT max(batch_id) FROM batches").fetchall()
        rolled = last - BALANCE_ROLLUP + 1
        con.execute(f"""INSERT INTO balance_totals SELECT shop_id, currency, account, sum(amount), {rolled}
                        FROM balance_moves WHERE batch_id <= {rolled} GROUP BY ALL""")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def timed(fn, *args, runs: int = 5, **kwargs) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn(*args, **kwargs)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=400_000, help="Events simulated before copying.")
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "refledger-reads.duckdb")
    args = parser.parse_args()
    if not args.db.exists():
        build(args.db, args.entries, args.events)
    con = duckdb.connect(str(args.db), read_only=True)
    try:
        cur = con.cursor()
        [(entries,)] = cur.execute("SELECT count(*) FROM entries").fetchall()
        [(events,)] = cur.execute("SELECT count(*) FROM events").fetchall()
        [(order_id,)] = cur.execute("""SELECT order_id FROM decisions WHERE topic = 'ingest'
                                       ORDER BY batch_id DESC LIMIT 1""").fetchall()
        result = {"entries": entries, "events": events,
                  "balances_ms": timed(queries.balances, cur),
                  "stats_ms": timed(queries.stats, cur),
                  "explain_ms": timed(queries.explain, cur, order_id=order_id)}
    finally:
        con.close()
    for key, value in result.items():
        print(f"{key:>12}  {value:,}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
