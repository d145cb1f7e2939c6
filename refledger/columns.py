"""Arrow column layouts of the rows refledger writes, and how rows become Arrow tables.

Apart from the store so that the consumer's fold process, which builds the
ledger rows' columns, needs no DuckDB.
"""

from __future__ import annotations

import pyarrow as pa

EVENT_COLUMNS = (
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("event_id", pa.string()),
    ("type", pa.string()),
    ("occurred_at", pa.timestamp("ms")),
    ("shop_id", pa.string()),
    ("visitor_id", pa.string()),
    ("merchant_shop_id", pa.string()),
    ("order_id", pa.string()),
    ("refund_id", pa.string()),
    ("amount_minor", pa.int64()),
    ("currency", pa.string()),
    ("kafka_timestamp", pa.int64()),
    ("content_hash", pa.binary()),
    ("avro", pa.binary()),
)

QUARANTINE_COLUMNS = (
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("position", pa.string()),
    ("event_id", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("stage", pa.string()),
    ("raw", pa.binary()),
    ("content_hash", pa.binary()),
)


def arrow_rows(rows: list[tuple], spec) -> pa.Table:
    """A table of ``rows`` (tuples in ``spec`` order; fields past the spec's columns are left out)."""
    return pa.table({name: pa.array(column, type=typ) for (name, typ), column in zip(spec, zip(*rows))})


def arrow_columns(columns: dict[str, list], spec) -> pa.Table:
    """A table of ``columns`` (lists by column name)."""
    return pa.table({name: pa.array(columns[name], type=typ) for name, typ in spec})
