"""Arrow column layouts of the rows refledger writes, and how rows become Arrow tables.

Apart from the DuckDB file so that the consumer's fold process, which builds
the ledger rows' columns, needs no DuckDB.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import pyarrow as pa


def _escaped_sql(column: str) -> str:
    """SQL for a part of a subject's name: '%' and ':' percent-escaped (``ledger.subjects``)."""
    return f"replace(replace({column}, '%', '%25'), ':', '%3A')"


def subject_sql(kind: str, merchant: str, key: str) -> str:
    """SQL for the subject name of a merchant's order, payout or adjustment from two columns
    (``ledger.subjects.subject_name``)."""
    return f"'{kind}:' || {_escaped_sql(merchant)} || ':' || {_escaped_sql(key)}"


def click_subject_sql(event_id: str, occurred_at: str) -> str:
    """SQL for the subject name of a click that earns by itself, from its event id and its time
    (a TIMESTAMP column): ``ledger.subjects.click_subject_name``."""
    return f"'click:' || {_escaped_sql(event_id)} || ':' || CAST(epoch_ms({occurred_at}) AS VARCHAR)"


class EventRow(NamedTuple):
    """One row of the `events` table: a stored event, its log position, the fields reports and
    queries filter on, and its canonical Avro bytes (the source of truth). Built with
    ``tuple.__new__`` on the consumer's hot path."""

    topic: str
    partition: int
    offset: int
    event_id: str
    type: str
    occurred_at: int              # epoch milliseconds (UTC)
    shop_id: str
    visitor_id: str | None
    merchant_shop_id: str | None
    referrer_shop_id: str | None  # views, clicks, payouts, adjustments
    order_id: str | None
    refund_id: str | None
    amount_minor: int | None      # an order's total, a refund's, payout's or adjustment's amount
    currency: str | None
    kafka_timestamp: int | None
    avro: bytes


_EVENT_TYPES = {"partition": pa.int32(), "offset": pa.int64(), "occurred_at": pa.timestamp("ms"),
                "amount_minor": pa.int64(), "kafka_timestamp": pa.int64(), "avro": pa.binary()}
EVENT_COLUMNS = tuple((name, _EVENT_TYPES.get(name, pa.string())) for name in EventRow._fields)

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
    ("late", pa.bool_()),
)


ENTRY_COLUMNS = (
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("seq", pa.int64()),
    ("entry_id", pa.string()),
    ("txn_id", pa.string()),
    ("event_id", pa.string()),
    ("shop_id", pa.string()),
    ("account", pa.string()),
    ("counterparty_shop_id", pa.string()),
    ("currency", pa.string()),
    ("amount", pa.int64()),
    ("subject", pa.string()),
    ("role", pa.string()),
    ("agreement_id", pa.string()),
    ("agreement_version", pa.int64()),
    ("model", pa.string()),
    ("rate_bp", pa.int64()),
    ("click_event_id", pa.string()),
    ("refund_id", pa.string()),
    ("reason", pa.string()),
    ("prev_hash", pa.string()),
    ("hash", pa.string()),
    ("event_offset", pa.int64()),  # the position of the event that caused the entry, in its log
)

DECISION_COLUMNS = (
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("event_id", pa.string()),
    ("merchant_shop_id", pa.string()),
    ("order_id", pa.string()),
    ("decision", pa.string()),
)

CHECKPOINT_COLUMNS = (
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("event_id", pa.string()),
    ("kind", pa.string()),
    ("at", pa.timestamp("ms")),
    ("entries", pa.int64()),
    ("head", pa.string()),
    ("snapshot_digest", pa.string()),
)

SNAPSHOT_COLUMNS = (
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),      # the last event folded into it
    ("kind", pa.string()),       # close | periodic
    ("entries", pa.int64()),
    ("head", pa.string()),
    ("digest", pa.string()),
    ("state", pa.binary()),
)

FOLD_STATE_COLUMNS = (
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("kind", pa.string()),
    ("objects", pa.int64()),
)


def arrow_rows(rows: list[tuple], spec) -> pa.Table:
    """A table of ``rows`` (tuples in ``spec`` order; fields past the spec's columns are left out).

    Rows of exactly the spec's columns (the events and entries of every batch) are read by Arrow in
    one pass, as the values of a struct column: a third of the time of turning the rows into
    columns first (``zip(*rows)``, 0.75 µs an event of the consumer's writer on a batch of
    20,000), all of it under the interpreter lock."""
    if rows and len(rows[0]) == len(spec):
        try:
            return pa.Table.from_struct_array(pa.array(rows, type=_struct_of(spec)))
        except pa.ArrowException:  # a row of another width or kind further on: column by column, as below
            pass
    return pa.table({name: pa.array(column, type=typ) for (name, typ), column in zip(spec, zip(*rows))})


@cache
def _struct_of(spec) -> pa.StructType:
    return pa.struct([pa.field(name, typ) for name, typ in spec])


def arrow_columns(columns: dict[str, list], spec) -> pa.Table:
    """A table of ``columns`` (lists by column name)."""
    return pa.table({name: pa.array(columns[name], type=typ) for name, typ in spec})
