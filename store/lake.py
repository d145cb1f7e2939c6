"""The ledger on DuckLake: many writers, one ledger, readers that never wait.

A DuckLake is a catalog (here PostgreSQL: tables, files, snapshots) and a
data path (a shared directory, or an object store the extension reaches)
holding one Parquet file per table per commit. Every process that attaches
it sees the same ledger: several `consume` processes, on one machine or
several, each write the partitions Kafka gave them, and any number of
readers attach it read-only. `--db ducklake:postgres:<libpq connection
string>` names it; `--data-path DIR` says where its files go (needed when
the lake is created; the catalog remembers it).

The tables are the DuckDB file's (`store.ledger_file`), with one type
changed: Parquet has no 128-bit integer and DuckDB would write a HUGEINT as a
double, so the per-batch sums of `balance_moves` are DECIMAL(38,0) here:
exact, and as wide. And one table more:

owners  who may write each log (topic, partition): a claim row per log, taken
        when a consumer is assigned the partition, with the claim's epoch,
        plus one row per batch written under that claim. Row (topic '', -1)
        carries the latest epoch handed out.

Fencing. A consumer that lost its partitions (paused past its session
timeout while another member took them over) must never write to them
again. DuckLake detects conflicts per table: a transaction that inserts into
a table conflicts with any transaction committed meanwhile that deleted from
it, and two that delete from one table conflict. So:

1. A claim (`claim`) is one transaction that reads the greatest epoch,
   deletes the `owners` rows of the logs it claims and the epoch row, and
   inserts them again with the epoch + 1. Every claim deletes from `owners`,
   so two claims never commit concurrently: epochs are unique and grow.
2. A batch (`write_batch`) is one transaction that first checks that each of
   its logs' latest claim is this writer's, then inserts a row per log into
   `owners` along with all of the batch's rows. A claim committed after the
   batch's transaction began has deleted from `owners`: the batch's commit
   conflicts and is rolled back; on the retry the check sees the new owner and
   refuses (`FencedOut`). A claim committed before it began is seen by the
   check itself.
3. A claim's conflict with a batch of another writer (which inserted into
   `owners` meanwhile) only makes one of them try again; the batch's retry
   passes its check when the claim was for other logs.

So every batch of a log is written by the writer whose claim was the latest
when the batch committed, and a new owner that reads the log's position,
snapshot and events after its claim sees everything written before it.

Batch ids are ``epoch * 10**9 + n``: unique, and growing within each log
across owners (a log's new owner has a greater epoch), which is all the read
queries ask of them (the latest position of a log is the one of its
greatest batch id).

Reads (`reading`): the lake attached read-only, in one transaction, which
pins one DuckLake snapshot: a reader sees whole batches only, every query of
a report the same ones, and neither waits for writers nor holds them up.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa

from refledger.store.ledger_file import (
    FOLDED_EVENTS_VIEW, LEDGER_DDL, LEDGER_FORMAT, REDACTION_KEY_VARIABLE, SCHEMA_DDL, BatchWrite, StoreError,
    insert_batch, redaction_key_at, sql_text, stored_events, stored_logs, stored_positions, stored_snapshots,
)

log = logging.getLogger("refledger.store.lake")

LAKE_PREFIX = "ducklake:postgres:"
ALIAS = "lake"
EXTENSIONS = (("duckdb_extension_ducklake", "ducklake"), ("duckdb_extension_postgres_scanner", "postgres_scanner"))

OWNERS_DDL = """
CREATE TABLE IF NOT EXISTS owners (
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    epoch BIGINT NOT NULL,
    owner VARCHAR NOT NULL,
    batch_id BIGINT NOT NULL
);
"""
EPOCH_ROW = ("", -1)              # (topic, partition) of the row that carries the latest epoch
BATCHES_PER_EPOCH = 10**9         # batch id = epoch * BATCHES_PER_EPOCH + n
ATTEMPTS = 60                     # tries of one transaction that conflicts with other writers
COLLISION_WAIT_MS = 5             # before DuckLake commits again after another writer took the snapshot id
RETRY_WAIT_S = 0.02
# A writer's catalog transaction lasts from its first read to its commit, and holds row locks of the
# catalog while it commits. A writer paused there (SIGSTOP, a VM frozen) would hold up every other
# writer; the catalog ends such a session after this long idle in a transaction, and the paused
# writer's commit then fails (and, retried, finds its partitions claimed by another: `FencedOut`).
# Below the consumers' session timeout (10 s), so that a rebalance waiting for a commit held up this
# way completes in time.
WRITER_IDLE_LIMIT_S = 8


class FencedOut(StoreError):
    """A log of the batch has been claimed by another writer since this one claimed it."""

    def __init__(self, message: str, logs: tuple[tuple[str, int], ...]):
        super().__init__(message)
        self.logs = logs


@dataclass(frozen=True)
class LakeLedger:
    """A ledger on DuckLake: its PostgreSQL catalog (a libpq connection string) and data path."""

    catalog: str
    data_path: str | None = None

    def __str__(self) -> str:
        return LAKE_PREFIX + self.catalog


def is_lake(db) -> bool:
    return isinstance(db, LakeLedger) or str(db).startswith("ducklake:")


def lake_ledger(db, data_path: str | None = None) -> LakeLedger:
    """The lake named by ``--db ducklake:postgres:...`` (and ``--data-path``)."""
    if isinstance(db, LakeLedger):
        return db if data_path is None else LakeLedger(db.catalog, str(data_path))
    text = str(db)
    if not text.startswith(LAKE_PREFIX):
        raise StoreError(f"{text}: a ledger on DuckLake is named ducklake:postgres:<libpq connection string> "
                         "(its catalog is PostgreSQL; see `refledger catalog start`)")
    catalog = text[len(LAKE_PREFIX):].strip()
    if not catalog:
        raise StoreError("ducklake:postgres: needs a connection string, e.g. "
                         "ducklake:postgres:host=127.0.0.1 port=55432 dbname=refledger user=refledger")
    return LakeLedger(catalog, str(data_path) if data_path else None)


def extension_file(package: str, name: str) -> str:
    """The extension's file inside its PyPI wheel (loaded from there, never downloaded)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise StoreError(f"the {name} extension is not installed: pip install {package.replace('_', '-')}"
                         f"=={duckdb.__version__}")
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise StoreError(f"{path} is missing: the {name} extension must match duckdb {duckdb.__version__}")
    return str(path)


def connect(lake: LakeLedger, *, read_only: bool, idle_limit_s: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake attached as ``lake`` and in use. ``idle_limit_s``: the catalog
    ends this connection's session when a transaction of it stays idle that long (see `WRITER_IDLE_LIMIT_S`).
    Consumers started together on a new lake race to create its catalog: the losers attach again."""
    catalog = str(lake)
    if idle_limit_s and "options=" not in lake.catalog:
        catalog += f" options='-c idle_in_transaction_session_timeout={int(idle_limit_s * 1000)}'"
    for attempt in range(1, 11):
        try:
            return _attach(lake, catalog, read_only)
        except duckdb.Error as exc:
            if read_only and "creating a new DuckLake is explicitly disabled" in str(exc):
                raise StoreError(f"no ledger at {lake}: its catalog holds none yet") from exc
            if "data_path is not set" in str(exc):  # the catalog holds no lake yet
                if read_only:
                    raise StoreError(f"no ledger at {lake}: its catalog holds none yet") from exc
                raise StoreError(f"{lake} is a new ledger: give --data-path, the shared directory (or object "
                                 "store) where its Parquet files go") from exc
            racing = "duplicate key" in str(exc) or "already exists" in str(exc)
            if not racing or attempt == 10:
                raise StoreError(f"cannot open ledger {lake}: {_first_line(exc)}") from exc
            time.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


def _attach(lake: LakeLedger, catalog: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    # what DuckDB spills goes to the machine's temporary directory, not into ./.tmp of wherever the
    # command runs (which may not even be writable)
    spills = os.path.join(tempfile.gettempdir(), f"refledger-lake-{os.getpid()}.tmp")
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "temp_directory": spills})
    try:
        for package, name in EXTENSIONS:
            con.execute(f"LOAD {sql_text(extension_file(package, name))}")
        options = []
        if lake.data_path:
            options.append(f"DATA_PATH {sql_text(lake.data_path)}")
        if read_only:
            options.append("READ_ONLY")
        shown = f" ({', '.join(options)})" if options else ""
        con.execute(f"ATTACH {sql_text(catalog)} AS {ALIAS}{shown}")
        con.execute(f"USE {ALIAS}")
    except BaseException:
        con.close()
        raise
    return con


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _conflict(exc: duckdb.Error) -> bool:
    """A transaction to try again: it conflicted with another writer's, or failed to commit (its catalog
    session ended, say), or the catalog did not answer."""
    text = str(exc).lower()
    return isinstance(exc, duckdb.TransactionException) or any(
        word in text for word in ("conflict", "retry", "duplicate key", "terminat", "connection"))


def lake_ddl() -> str:
    """The file's tables as DuckLake holds them (Parquet has no HUGEINT, and its own encodings: no
    column names its compression), and `owners`."""
    ddl = re.sub(r" USING COMPRESSION \w+", "", SCHEMA_DDL + LEDGER_DDL)
    return ddl.replace("HUGEINT", "DECIMAL(38,0)") + OWNERS_DDL


class LakeStore:
    """A ledger on DuckLake, written by this process for the logs it claimed."""

    single_writer = False  # other processes may write other logs of the same ledger

    def __init__(self, lake: LakeLedger):
        self.lake = lake
        self.path = str(lake)
        self.read_only = False
        self.con = connect(lake, read_only=False, idle_limit_s=WRITER_IDLE_LIMIT_S)
        # as the DuckDB file's writer: a batch's inserts cost the least CPU on one thread, and the
        # machine's other cores are busy reading and folding
        self.con.execute("SET threads = 1")
        # Two writers committing at once collide on the catalog's next snapshot id; DuckLake retries
        # the loser (no data is rewritten) after 100 ms by default, long next to a 75 ms commit.
        self.con.execute(f"SET ducklake_retry_wait_ms = {COLLISION_WAIT_MS}")
        self.con.execute("SET ducklake_retry_backoff = 1.5")
        self.con.execute("SET ducklake_max_retry_count = 100")
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.epochs: dict[tuple[str, int], int] = {}
        self._epoch = 0
        self._batches_in_epoch = 0
        self._write_lock = threading.Lock()
        self.checkpoint_seconds = 0.0
        self._create_tables()

    # -- the tables ---------------------------------------------------------------------

    def _create_tables(self) -> None:
        """Create the ledger's tables the first time (two processes may race to: one retries)."""
        def create(cur, _attempt):
            tables = {name for (name,) in cur.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [ALIAS]).fetchall()}
            if "ledger_format" in tables and "owners" in tables:
                [(found,)] = cur.execute("SELECT max(version) FROM ledger_format").fetchall()
                if found != LEDGER_FORMAT:
                    raise StoreError(f"{self.path} holds a refledger ledger of layout {found}; this version "
                                     f"reads layout {LEDGER_FORMAT}")
                return False
            if tables:
                raise StoreError(f"{self.path} is a DuckLake but not a refledger ledger (it holds "
                                 f"{', '.join(sorted(tables)[:5])})")
            cur.execute(lake_ddl())
            cur.execute(FOLDED_EVENTS_VIEW.replace("CREATE OR REPLACE VIEW", "CREATE VIEW"))
            cur.execute("INSERT INTO ledger_format VALUES (?)", [LEDGER_FORMAT])
            cur.execute("INSERT INTO owners VALUES (?, ?, 0, '', 0)", list(EPOCH_ROW))
            return True

        if self._transaction(create, "create the ledger's tables"):
            log.info("created the ledger's tables in %s", self.path)

    def close(self) -> None:
        self.con.close()

    def redaction_key(self) -> bytes:
        """The secret personal data is redacted under (SPEC §4b), the same for every writer:
        $REFLEDGER_REDACTION_KEY, else a key created once in the shared data path (a file of its own,
        never in the ledger's tables). A data path on an object store needs the variable."""
        configured = os.environ.get(REDACTION_KEY_VARIABLE)
        if configured:
            return configured.encode("utf-8")
        data_path = self.lake.data_path or self._stored_data_path()
        if data_path is None or "://" in data_path:
            raise StoreError(f"{self.path}: set ${REDACTION_KEY_VARIABLE} (the key personal data is redacted "
                             "under) for a lake whose data path is not a directory")
        return redaction_key_at(Path(data_path) / "redaction-key")

    def _stored_data_path(self) -> str | None:
        rows = self.cursor().execute(
            f"SELECT value FROM {ALIAS}.options() WHERE option_name = 'data_path'").fetchall()
        return rows[0][0] if rows and rows[0][0] else None

    def cursor(self):
        cur = self.con.cursor()
        cur.execute(f"USE {ALIAS}")
        return cur

    # -- reading what a writer needs to resume ---------------------------------------------

    def positions(self) -> dict[tuple[str, int], int]:
        return stored_positions(self.cursor())

    def snapshots(self, topic: str, partition: int) -> Iterator[tuple[int, str, str | None, bytes | None]]:
        return stored_snapshots(self.cursor(), topic, partition)

    def partition_events(self, topic: str, partition: int, after: int = -1, types: tuple[str, ...] | None = None):
        return stored_events(self.cursor(), topic, partition, after, types)

    def logs(self) -> list[tuple[str, int]]:
        return stored_logs(self.cursor())

    # -- claims and batches ------------------------------------------------------------------

    def claim(self, logs) -> int:
        """Take over writing ``logs``; any writer that held them can commit none of their batches
        from now on. Returns the claim's epoch."""
        logs = sorted(set(logs))
        if not logs:
            return self._epoch

        def take(cur, _attempt):
            [(top,)] = cur.execute("SELECT coalesce(max(epoch), 0) FROM owners").fetchall()
            epoch = top + 1
            keys = [f"{t}:{p}" for t, p in [EPOCH_ROW, *logs]]
            cur.execute("DELETE FROM owners WHERE list_contains(?, topic || ':' || partition)", [keys])
            rows = pa.table({"topic": [t for t, _ in [EPOCH_ROW, *logs]],
                             "partition": pa.array([p for _, p in [EPOCH_ROW, *logs]], pa.int32()),
                             "epoch": pa.array([epoch] * (len(logs) + 1), pa.int64()),
                             "owner": [self.owner] * (len(logs) + 1),
                             "batch_id": pa.array([0] * (len(logs) + 1), pa.int64())})
            cur.execute("INSERT INTO owners SELECT * FROM rows")
            return epoch

        with self._write_lock:
            epoch = self._transaction(take, "claim " + ", ".join(f"{t}:{p}" for t, p in logs))
            self.epochs.update({key: epoch for key in logs})
            self._epoch, self._batches_in_epoch = epoch, 0
        log.info("claimed %s at epoch %d", ", ".join(f"{t}:{p}" for t, p in logs), epoch)
        return epoch

    def write_batch(self, batch: BatchWrite) -> int:
        """Commit a batch atomically, if this writer still owns every log in it; returns its batch id.
        Raises `FencedOut` when another writer has claimed one of them since."""
        logs = sorted(batch.positions)
        unclaimed = [key for key in logs if key not in self.epochs]
        if unclaimed:
            raise FencedOut(f"{self.path}: this writer never claimed {_named(unclaimed)}", tuple(unclaimed))

        def write(cur, attempt):
            batch_id = self._epoch * BATCHES_PER_EPOCH + self._batches_in_epoch + 1
            if attempt > 1 and cur.execute("SELECT count(*) FROM batches WHERE batch_id = ?",
                                           [batch_id]).fetchall()[0][0]:
                return batch_id  # the try that failed had committed after all (its answer was lost)
            self._check_owner(cur, logs)
            mine = pa.table({"topic": [t for t, _ in logs],
                             "partition": pa.array([p for _, p in logs], pa.int32()),
                             "epoch": pa.array([self.epochs[key] for key in logs], pa.int64()),
                             "owner": [self.owner] * len(logs),
                             "batch_id": pa.array([batch_id] * len(logs), pa.int64())})
            cur.execute("INSERT INTO owners SELECT * FROM mine")
            # no balance_totals: batch ids of several writers do not grow in commit order, which the
            # rollup's "moves after the latest totals" needs; balances sum every batch's moves instead
            insert_batch(cur, batch, batch_id, rollup=False)
            return batch_id

        with self._write_lock:
            batch_id = self._transaction(write, "write a batch")
            self._batches_in_epoch += 1
            return batch_id

    def _check_owner(self, cur, logs: list[tuple[str, int]]) -> None:
        keys = [f"{t}:{p}" for t, p in logs]
        latest = {(t, p): (owner, epoch) for t, p, owner, epoch in cur.execute(
            """SELECT topic, partition, arg_max(owner, epoch), max(epoch) FROM owners
               WHERE list_contains(?, topic || ':' || partition) GROUP BY topic, partition""", [keys]).fetchall()}
        lost = [key for key in logs if latest.get(key) != (self.owner, self.epochs[key])]
        if lost:
            held = "; ".join(f"{t}:{p} by {latest[(t, p)][0]} since epoch {latest[(t, p)][1]}"
                             if (t, p) in latest else f"{t}:{p} by nobody" for t, p in lost)
            for key in lost:
                self.epochs.pop(key, None)
            raise FencedOut(f"{self.path}: another consumer has claimed {_named(lost)} ({held}); "
                            "this one's batch was not written", tuple(lost))

    def _transaction(self, work, what: str):
        """Run ``work(cursor, attempt)`` in one transaction, again when it conflicts with another writer's
        or fails to commit."""
        wait = RETRY_WAIT_S
        for attempt in range(1, ATTEMPTS + 1):
            cur = self.cursor()
            try:
                cur.execute("BEGIN TRANSACTION")
                result = work(cur, attempt)
                cur.execute("COMMIT")
                return result
            except StoreError:
                _rollback(cur)
                raise
            except duckdb.Error as exc:
                _rollback(cur)
                if not _conflict(exc) or attempt == ATTEMPTS:
                    raise StoreError(f"cannot {what} in ledger {self.path}: {_first_line(exc)}") from exc
                log.debug("%s conflicted with another writer (attempt %d): %s", what, attempt, _first_line(exc))
            finally:
                cur.close()
            time.sleep(wait)
            wait = min(wait * 1.5, 0.5)
        raise AssertionError("unreachable")

    def checkpoint(self) -> bool:
        """Nothing to fold: a committed batch is in its Parquet files and the catalog already."""
        return True


def _rollback(cur) -> None:
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error:
        pass


def _named(logs) -> str:
    return ", ".join(f"{t}:{p}" for t, p in logs)


class _InSnapshot:
    """A cursor that stays in its reader's transaction (closing it leaves the reader open)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con

    def cursor(self):
        return self

    def execute(self, *args, **kwargs):
        return self._con.execute(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)

    def close(self) -> None:
        """The reader's snapshot stays open for its other queries."""


class LakeReader(_InSnapshot):
    """The lake attached read-only in one open transaction: every query sees the same snapshot of
    whole batches. Its cursors are itself again, so that a read query's several statements (and a
    cursor it opens) stay in that snapshot."""

    def __init__(self, lake: LakeLedger):
        super().__init__(connect(lake, read_only=True))
        self._con.execute("BEGIN TRANSACTION")

    def cursor(self):
        return _InSnapshot(self._con)

    def close(self) -> None:
        try:
            self._con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        self._con.close()


def reading(db) -> LakeReader:
    """A consistent read-only view of the lake (close it when done)."""
    return LakeReader(lake_ledger(db))
