"""The live ledger as of its latest committed batch, copied into a scratch DuckDB file.

A replay compares a rebuilt ledger with the live one, and may take minutes;
the live file may be held by a running `consume` meanwhile. So the live
ledger is read once, quickly, and copied: the rows of `entries`, `events`
(their stored bytes only when the stored events are the source),
`quarantine` and `positions` written by the batches up to the latest
committed batch B. Tables are append-only and a batch commits whole, so
"batch_id <= B" is one consistent cut, whatever the consumer commits while
the copy runs.

Two ways in, the same tables out (`live_entries`, `live_events`,
`live_quarantine`, `live_positions`):

* no process holds the file: it is opened read-only and each table streams
  across as Arrow batches;
* `consume` holds it: the same SELECTs run in the consumer, page by page, over
  its read socket (`refledger.store.readside`, queries `snapshot_head` and
  `snapshot_page`). While a consumer starts or stops, reads are retried for
  up to `wait` seconds before the ledger is reported unreadable.

Nothing here writes to the live ledger.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from refledger.store.columns import ENTRY_COLUMNS
from refledger.store.lake import is_lake, reading
from refledger.store.ledger_file import StoreError
from refledger.store import queries
from refledger.replay.history import ReplayError

PAGE_ROWS = 20_000

ENTRY_SCHEMA = pa.schema(list(ENTRY_COLUMNS) + [("batch_id", pa.int64())])
EVENT_SCHEMA = pa.schema([
    ("topic", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()), ("event_id", pa.string()),
    ("type", pa.string()), ("kafka_timestamp", pa.int64()), ("occurred_ms", pa.int64()), ("avro", pa.binary()),
    ("batch_id", pa.int64()),
])
QUARANTINE_SCHEMA = pa.schema([
    ("topic", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()), ("position", pa.string()),
    ("event_id", pa.string()), ("reason", pa.string()), ("stage", pa.string()), ("raw", pa.binary()),
    ("batch_id", pa.int64()),
])
# (live table, copy, schema of the copy)
TABLES = (("entries", "live_entries", ENTRY_SCHEMA), ("events", "live_events", EVENT_SCHEMA),
          ("quarantine", "live_quarantine", QUARANTINE_SCHEMA))
POSITION_SCHEMA = pa.schema([("topic", pa.string()), ("partition", pa.int32()), ("next_offset", pa.int64())])


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What was copied, from where, as of which batch."""

    ledger: str
    batch_id: int
    positions: tuple[tuple[str, int, int], ...]   # (topic, partition, next offset)
    via: str                                      # "file", "lake" or "consumer" (its read socket)
    seconds: float

    def upto(self) -> dict[tuple[str, int], int]:
        return {(t, p): o for t, p, o in self.positions}

    def topics(self) -> list[str]:
        return sorted({t for t, _, _ in self.positions})


def take_snapshot(db: str | Path, con: duckdb.DuckDBPyConnection, *, with_values: bool,
                  wait: float = 30.0) -> SnapshotInfo:
    """Copy the live ledger at `db` into the tables of `con` (a scratch database)."""
    started = time.monotonic()
    lake = is_lake(db)
    if not lake and not Path(db).is_file():
        raise ReplayError(f"no ledger at {db}")
    for _, target, schema in TABLES:
        _create(con, target, schema)
    try:
        # a lake is read in one snapshot, whatever its consumers commit meanwhile
        live = reading(db) if lake else duckdb.connect(str(db), read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise ReplayError(f"cannot open ledger {db}: {exc}") from exc
        head, via = _copy_through_socket(db, con, with_values, wait), "consumer"
    except (duckdb.Error, StoreError) as exc:
        raise ReplayError(f"cannot open ledger {db}: {exc}") from exc
    else:
        try:
            head, via = _copy_from_file(live, con, with_values), "lake" if lake else "file"
        except duckdb.Error as exc:
            raise ReplayError(f"cannot read ledger {db}: {exc}") from exc
        finally:
            live.close()
    positions = tuple((t, int(p), int(o)) for t, p, o in head["positions"])
    _create(con, "live_positions", POSITION_SCHEMA)
    _insert(con, "live_positions", pa.table({
        "topic": [t for t, _, _ in positions], "partition": [p for _, p, _ in positions],
        "next_offset": [o for _, _, o in positions]}, schema=POSITION_SCHEMA))
    return SnapshotInfo(str(db), int(head["batch_id"]), positions, via, time.monotonic() - started)


def first_offsets(con) -> dict[tuple[str, int], int]:
    """The first offset the live ledger holds of each log (stored or quarantined before the fold)."""
    rows = con.execute(
        """SELECT topic, partition, min("offset") FROM (
               SELECT topic, partition, "offset" FROM live_events
               UNION ALL SELECT topic, partition, "offset" FROM live_quarantine WHERE stage = 'decode')
           GROUP BY ALL""").fetchall()
    return {(t, p): o for t, p, o in rows}


def _create(con, table: str, schema: pa.Schema) -> None:
    empty = schema.empty_table()
    con.register("empty_copy", empty)
    try:
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM empty_copy")
    finally:
        con.unregister("empty_copy")


def _insert(con, table: str, rows) -> None:
    con.register("incoming_copy", rows)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM incoming_copy")
    finally:
        con.unregister("incoming_copy")


def _copy_from_file(live, con, with_values: bool) -> dict:
    head = queries.snapshot_head(live.cursor())
    for table, target, _schema in TABLES:
        cur = live.cursor()
        try:
            # (`execute`, not `sql(..., params=)`: DuckDB runs the latter at once and then reads its
            # result through a query it spells out value by value: 8.7 against 0.5 s of CPU on 1M events)
            reader = cur.execute(f"{queries.snapshot_select(table, with_values)} WHERE batch_id <= ?",
                                 [head["batch_id"]]).to_arrow_reader(100_000)
            _insert(con, target, reader)
        finally:
            cur.close()
    return head


def _copy_through_socket(db, con, with_values: bool, wait: float) -> dict:
    from refledger.store.readside import ReadError, query

    try:
        head = query(db, queries.snapshot_head, wait=wait)
        for table, target, schema in TABLES:
            after = -1
            while True:
                rows = query(db, queries.snapshot_page, wait=wait, table=table, batch_id=head["batch_id"],
                             after_rowid=after, limit=PAGE_ROWS, with_values=with_values)
                if not rows:
                    break
                after = rows[-1][0]
                _insert(con, target, _page_table(rows, schema))
    except ReadError as exc:
        raise ReplayError(f"cannot read ledger {db} while another process holds it: {exc}") from exc
    return head


def _page_table(rows: list[list], schema: pa.Schema) -> pa.Table:
    """A page of JSON rows (rowid first; bytes as hex, as the read socket sends them) as Arrow."""
    columns = []
    for i, f in enumerate(schema, start=1):
        values = [row[i] for row in rows]
        if pa.types.is_binary(f.type):
            values = [None if v is None else bytes.fromhex(v) for v in values]
        columns.append(pa.array(values, type=f.type))
    return pa.table(columns, schema=schema)
