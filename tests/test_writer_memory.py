"""The ledger file's writer keeps to a bounded memory however long the history (issue: cost that
does not grow with history), and never loses the ability to write because a checkpoint needed more.

DuckDB caches the file's blocks up to its memory limit; the writer holds it to ``WRITER_MEMORY``
and folds the write-ahead log into the file itself once it passes ``CHECKPOINT_BYTES``, lifting
the limit for that moment (a checkpoint that runs out of memory leaves DuckDB refusing every
later write)."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa

from refledger.store import ledger_file
from refledger.store.ledger_file import BatchWrite, LedgerStore


def memory_limit(con) -> str:
    """The database's memory limit, read on a cursor of its own that is closed again (a result left
    open keeps its transaction open, and a checkpoint after a snapshot waits for every transaction
    to end, as a reader's query through the read socket does)."""
    cur = con.cursor()
    try:
        return cur.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        cur.close()


def as_duckdb_says(limit: str) -> str:
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{limit}'")
    return memory_limit(con)


def snapshot_batch(partition: int, offset: int, size: int) -> BatchWrite:
    """A batch carrying one fold snapshot of ``size`` bytes (random: it does not compress)."""
    state = os.urandom(size)
    table = pa.table({
        "topic": pa.array(["alliance"], pa.string()), "partition": pa.array([partition], pa.int32()),
        "offset": pa.array([offset], pa.int64()), "kind": pa.array(["events"], pa.string()),
        "entries": pa.array([0], pa.int64()), "head": pa.array(["0" * 64], pa.string()),
        "digest": pa.array([f"{offset:064d}"], pa.string()), "state": pa.array([state], pa.binary()),
    })
    return BatchWrite(source="test", extra_tables={"snapshots": table},
                      positions={("alliance", partition): offset + 1})


def wal_bytes(path) -> int:
    try:
        return os.stat(f"{path}.wal").st_size
    except FileNotFoundError:
        return 0


def test_the_writer_folds_its_log_into_the_file_as_it_goes_and_keeps_to_its_memory_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger_file, "CHECKPOINT_BYTES", 4 * 1024 * 1024)
    path = tmp_path / "ledger.duckdb"
    store = LedgerStore(path)
    try:
        assert memory_limit(store.con) == as_duckdb_says(ledger_file.WRITER_MEMORY)
        sizes = []
        for offset in range(12):
            store.write_batch(snapshot_batch(0, offset, 1024 * 1024))
            sizes.append(wal_bytes(path))
            assert memory_limit(store.con) == as_duckdb_says(ledger_file.WRITER_MEMORY)
        # the log never holds more than the threshold and one batch, and was emptied along the way
        assert max(sizes) < 4 * 1024 * 1024 + 2 * 1024 * 1024
        assert sizes.count(0) >= 2
    finally:
        store.close()
    again = LedgerStore(path, read_only=True)
    try:
        assert again.con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 12
    finally:
        again.close()


def test_a_snapshot_larger_than_the_writers_memory_limit_is_checkpointed_and_writing_goes_on(tmp_path, monkeypatch):
    """A partition whose fold state outgrew the writer's memory limit: its snapshot is written and
    folded into the file, and the batches after it are written too (under a limit DuckDB would have
    stopped taking writes for good at that checkpoint)."""
    monkeypatch.setattr(ledger_file, "WRITER_MEMORY", "24MB")
    monkeypatch.setattr(ledger_file, "CHECKPOINT_BYTES", 8 * 1024 * 1024)
    path = tmp_path / "ledger.duckdb"
    store = LedgerStore(path)
    try:
        store.write_batch(snapshot_batch(0, 0, 64 * 1024 * 1024))
        assert wal_bytes(path) == 0  # checkpointed at once
        for offset in range(1, 4):
            store.write_batch(snapshot_batch(0, offset, 1024))
        assert store.checkpoint()
    finally:
        store.close()
    again = LedgerStore(path, read_only=True)
    try:
        rows = again.con.execute("SELECT digest, state FROM snapshots").fetchall()
        sizes = [len(ledger_file.snapshot_state(again.con, d, inline)) for d, inline in rows]
        assert sorted(sizes) == [1024, 1024, 1024, 64 * 1024 * 1024]
        assert again.positions() == {("alliance", 0): 4}
    finally:
        again.close()


def test_a_reader_in_the_middle_of_a_query_neither_stops_the_writer_nor_sees_its_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger_file, "CHECKPOINT_BYTES", 2 * 1024 * 1024)
    path = tmp_path / "ledger.duckdb"
    store = LedgerStore(path)
    try:
        store.write_batch(snapshot_batch(0, 0, 1024))
        reader = store.cursor()
        reader.execute("BEGIN TRANSACTION")
        assert reader.execute("SELECT count(*) FROM snapshots").fetchone() == (1,)
        for offset in range(1, 5):
            store.write_batch(snapshot_batch(0, offset, 1024 * 1024))
        assert reader.execute("SELECT count(*) FROM snapshots").fetchone() == (1,)  # its own view
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM snapshots").fetchone() == (5,)
        reader.close()
        store.write_batch(snapshot_batch(0, 5, 1024))
        assert wal_bytes(path) < 2 * 1024 * 1024
        assert memory_limit(store.con) == as_duckdb_says(ledger_file.WRITER_MEMORY)
    finally:
        store.close()


def test_the_writer_spills_beside_the_ledger_never_into_the_directory_it_runs_from(tmp_path, monkeypatch):
    """An operator runs `consume` from their home directory: what DuckDB spills to disk while the
    writer holds to its memory limit goes beside the ledger file, not into ./.tmp."""
    monkeypatch.setattr(ledger_file, "WRITER_MEMORY", "24MB")
    monkeypatch.setattr(ledger_file, "CHECKPOINT_BYTES", 8 * 1024 * 1024)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)
    path = tmp_path / "ledgers" / "ledger.duckdb"
    path.parent.mkdir()
    store = LedgerStore(path)
    try:
        [(spills,)] = store.con.execute("SELECT current_setting('temp_directory')").fetchall()
        assert spills == f"{path}.tmp"
        store.write_batch(snapshot_batch(0, 0, 48 * 1024 * 1024))
    finally:
        store.close()
    assert list(home.iterdir()) == []


def test_a_new_ledger_stores_its_big_text_columns_with_the_compression_its_tables_name(tmp_path):
    """Shops, visitors, types and accounts as a dictionary; ids, digests, decisions and the Avro bytes
    as FSST: chosen once in the tables, not tried anew by DuckDB on every segment it writes (on a
    ledger this small it would store the Avro bytes, digests and decisions uncompressed, and
    subjects as a dictionary). A DuckLake's tables (Parquet) name none."""
    from refledger.consumers.batch import LogProcessor
    from refledger.consumers.ingest import ingest_files
    from refledger.ledger.fold import PartitionFold
    from refledger.store.lake import lake_ddl
    from tests.scenario_files import SCENARIOS

    path = tmp_path / "ledger.duckdb"
    store = LedgerStore(path)
    try:
        ingest_files([SCENARIOS / "baby-care.jsonl"], LogProcessor(store, PartitionFold, source="test"))
    finally:
        store.close()  # checkpoints: every column segment compressed
    con = duckdb.connect(str(path), read_only=True)
    try:
        methods = {}
        for table in ("events", "entries", "decisions"):
            for column, compression in con.execute(
                    f"SELECT column_name, compression FROM pragma_storage_info('{table}') WHERE segment_type "
                    "IN ('VARCHAR', 'BLOB') AND compression <> 'Constant'").fetchall():
                methods.setdefault((table, column), set()).add(compression)
    finally:
        con.close()
    assert methods[("events", "avro")] == {"FSST"}
    assert methods[("events", "shop_id")] == {"Dictionary"}
    assert methods[("entries", "hash")] == {"FSST"}
    assert methods[("entries", "subject")] == {"FSST"}  # DuckDB's own choice here: a dictionary
    assert methods[("events", "visitor_id")] == {"Dictionary"}
    assert methods[("entries", "account")] == {"Dictionary"}
    assert methods[("decisions", "decision")] == {"FSST"}
    assert "COMPRESSION" not in lake_ddl()
    assert "USING COMPRESSION" in ledger_file.SCHEMA_DDL + ledger_file.LEDGER_DDL


def events_row_groups(store) -> dict[int, set]:
    """The events table's row groups as they lie in the file: per group, its segments' blocks."""
    cur = store.cursor()
    try:
        rows = cur.execute("SELECT row_group_id, column_name, block_id, block_offset "
                           "FROM pragma_storage_info('events') WHERE persistent").fetchall()
    finally:
        cur.close()
    groups: dict[int, set] = {}
    for group, *where in rows:
        groups.setdefault(group, set()).add(tuple(where))
    return groups


def views(first: int, count: int) -> BatchWrite:
    """A batch of ``count`` stored views at offsets ``first`` on."""
    from refledger.store.columns import EventRow

    rows = [EventRow("alliance", 0, offset, f"v-{offset}", "view", 1_793_527_200_000 + offset, "li-kids",
                     f"visitor-{offset % 997}", "wang-bath", "li-kids", None, None, None, None, None,
                     offset.to_bytes(8, "big") * 6) for offset in range(first, first + count)]
    return BatchWrite(source="test", events=rows, positions={("alliance", 0): first + count})


def test_a_checkpoint_leaves_the_events_of_full_batches_where_they_lie(tmp_path):
    """A full batch's events (MAX_POLL_RECORDS) fill one row group and nearly all of a second, so a
    checkpoint after the next batch has nothing to merge and leaves them where they lie. (With row
    groups of 16,384 each batch left one of 3,616 rows, and merging those at every checkpoint, each
    column compressed again, was a tenth of `consume`'s CPU.)"""
    from refledger.consumers.batch import MAX_POLL_RECORDS

    store = LedgerStore(tmp_path / "ledger.duckdb")
    try:
        store.write_batch(views(0, MAX_POLL_RECORDS))
        assert store.checkpoint()
        first = events_row_groups(store)
        store.write_batch(views(MAX_POLL_RECORDS, MAX_POLL_RECORDS - 7))  # a few duplicates left out
        assert store.checkpoint()
        after = events_row_groups(store)
    finally:
        store.close()
    assert len(first) == 2 and len(after) == 4
    assert {g: after[g] for g in first} == first


def test_a_ledger_fed_a_trickle_keeps_its_events_in_few_row_groups(tmp_path):
    """A quiet alliance's consumer commits a few events at a time and checkpoints whenever it has
    nothing to read: the small row groups each checkpoint leaves are merged, so the file does not
    grow by a row group (a block of the file) per checkpoint."""
    store = LedgerStore(tmp_path / "ledger.duckdb")
    try:
        for batch in range(40):
            store.write_batch(views(batch * 3, 3))
            assert store.checkpoint()
        groups = events_row_groups(store)
    finally:
        store.close()
    assert len(groups) <= 3
