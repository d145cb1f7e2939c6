"""Keeping a DuckLake ledger's files few: compaction on a schedule, beside the writers.

Every batch commits a Parquet file per table it adds rows to (small inserts,
up to ten rows, are kept in the catalog itself). A consumer writing a batch
every few hundred milliseconds makes thousands of small files an hour, and a
reader opens every one it needs. `compact` merges them:

1. the rows kept in the catalog are written out to Parquet
   (`ducklake_flush_inlined_data`);
2. adjacent small files of each table are merged into larger ones
   (`ducklake_merge_adjacent_files`); rows keep their row ids, so the order
   the read queries follow (rowid) does not change;
3. snapshots older than ``keep_s`` are expired and the files no snapshot
   needs any more, and older than ``keep_s`` too, are deleted
   (`ducklake_expire_snapshots`, `ducklake_cleanup_old_files`). A reader
   keeps its snapshot for the length of one command; ``keep_s`` (10 minutes)
   is far longer.

Each step is its own DuckLake transaction on its own connection. Merging
conflicts with no insert (checked in tests/test_lake.py), so writers go on
while it runs; a step that does conflict (another process compacting at the
same moment) is skipped until the next round. `consume` compacts every
``--compact-every`` seconds on a thread of its own; `refledger compact` does
it once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import duckdb

from refledger.store.lake import ALIAS, LakeLedger, connect

log = logging.getLogger("refledger.store.lake_files")

KEEP_S = 600


@dataclass(frozen=True)
class Compaction:
    files_before: int
    files_after: int
    seconds: float
    skipped: tuple[str, ...]  # steps that conflicted with another process and wait for the next round

    def as_dict(self) -> dict:
        return {"files_before": self.files_before, "files_after": self.files_after,
                "seconds": round(self.seconds, 3), "skipped": list(self.skipped)}


def data_files(cur) -> int:
    """How many Parquet files the lake's current snapshot reads."""
    [(count,)] = cur.execute(
        f"SELECT count(*) FROM __ducklake_metadata_{ALIAS}.ducklake_data_file WHERE end_snapshot IS NULL"
    ).fetchall()
    return int(count)


def compact(lake: LakeLedger, keep_s: float = KEEP_S) -> Compaction:
    """Merge the lake's small files and delete those nothing reads any more (see the module's doc)."""
    started = time.monotonic()
    con = connect(lake, read_only=False)
    try:
        before = data_files(con)
        skipped = []
        steps = (
            ("flush", f"CALL ducklake_flush_inlined_data('{ALIAS}')"),
            ("merge", f"CALL ducklake_merge_adjacent_files('{ALIAS}')"),
            ("expire", f"SELECT count(*) FROM ducklake_expire_snapshots('{ALIAS}', "
                       f"older_than => now() - INTERVAL '{int(keep_s)} seconds')"),
            ("cleanup", f"SELECT count(*) FROM ducklake_cleanup_old_files('{ALIAS}', "
                        f"older_than => now() - INTERVAL '{int(keep_s)} seconds')"),
        )
        for name, sql in steps:
            try:
                con.execute(sql).fetchall()
            except duckdb.TransactionException as exc:
                log.info("compaction step %s skipped this round: %s", name, str(exc).splitlines()[0])
                skipped.append(name)
        after = data_files(con)
    finally:
        con.close()
    return Compaction(before, after, time.monotonic() - started, tuple(skipped))


class Compactor:
    """Compacts a lake every ``every_s`` seconds on a thread of its own, until stopped."""

    def __init__(self, lake: LakeLedger, every_s: float, keep_s: float = KEEP_S):
        self.lake, self.every_s, self.keep_s = lake, every_s, keep_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lake-compactor", daemon=True)
        self.rounds: list[Compaction] = []

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                done = compact(self.lake, self.keep_s)
            except Exception as exc:  # compaction is housekeeping: the next round tries again
                log.warning("compaction failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
                continue
            self.rounds.append(done)
            log.info("compacted %s: %d files → %d in %.1fs", self.lake, done.files_before, done.files_after,
                     done.seconds)
