"""The DuckDB ledger file: its tables, the one-transaction batch write, and reads.

Every table is append-only. Nothing in refledger updates or deletes a row:
the current position of a log is its latest `positions` row, a counter is
the sum of its `batches` rows.

Tables
------
events      every decoded event of every log that reached the fold (all but the
            identical re-deliveries it skipped), in log order, with its canonical
            Avro bytes (the source of truth for replay); an event the fold
            quarantined stays here too, with its row in `quarantine` at the same
            (topic, partition, offset)
quarantine  events that could not be folded, with raw bytes, position, reason; `late`
            rows name a parked refund given up later, at the position of the event
            that gave it up (its order, or a close)
entries     ledger entries posted by the fold (double entry, hash-chained), each with the
            position of the event that caused it (`event_offset`: an event id may come back
            on another event after a close, SPEC §9a; the position is the event's own)
decisions   attribution decisions, for `explain`
checkpoints each log's chain head right after each settlement and close, and at each
            snapshot, with the snapshot's digest
snapshots   each log's fold state after an event (at every close and every N events),
            to restart from (refledger.store.snapshots); in this file the state's bytes
            are kept in a table of their own, snapshot_state."<digest>", and `state` is
            empty (see SNAPSHOT_STATE)
fold_state  how much each log's fold remembered after each batch, per kind
order_events  the orders and refunds among the stored events, indexed by order id, for `explain`
balance_totals  every BALANCE_ROLLUP batches, the balance moves summed up to that batch (balances add
            only the moves after the latest totals)
alliance_events  the alliance events among the stored ones (each is copied to every partition): stats
            counts an event once however many logs hold it, without reading every event
balance_moves  each batch's entries summed per (shop, currency, account): balances read these,
            a few rows per batch, instead of every entry (verify checks they agree)
positions   next offset to read, per (topic, partition)
batches     one row per committed batch: what it read, skipped, stored, quarantined
ledger_format  the layout version of this file (one row)
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa

from refledger.store.columns import EVENT_COLUMNS, QUARANTINE_COLUMNS, EventRow, arrow_columns, arrow_rows

log = logging.getLogger("refledger.store.ledger_file")

# The text columns of the three tables that hold nearly all of a ledger's bytes (events, entries,
# decisions) name their compression. Left to choose, DuckDB tries each of its methods on every
# column segment whenever it writes one (a batch's full row groups at commit, the rest at each
# checkpoint), which cost the writer about a sixth of its CPU. Small vocabularies (shops, types,
# accounts, currencies, and visitors, who come back event after event) take a dictionary; ids,
# digests, decisions' JSON and the Avro bytes FSST, which DuckDB chose for most of them on a large
# ledger and which keeps the file smaller than its own choice (`bench/writer.py`). A ledger created
# before keeps DuckDB's choice; a DuckLake writes Parquet and drops the clauses
# (`store.lake.lake_ddl`).
SCHEMA_DDL = """
CREATE TABLE IF NOT EXISTS events (
    topic VARCHAR NOT NULL USING COMPRESSION dictionary,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    event_id VARCHAR NOT NULL USING COMPRESSION fsst,
    type VARCHAR NOT NULL USING COMPRESSION dictionary,
    occurred_at TIMESTAMP NOT NULL,
    shop_id VARCHAR NOT NULL USING COMPRESSION dictionary,
    visitor_id VARCHAR USING COMPRESSION dictionary,
    merchant_shop_id VARCHAR USING COMPRESSION dictionary,
    referrer_shop_id VARCHAR USING COMPRESSION dictionary,
    order_id VARCHAR USING COMPRESSION fsst,
    refund_id VARCHAR USING COMPRESSION fsst,
    amount_minor BIGINT,
    currency VARCHAR USING COMPRESSION dictionary,
    kafka_timestamp BIGINT,
    avro BLOB NOT NULL USING COMPRESSION fsst,
    batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    position VARCHAR NOT NULL,
    event_id VARCHAR,
    reason VARCHAR NOT NULL,
    detail VARCHAR NOT NULL,
    stage VARCHAR NOT NULL,
    raw BLOB NOT NULL,
    late BOOLEAN NOT NULL,
    batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_format (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id BIGINT NOT NULL,
    source VARCHAR NOT NULL,
    events_read BIGINT NOT NULL,
    duplicates_skipped BIGINT NOT NULL,
    events_stored BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    entries_posted BIGINT NOT NULL
);
"""

# Point lookups an auditor makes (`explain` an order) must not read every row of a long history.
INDEX_DDL = """
CREATE INDEX IF NOT EXISTS order_events_by_order ON order_events (order_id);
CREATE INDEX IF NOT EXISTS decisions_by_order ON decisions (order_id);
CREATE INDEX IF NOT EXISTS entries_by_subject ON entries (subject);
"""

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS entries (
    topic VARCHAR NOT NULL USING COMPRESSION dictionary,
    partition INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    entry_id VARCHAR NOT NULL USING COMPRESSION fsst,
    txn_id VARCHAR NOT NULL USING COMPRESSION fsst,
    event_id VARCHAR NOT NULL USING COMPRESSION fsst,
    shop_id VARCHAR NOT NULL USING COMPRESSION dictionary,
    account VARCHAR NOT NULL USING COMPRESSION dictionary,
    counterparty_shop_id VARCHAR USING COMPRESSION dictionary,
    currency VARCHAR NOT NULL USING COMPRESSION dictionary,
    amount BIGINT NOT NULL,
    subject VARCHAR NOT NULL USING COMPRESSION fsst,
    role VARCHAR NOT NULL USING COMPRESSION dictionary,
    agreement_id VARCHAR USING COMPRESSION dictionary,
    agreement_version BIGINT,
    model VARCHAR USING COMPRESSION dictionary,
    rate_bp BIGINT,
    click_event_id VARCHAR USING COMPRESSION fsst,
    refund_id VARCHAR USING COMPRESSION fsst,
    reason VARCHAR USING COMPRESSION dictionary,
    prev_hash VARCHAR NOT NULL USING COMPRESSION fsst,
    hash VARCHAR NOT NULL USING COMPRESSION fsst,
    event_offset BIGINT NOT NULL,
    batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    event_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    "at" TIMESTAMP NOT NULL,
    entries BIGINT NOT NULL,
    head VARCHAR NOT NULL,
    snapshot_digest VARCHAR,
    batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    kind VARCHAR NOT NULL,
    entries BIGINT NOT NULL,
    head VARCHAR NOT NULL,
    digest VARCHAR NOT NULL,
    state BLOB NOT NULL,
    batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS order_events (
    order_id VARCHAR NOT NULL,
    merchant_shop_id VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS balance_totals (
    shop_id VARCHAR NOT NULL,
    currency VARCHAR NOT NULL,
    account VARCHAR NOT NULL,
    amount HUGEINT NOT NULL,
    batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS alliance_events (
    event_id VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS balance_moves (
    shop_id VARCHAR NOT NULL,
    currency VARCHAR NOT NULL,
    account VARCHAR NOT NULL,
    amount HUGEINT NOT NULL,
    batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS fold_state (
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    kind VARCHAR NOT NULL,
    objects BIGINT NOT NULL,
    batch_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    topic VARCHAR NOT NULL USING COMPRESSION dictionary,
    partition INTEGER NOT NULL,
    event_id VARCHAR NOT NULL USING COMPRESSION fsst,
    merchant_shop_id VARCHAR NOT NULL USING COMPRESSION dictionary,
    order_id VARCHAR NOT NULL USING COMPRESSION fsst,
    decision VARCHAR NOT NULL USING COMPRESSION fsst,
    batch_id BIGINT NOT NULL
);
"""

# The events the fold folded: stored events without a quarantine row of their own, and without a
# late one (a parked refund given up when its order came or the books closed). A late row names the
# refund by event id, at the position of the event that gave it up: it is the latest refund of that
# id before that position among those the fold took (while it waited, an event reusing its id was
# refused or skipped; an earlier refund of the same id, closed and forgotten, stays folded).
# Reports count these.
FOLDED_EVENTS_VIEW = """
CREATE OR REPLACE VIEW folded_events AS
WITH own AS (SELECT topic, partition, "offset" FROM quarantine WHERE stage = 'fold' AND NOT late),
given_up AS (
    SELECT q.topic, q.partition, max(r."offset") AS "offset"
    FROM quarantine q
    JOIN events r ON r.topic = q.topic AND r.partition = q.partition AND r.event_id = q.event_id
                 AND r.type = 'refund' AND r."offset" < q."offset"
    ANTI JOIN own ON own.topic = r.topic AND own.partition = r.partition AND own."offset" = r."offset"
    WHERE q.stage = 'fold' AND q.late
    GROUP BY q.topic, q.partition, q."offset", q.event_id)
SELECT e.* FROM events e
ANTI JOIN (SELECT * FROM own UNION ALL SELECT * FROM given_up) gone
     ON gone.topic = e.topic AND gone.partition = e.partition AND gone."offset" = e."offset";
"""
# (An anti-join, not a correlated NOT EXISTS with an OR: DuckDB hashes the few quarantine rows and
# streams the events past them, ten times faster on a million events.)

REDACTION_KEY_VARIABLE = "REFLEDGER_REDACTION_KEY"
# Rows committed since the last checkpoint live in the writer's memory until it. The writer folds
# the write-ahead log into the file once it holds CHECKPOINT_BYTES: twice DuckDB's default of 16 MB
# (at which inserts into a big file cost twice as much). It was 128 MB with batches of 5,000 events;
# batches of 20,000 write their full row groups of events straight into the file, so less goes
# through the log, a checkpoint covers more events, and at 128 MB the consumer's process peaked
# at 1.0–1.05 GB during checkpoints (1M events) against 0.62–0.66 at 32 MB, no slower.
CHECKPOINT_BYTES = 32 * 1024 * 1024
# DuckDB caches the file's blocks up to its memory limit (80 % of the machine by default), so the
# writer's memory grew with the ledger: 1.5 GB on 1.9M events. Between checkpoints the writer is
# held to WRITER_MEMORY (blocks it no longer needs go back to the file). A checkpoint runs without
# that limit: one that runs out of memory leaves DuckDB refusing every later write, so the writer
# checkpoints itself (DuckDB's own checkpoint, which would run under the limit, is set far off) and
# lifts the limit for that moment. Measured on 1.9M events (``bench/growth.py``): the consumer's own
# process peaked at 0.8 GB with this against 1.5 GB without, and ran no slower. Later, on the same
# 1.9M events, 128 MB against 256: the consumer's peak 643 against 668 MB (587 against 620 with
# consumers.heap's fixed threshold for large blocks), as fast within the noise.
WRITER_MEMORY = "128MB"
# At each checkpoint DuckDB writes a table's last row group again, reading every value in it: the
# snapshots of a long history (a few hundred rows, megabytes each) all sat in one row group, so
# each checkpoint after a snapshot read them all back (about 3 × 93 MB on 1.9M events, and growing
# with every close). The writer keeps each snapshot's bytes in a table of its own in this schema,
# named by its digest; checkpoints never read a table nothing was added to. (A new table changes
# the catalog: the next checkpoint then waits until no other transaction is open, as it waits
# for a reader's query through the read socket, each on a cursor closed after it; the writer
# tries again after the next batch.)
SNAPSHOT_STATE = "snapshot_state"
# The same rewrite of the last row group costs a checkpoint up to one row group of each table it
# appends to: DuckDB's 122,880 rows of `decisions` (1.4 KB of JSON each) are about 170 MB, read
# whole at a checkpoint that appends to them. The writer's row groups are smaller: half a full
# batch (consumers.batch.MAX_POLL_RECORDS, 20,000 records) rounded up to DuckDB's vectors of 2,048
# rows. A batch's events then fill one row group and nearly all of a second, and a checkpoint's
# vacuum, which merges neighbouring row groups when that saves one, has nothing to merge: with
# 16,384 rows each batch left one full group and one of 3,600 rows, and merging those again at every
# checkpoint, every column compressed anew, was a tenth of `consume`'s CPU (1M events: 37 against
# 40 µs an event, 43.4k → 47.7k events/s). Small batches still leave small groups, which the
# vacuum merges as before, so a ledger fed a trickle does not grow a row group per checkpoint.
ROW_GROUP_ROWS = 10_240
ATTACHED = "ledger"  # the writer's name for the file it attaches
_DUCKDB_CHECKPOINT_THRESHOLD = "1TB"
LEDGER_FORMAT = 5  # the tables' layout; a file written with another layout is refused, not misread
BALANCE_ROLLUP = 500  # batches between two balance_totals


class StoreError(Exception):
    """The ledger file cannot be opened, read or written."""


@dataclass
class BatchWrite:
    """Everything one batch writes, as columns, committed together."""

    source: str
    events: list[EventRow] = field(default_factory=list)
    events_table: pa.Table | None = None  # the events to store, as columns (else all of ``events``)
    quarantine: dict[str, list] = field(default_factory=lambda: {n: [] for n, _ in QUARANTINE_COLUMNS})
    extra_tables: dict[str, pa.Table] = field(default_factory=dict)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    events_read: int = 0
    duplicates_skipped: int = 0
    entries_posted: int = 0

    @property
    def events_stored(self) -> int:
        return len(self.events) if self.events_table is None else self.events_table.num_rows

    @property
    def quarantined(self) -> int:
        return len(self.quarantine["reason"])

    def add_quarantine(self, topic, partition, offset, position, event_id, reason, detail, stage, raw, late=False):
        q = self.quarantine
        q["topic"].append(topic)
        q["partition"].append(partition)
        q["offset"].append(offset)
        q["position"].append(position)
        q["event_id"].append(event_id)
        q["reason"].append(reason)
        q["detail"].append(detail)
        q["stage"].append(stage)
        q["raw"].append(raw)
        q["late"].append(late)


def sql_text(text: str) -> str:
    """``text`` as an SQL string literal, for the statements that take no parameters (ATTACH, LOAD)."""
    return "'" + text.replace("'", "''") + "'"


def _connect(path: Path, read_only: bool, wait_s: float = 15.0):
    """Open the file, waiting out a reader that holds it for a moment. The writer attaches it with
    rows groups of ROW_GROUP_ROWS (an option DuckDB takes only on ATTACH) and makes it the
    connection's default database: its cursors must say ``USE`` again (``LedgerStore.cursor``)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if read_only:
                return duckdb.connect(str(path), read_only=True)
            # an in-memory connection spills into ./.tmp of whatever directory the command runs in;
            # the ledger's own spills belong beside it, as DuckDB puts them for a file it opens itself
            con = duckdb.connect(config={"temp_directory": f"{path}.tmp"})
            try:
                con.execute(f"ATTACH {sql_text(str(path))} AS {ATTACHED} (ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
                con.execute(f"USE {ATTACHED}")
            except BaseException:
                con.close()
                raise
            return con
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


class LedgerStore:
    """One ledger, one DuckDB file. Writers share one connection; each thread
    gets its own cursor. `write_batch` is the only way rows get in."""

    def __init__(self, path: str | Path, *, read_only: bool = False, extra_ddl: str = "",
                 keeps_events: bool = True):
        """``keeps_events`` False: a scratch ledger that stores no copy of the events it folds (nor
        the indexes of order and alliance events): a replay's rebuild, compared with the live
        ledger's entries, quarantine and positions and then thrown away. Such a file is never
        folded on: its snapshots have no events after them to rebuild from."""
        self.path = Path(path)
        self.keeps_events = keeps_events
        self._memory_key: bytes | None = None
        self.read_only = read_only
        try:
            if not read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.con = _connect(self.path, read_only)
            if not read_only:
                # Committed batches are durable in the write-ahead log; the writer folds them into
                # the file itself, every CHECKPOINT_BYTES, lifting its memory limit for it (see
                # WRITER_MEMORY). The consumer also checkpoints when it has nothing to read.
                self.con.execute(f"SET checkpoint_threshold = '{_DUCKDB_CHECKPOINT_THRESHOLD}'")
                self._duckdb_memory = self.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
                self._limited(self.con)
                # A writer's inserts cost the least CPU on one thread (spread over two, the inserts
                # of 1M events in batches of 5,000 took 5.4 s of CPU against 2.9), and the machine's
                # other cores are busy reading and folding.
                self.con.execute("SET threads = 1")
                self._check_format()
                self.con.execute(SCHEMA_DDL + LEDGER_DDL + INDEX_DDL + FOLDED_EVENTS_VIEW + extra_ddl
                                 + f"CREATE SCHEMA IF NOT EXISTS {SNAPSHOT_STATE};")
                if not self.con.execute("SELECT count(*) FROM ledger_format").fetchone()[0]:
                    self.con.execute("INSERT INTO ledger_format VALUES (?)", [LEDGER_FORMAT])
            else:
                self._check_format()
        except (duckdb.Error, OSError) as exc:
            raise StoreError(f"cannot open ledger {self.path}: {exc}") from exc
        self._write_lock = threading.Lock()
        self._next_batch_id = None
        self.checkpoint_seconds = 0.0  # spent in explicit checkpoints (the consumer's, when idle)

    def _check_format(self) -> None:
        """Refuse a file that is not a refledger ledger of this layout, rather than misread it."""
        tables = {name for (name,) in self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
        if not tables:
            return
        if "ledger_format" not in tables:
            raise StoreError(f"{self.path} is a DuckDB file but not a refledger ledger "
                             f"(it holds {', '.join(sorted(tables)[:5])}); give a new file or a ledger")
        [(found,)] = self.con.execute("SELECT max(version) FROM ledger_format").fetchall()
        if found != LEDGER_FORMAT:
            raise StoreError(f"{self.path} is a refledger ledger of layout {found}; this version reads layout "
                             f"{LEDGER_FORMAT}: rebuild it from its history (refledger replay --keep, or ingest "
                             "an archive into a new file)")

    def close(self) -> None:
        if not self.read_only:
            self._unlimited()  # DuckDB checkpoints as it closes
        self.con.close()

    def redaction_key(self) -> bytes:
        """The secret personal data is redacted under (SPEC §4b): $REFLEDGER_REDACTION_KEY, else a key
        created once beside the ledger file (mode 0600), never inside it."""
        if str(self.path) == ":memory:" and not os.environ.get(REDACTION_KEY_VARIABLE):
            # a ledger that vanishes with its process keeps its key the same way
            if self._memory_key is None:
                self._memory_key = secrets.token_bytes(32)
            return self._memory_key
        return redaction_key_at(self.path.with_name(self.path.name + ".redaction-key"))

    def cursor(self):
        cur = self.con.cursor()
        if not self.read_only:
            cur.execute(f"USE {ATTACHED}")
        return cur

    # -- reading what the writer needs to resume ---------------------------

    single_writer = True  # the file's lock keeps every other process out while this one writes

    def positions(self) -> dict[tuple[str, int], int]:
        return stored_positions(self.cursor())

    def snapshots(self, topic: str, partition: int) -> Iterator[tuple[int, str, str | None, bytes | None]]:
        """A log's snapshots, latest first: (offset, digest, digest recorded in its checkpoint, state)."""
        return stored_snapshots(self.cursor(), topic, partition)

    def partition_events(self, topic: str, partition: int, after: int = -1, types: tuple[str, ...] | None = None):
        """The stored log of one partition, in order: (offset, event id, avro bytes), after the given
        offset; only the events of these ``types``, if given."""
        return stored_events(self.cursor(), topic, partition, after, types)

    def logs(self) -> list[tuple[str, int]]:
        return stored_logs(self.cursor())

    def claim(self, logs) -> None:
        """Nothing to claim: no other process can write the file while this one holds it."""

    # -- the one write path -------------------------------------------------

    def write_batch(self, batch: BatchWrite) -> int:
        """Commit a batch atomically; returns its batch id."""
        with self._write_lock:
            cur = self.cursor()
            try:
                try:
                    batch_id = self._commit(cur, batch)
                except duckdb.OutOfMemoryException:
                    # a batch bigger than the writer's limit (a large fold's snapshot): once more,
                    # without the limit, rather than stop the writer
                    self._unlimited(cur)
                    try:
                        batch_id = self._commit(cur, batch)
                    finally:
                        self._limited(cur)
            except duckdb.Error as exc:
                raise StoreError(f"cannot write to ledger {self.path}: {exc}") from exc
            finally:
                cur.close()
            self._next_batch_id = batch_id + 1
            if self._wal_bytes() >= CHECKPOINT_BYTES:
                self._checkpoint()
            return batch_id

    def _commit(self, cur, batch: BatchWrite) -> int:
        try:
            cur.execute("BEGIN TRANSACTION")
            batch_id = self._allocate_batch_id(cur)
            batch = _states_apart(cur, batch)
            insert_batch(cur, batch, batch_id, rollup=True, with_events=self.keeps_events)
            cur.execute("COMMIT")
            return batch_id
        except duckdb.Error:
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise

    def checkpoint(self) -> bool:
        """Fold the write-ahead log into the file now; False when DuckDB declined (readers active)."""
        with self._write_lock:
            started = time.perf_counter()
            if self._checkpoint():
                self.checkpoint_seconds += time.perf_counter() - started
                return True
            return False

    def _wal_bytes(self) -> int:
        try:
            return os.stat(f"{self.path}.wal").st_size
        except OSError:
            return 0  # none yet, or a ledger in memory

    def _checkpoint(self) -> bool:
        """CHECKPOINT without the writer's memory limit (see WRITER_MEMORY); the caller holds the
        write lock. False when DuckDB declined: another transaction (a reader) is open; the next
        batch tries again."""
        cur = self.cursor()
        try:
            self._unlimited(cur)
            cur.execute("CHECKPOINT")
            return True
        except duckdb.Error as exc:
            log.debug("checkpoint skipped: %s", exc)
            return False
        finally:
            self._limited(cur)
            cur.close()

    def _limited(self, cur) -> None:
        try:
            cur.execute(f"SET memory_limit = '{WRITER_MEMORY}'")
        except duckdb.Error as exc:  # DuckDB could not give back enough yet: the next checkpoint will
            log.debug("memory limit kept lifted: %s", exc)

    def _unlimited(self, cur=None) -> None:
        # (SET, not RESET: DuckDB 1.5 reports its default after a RESET but keeps the old limit)
        try:
            (cur or self.con).execute(f"SET memory_limit = '{self._duckdb_memory}'")
        except duckdb.Error as exc:
            log.debug("memory limit not lifted: %s", exc)

    def _allocate_batch_id(self, cur) -> int:
        if self._next_batch_id is None:
            [(last,)] = cur.execute("SELECT coalesce(max(batch_id), 0) FROM batches").fetchall()
            self._next_batch_id = last + 1
        return self._next_batch_id


# -- what every ledger store shares: the rows of a batch, and what a writer reads to resume ---------


def insert_batch(cur, batch: BatchWrite, batch_id: int, *, rollup: bool, with_events: bool = True) -> None:
    """Every row of a batch, inserted inside the caller's transaction. ``rollup``: sum the balance
    moves into `balance_totals` every BALANCE_ROLLUP batches (a store whose batch ids grow in commit
    order: one writer). ``with_events`` False: all but the stored events (``LedgerStore.keeps_events``)."""
    if batch.events_stored and with_events:
        events = batch.events_table
        events = arrow_rows(batch.events, EVENT_COLUMNS) if events is None else events
        _append(cur, "events", events, batch_id)
        _note_kinds(cur, events, batch_id)
    if batch.quarantined:
        _append(cur, "quarantine", arrow_columns(batch.quarantine, QUARANTINE_COLUMNS), batch_id)
    for table, rows in batch.extra_tables.items():
        if rows.num_rows:
            _append(cur, table, rows, batch_id)
    entries = batch.extra_tables.get("entries")
    if entries is not None and entries.num_rows:
        _sum_moves(cur, entries, batch_id, rollup)
    if batch.positions:
        pos = pa.table({
            "topic": pa.array([k[0] for k in batch.positions], pa.string()),
            "partition": pa.array([k[1] for k in batch.positions], pa.int32()),
            "next_offset": pa.array(list(batch.positions.values()), pa.int64()),
        })
        _append(cur, "positions", pos, batch_id)
    cur.execute(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?)",
        [batch_id, batch.source, batch.events_read, batch.duplicates_skipped,
         batch.events_stored, batch.quarantined, batch.entries_posted],
    )


def stored_positions(cur) -> dict[tuple[str, int], int]:
    rows = cur.execute(
        """SELECT topic, partition, arg_max(next_offset, batch_id)
           FROM positions GROUP BY topic, partition"""
    ).fetchall()
    return {(t, p): o for t, p, o in rows}


def _states_apart(cur, batch: BatchWrite) -> BatchWrite:
    """The batch with each snapshot's bytes moved into its own table (SNAPSHOT_STATE), inside the
    caller's transaction; the `snapshots` row keeps an empty state."""
    snapshots = batch.extra_tables.get("snapshots")
    if snapshots is None:
        return batch
    for snapshot_digest, state in zip(snapshots.column("digest").to_pylist(), snapshots.column("state").to_pylist()):
        cur.execute(f'CREATE TABLE IF NOT EXISTS {SNAPSHOT_STATE}."{_digest_name(snapshot_digest)}" AS '
                    "SELECT ?::BLOB AS state", [state])
    emptied = snapshots.set_column(snapshots.schema.get_field_index("state"), "state",
                                   pa.array([b""] * snapshots.num_rows, pa.binary()))
    return replace(batch, extra_tables={**batch.extra_tables, "snapshots": emptied})


def _digest_name(snapshot_digest: str) -> str:
    if not (len(snapshot_digest) == 64 and all(c in "0123456789abcdef" for c in snapshot_digest)):
        raise ValueError(f"not a snapshot digest: {snapshot_digest!r}")
    return snapshot_digest


def snapshot_state(cur, snapshot_digest: str, state: bytes) -> bytes | None:
    """A snapshot's bytes: its row's own, or (empty there) those of its table in SNAPSHOT_STATE;
    None when that table is missing."""
    if state:
        return bytes(state)
    try:
        name = _digest_name(snapshot_digest)
    except ValueError:
        return None
    [(found,)] = cur.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                             [SNAPSHOT_STATE, name]).fetchall()
    if not found:
        return None
    rows = cur.execute(f'SELECT state FROM {SNAPSHOT_STATE}."{name}"').fetchall()
    return bytes(rows[0][0]) if len(rows) == 1 else None


def stored_snapshots(cur, topic: str, partition: int) -> Iterator[tuple[int, str, str | None, bytes | None]]:
    """A log's snapshots, latest first, each state read only when its turn comes (a state that
    cannot be found is None)."""
    rows = cur.execute(
        """SELECT s."offset", s.digest, c.snapshot_digest, s.state FROM snapshots s
           LEFT JOIN checkpoints c ON c.topic = s.topic AND c.partition = s.partition
                AND c.snapshot_digest = s.digest
           WHERE s.topic = ? AND s.partition = ? ORDER BY s."offset" DESC""", [topic, partition]).fetchall()
    for offset, snapshot_digest, recorded, state in rows:
        yield offset, snapshot_digest, recorded, snapshot_state(cur, snapshot_digest, state)


def stored_events(cur, topic: str, partition: int, after: int = -1, types: tuple[str, ...] | None = None):
    of_types = f"AND type IN ({', '.join('?' * len(types))})" if types else ""
    cur.execute(
        f"""SELECT "offset", event_id, avro FROM events WHERE topic = ? AND partition = ? AND "offset" > ? {of_types}
           ORDER BY "offset" """,
        [topic, partition, after, *(types or ())],
    )
    while True:
        rows = cur.fetchmany(10_000)
        if not rows:
            return
        yield from rows


def stored_logs(cur) -> list[tuple[str, int]]:
    rows = cur.execute("SELECT DISTINCT topic, partition FROM positions ORDER BY topic, partition").fetchall()
    return [(t, p) for t, p in rows]


def redaction_key_at(path: Path) -> bytes:
    """$REFLEDGER_REDACTION_KEY, else the key in ``path`` (outside the ledger's tables), created there
    once (mode 0600) when missing."""
    configured = os.environ.get(REDACTION_KEY_VARIABLE)
    if configured:
        return configured.encode("utf-8")
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it a moment ago
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    return key


def _note_kinds(cur, events: pa.Table, batch_id: int) -> None:
    """The orders and refunds, and the alliance events, of a batch, in their own small tables."""
    incoming = events  # noqa: F841 (DuckDB finds the Arrow table by this name)
    cur.execute(f"""INSERT INTO alliance_events SELECT event_id, type, topic, partition, "offset", {batch_id}
                    FROM incoming WHERE type NOT IN ('view', 'click', 'order', 'refund')""")
    cur.execute(f"""INSERT INTO order_events SELECT order_id, merchant_shop_id, type, topic, partition, "offset",
                    {batch_id} FROM incoming WHERE type IN ('order', 'refund')""")


def _sum_moves(cur, entries: pa.Table, batch_id: int, rollup: bool) -> None:
    incoming = entries  # noqa: F841 (DuckDB finds the Arrow table by this name)
    cur.execute(f"""INSERT INTO balance_moves SELECT shop_id, currency, account, sum(amount)::HUGEINT, {batch_id}
                    FROM incoming GROUP BY ALL""")
    if rollup and batch_id % BALANCE_ROLLUP == 0:  # the latest totals plus the moves since: a few thousand rows
        cur.execute(f"""INSERT INTO balance_totals
                        SELECT shop_id, currency, account, sum(amount), {batch_id} FROM (
                            SELECT * FROM balance_totals
                            WHERE batch_id = (SELECT coalesce(max(batch_id), -1) FROM balance_totals)
                            UNION ALL
                            SELECT * FROM balance_moves
                            WHERE batch_id > (SELECT coalesce(max(batch_id), -1) FROM balance_totals))
                        GROUP BY shop_id, currency, account""")


def _append(cur, table: str, rows: pa.Table, batch_id: int) -> None:
    names = ", ".join(f'"{n}"' for n in rows.column_names)
    incoming = rows  # DuckDB finds the Arrow table by this name in the calling frame  # noqa: F841
    cur.execute(f"INSERT INTO {table} ({names}, batch_id) SELECT {names}, {batch_id} FROM incoming")
