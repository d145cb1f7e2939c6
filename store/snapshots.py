"""Fold snapshots as bytes: a small, versioned container of Arrow IPC streams, and its digest.

``refledger.ledger.snapshot`` turns a fold's state into rows of plain values
per kind; this module turns those rows into one blob that is safe to load
(Arrow, with its schema, never pickle) and back:

    b"RLSNAP" + format (1 byte) + for each kind of ``KINDS``, in order:
        4-byte big-endian length + an Arrow IPC stream of that kind's table,
        its buffers compressed with Zstandard (Arrow's own IPC compression)

The blob's SHA-256 is the snapshot's digest: it goes into the partition's
checkpoint row, and a snapshot whose bytes no longer match it is never
loaded (the fold is rebuilt from the events instead). Apart from DuckDB so
the fold process, which takes snapshots, needs none.
"""

from __future__ import annotations

import hashlib
import io
import struct

import pyarrow as pa

from refledger.ledger.snapshot import KINDS

MAGIC = b"RLSNAP"
# 3: the tables' buffers compressed with Zstandard, a third of the bytes when the state held ids (a
#    partition's state at 240 days: 7.0 MB against 18.7 MB; digests compress less), so a snapshot costs the ledger file and the writer's memory
#    less; 2: uncompressed, still read (the same tables; Arrow decompresses as it reads);
#    1 had 64-bit payable amounts, now 38-digit decimals.
CONTAINER = 3
# how each container this version reads writes its streams
_IPC_OPTIONS = {2: pa.ipc.IpcWriteOptions(), 3: pa.ipc.IpcWriteOptions(compression="zstd")}

_INTS = frozenset({
    "format", "closed_through", "journal_seq", "parked_seq", "occurred_at", "version", "effective_from",
    "rate_bp", "amount_minor", "attribution_window_days", "hold_days", "net", "t_commission",
    "t_agreement_version", "t_rate_bp", "t_hold_days", "total_minor", "refunded", "applied", "line",
    "quantity", "unit_price_minor", "seq", "dated_before",
})
_SUMS = frozenset({"amount"})  # payable per pair: a sum over any number of events, past 2^63 (SPEC §2)
_BOOLS = frozenset({"settled", "pending", "valid", "require_signatures"})
_BYTES = frozenset({"content", "id_digest", "order_digest"})


class SnapshotFileError(ValueError):
    """Bytes that are not a snapshot this version reads."""


def _type(column: str) -> pa.DataType:
    if column in _INTS:
        return pa.int64()
    if column in _SUMS:
        return pa.decimal128(38, 0)  # whole numbers of up to 38 digits, like DuckDB's HUGEINT
    if column in _BOOLS:
        return pa.bool_()
    if column in _BYTES:
        return pa.binary()
    return pa.string()


SCHEMAS = {kind: pa.schema([(c, _type(c)) for c in columns]) for kind, columns in KINDS.items()}


def encode_snapshot(rows: dict[str, list[tuple]], container: int = CONTAINER) -> bytes:
    """The blob of a fold's exported rows (``container``: an older one this version still reads)."""
    options = _IPC_OPTIONS[container]
    out = io.BytesIO()
    out.write(MAGIC + bytes([container]))
    for kind, schema in SCHEMAS.items():
        table = pa.table({name: pa.array([row[i] for row in rows[kind]], type=field.type)
                          for i, (name, field) in enumerate(zip(schema.names, schema))}, schema=schema)
        stream = io.BytesIO()
        with pa.ipc.new_stream(stream, schema, options=options) as writer:
            writer.write_table(table)
        data = stream.getvalue()
        out.write(struct.pack(">I", len(data)))
        out.write(data)
    return out.getvalue()


def decode_snapshot(blob: bytes) -> dict[str, list[tuple]]:
    """The rows of a blob made by ``encode_snapshot``."""
    if blob[:len(MAGIC)] != MAGIC or len(blob) <= len(MAGIC) or blob[len(MAGIC)] not in _IPC_OPTIONS:
        raise SnapshotFileError("not a refledger fold snapshot of this version")
    rows: dict[str, list[tuple]] = {}
    i = len(MAGIC) + 1
    try:
        for kind, schema in SCHEMAS.items():
            (n,) = struct.unpack(">I", blob[i:i + 4])
            table = pa.ipc.open_stream(blob[i + 4:i + 4 + n]).read_all()
            if table.schema != schema:
                raise SnapshotFileError(f"the {kind} table of this snapshot has another layout")
            columns = [[None if v is None else int(v) for v in column.to_pylist()] if name in _SUMS
                       else column.to_pylist() for name, column in zip(table.column_names, table.columns)]
            rows[kind] = list(zip(*columns)) if table.num_rows else []
            i += 4 + n
    except (struct.error, pa.ArrowInvalid) as exc:
        raise SnapshotFileError(f"unreadable snapshot: {exc}") from exc
    if i != len(blob):
        raise SnapshotFileError("bytes after the last table of the snapshot")
    return rows


def digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()
