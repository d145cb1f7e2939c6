"""Read queries over a ledger file. Each takes a DuckDB cursor and returns
plain JSON-able data, so the same function answers the CLI directly or
through a running consumer (see `refledger.store.readside`)."""

from __future__ import annotations

import json

from refledger.ledger.entries import CREDIT_ACCOUNTS as NEGATED, MONEY_ACCOUNTS, SWAP_ACCOUNTS
from refledger.ledger.subjects import subject_name
from refledger.store.columns import ENTRY_COLUMNS
from refledger.store.lake import ALIAS
from refledger.store.lake_files import data_files as lake_data_files


class QueryError(ValueError):
    """The question cannot be answered as asked (a malformed period, say): the asker's mistake,
    reported to them as it is, whether the query ran here or in a consumer."""

BALANCE_COLUMNS = ("shop_id", "currency") + MONEY_ACCOUNTS
SWAP_COLUMNS = ("shop_id", "currency") + SWAP_ACCOUNTS


def stats(cur) -> dict:
    """What the ledger holds, from per-batch counters and small tables (it answers in milliseconds
    however long the history). ``events`` counts the events the logs hold, an alliance event once
    however many partitions hold a copy of it; a re-delivery the fold did not skip (a conflicting
    one, or one dated in a closed period) is held again, beside its quarantine row, and counted."""
    [(read, skipped, stored, batches)] = cur.execute(
        """SELECT coalesce(sum(events_read), 0), coalesce(sum(duplicates_skipped), 0),
                  coalesce(sum(events_stored), 0), count(*) FROM batches"""
    ).fetchall()
    # an alliance event is one copy in each log that holds it; an id held twice in a log is two events
    # (a conflicting copy, or an id used again after a close, SPEC §9a)
    [(copies, alliance)] = cur.execute(
        """SELECT coalesce(sum(copies), 0), coalesce(sum(events), 0) FROM (
               SELECT sum(held) AS copies, max(held) AS events FROM (
                   SELECT event_id, topic, partition, count(*) AS held FROM alliance_events GROUP BY ALL)
               GROUP BY event_id)""").fetchall()
    events = stored - copies + alliance
    [(quarantined,)] = cur.execute("SELECT count(*) FROM quarantine").fetchall()
    [(entries,)] = cur.execute("SELECT count(*) FROM entries").fetchall()
    [(snapshots,)] = cur.execute("SELECT count(*) FROM snapshots").fetchall()
    positions = cur.execute(
        """SELECT topic, partition, arg_max(next_offset, batch_id) FROM positions
           GROUP BY topic, partition ORDER BY topic, partition"""
    ).fetchall()
    by_reason = cur.execute(
        "SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY reason"
    ).fetchall()
    # what the folds remembered after their last batch, per kind, summed over logs
    fold_state = cur.execute(
        """SELECT kind, sum(objects) FROM (
               SELECT kind, arg_max(objects, batch_id) AS objects FROM fold_state GROUP BY topic, partition, kind)
           GROUP BY kind ORDER BY kind"""
    ).fetchall()
    return {
        "events": int(events),
        "duplicates_skipped": int(skipped),
        "quarantined": int(quarantined),
        "positions": {f"{t}:{p}": int(o) for t, p, o in positions},
        "events_read": int(read),
        "events_stored": int(stored),
        "entries": int(entries),
        "snapshots": int(snapshots),
        "batches": int(batches),
        "quarantined_by_reason": {r: int(n) for r, n in by_reason},
        "fold_state": {k: int(n) for k, n in fold_state},
        "data_files": data_files(cur),
    }


def data_files(cur) -> int:
    """The files the ledger's rows are in: its Parquet files on a DuckLake (`compact` merges them), 1 for
    a DuckDB file."""
    [(lake,)] = cur.execute(
        "SELECT count(*) FROM duckdb_databases() WHERE database_name = ? AND type = 'ducklake'", [ALIAS]).fetchall()
    return lake_data_files(cur) if lake else 1


# The latest balance totals and the moves of every batch after them (store/ledger_file.py).
LATEST_BALANCES = """
CREATE OR REPLACE TEMP VIEW latest_balances AS
WITH last AS (SELECT coalesce(max(batch_id), -1) AS batch_id FROM balance_totals)
SELECT shop_id, currency, account, amount FROM balance_totals WHERE batch_id = (SELECT batch_id FROM last)
UNION ALL
SELECT shop_id, currency, account, amount FROM balance_moves WHERE batch_id > (SELECT batch_id FROM last)
"""


def balances(cur) -> list[dict]:
    """SPEC §11 balances: one object per (shop, currency), swap credits as CLICK rows. Summed from the
    latest balance totals and the batches' moves since (a few rows per batch), exactly: HUGEINT sums."""
    money_cols = ", ".join(
        f"{'-' if acc in NEGATED else ''}coalesce(sum(amount) FILTER (WHERE account = '{acc}'), 0)"
        for acc in MONEY_ACCOUNTS
    )
    cur.execute(LATEST_BALANCES)
    money = cur.execute(
        f"""SELECT shop_id, currency, {money_cols} FROM latest_balances
            WHERE currency <> 'CLICK' GROUP BY shop_id, currency ORDER BY shop_id, currency"""
    ).fetchall()
    swaps = cur.execute(
        """SELECT shop_id,
                  coalesce(sum(amount) FILTER (WHERE account = 'swap_given'), 0),
                  -coalesce(sum(amount) FILTER (WHERE account = 'swap_received'), 0)
           FROM latest_balances WHERE currency = 'CLICK' GROUP BY shop_id ORDER BY shop_id"""
    ).fetchall()
    rows = [dict(zip(BALANCE_COLUMNS, (shop, cur_, *map(int, nums)))) for shop, cur_, *nums in money]
    rows += [{"shop_id": s, "currency": "CLICK", "swap_given": int(g), "swap_received": int(r)}
             for s, g, r in swaps]
    return rows


def quarantine(cur, reason: str | None = None) -> list[dict]:
    sql = """SELECT event_id, reason, position, topic, partition, "offset", stage, detail
             FROM quarantine {where} ORDER BY batch_id, topic, partition, "offset" """
    params = []
    where = ""
    if reason:
        where, params = "WHERE reason = ?", [reason]
    rows = cur.execute(sql.format(where=where), params).fetchall()
    cols = ("event_id", "reason", "position", "topic", "partition", "offset", "stage", "detail")
    return [dict(zip(cols, row)) for row in rows]


def parked_refunds(cur) -> list[dict]:
    """Refunds folded before their order arrived (SPEC §7), still waiting."""
    rows = cur.execute(
        """SELECT r.topic, r.partition, r."offset", r.event_id, r.order_id, r.merchant_shop_id,
                  r.refund_id, r.amount_minor, r.currency, r.occurred_at
           FROM folded_events r
           WHERE r.type = 'refund'
             AND NOT EXISTS (SELECT 1 FROM folded_events o WHERE o.type = 'order' AND o.topic = r.topic
                             AND o.partition = r.partition AND o.order_id = r.order_id
                             AND o.merchant_shop_id = r.merchant_shop_id)
           ORDER BY r.topic, r.partition, r."offset" """
    ).fetchall()
    cols = ("topic", "partition", "offset", "event_id", "order_id", "merchant_shop_id", "refund_id",
            "amount_minor", "currency", "occurred_at")
    return [dict(zip(cols, (*row[:9], row[9].isoformat(timespec="milliseconds") + "Z"))) for row in rows]


ENTRY_FIELDS = ("seq", "entry_id", "txn_id", "event_id", "shop_id", "account", "counterparty_shop_id",
                "currency", "amount", "subject", "role", "agreement_id", "agreement_version", "model",
                "rate_bp", "click_event_id", "refund_id", "reason", "hash")


def _refund_status(cur, topic: str, partition: int, offset: int, event_id: str) -> str:
    """What became of a stored refund: its own quarantine row, or a late one given to it when its
    order came or the books closed. A late row names the refund by event id at a later position: it
    is this refund unless a refund of the same id that the fold took lies between (an id used again
    after a close). The events are looked at only when such a late row exists (rarely)."""
    rows = cur.execute("""SELECT late, reason, "offset" FROM quarantine
                          WHERE topic = ? AND partition = ? AND stage = 'fold'
                            AND ((NOT late AND "offset" = ?) OR (late AND event_id = ? AND "offset" > ?))""",
                       [topic, partition, offset, event_id, offset]).fetchall()
    reasons = []
    for late, reason, given_up_at in rows:
        if late and cur.execute(
                """SELECT count(*) FROM events r
                   WHERE r.topic = ? AND r.partition = ? AND r.type = 'refund' AND r.event_id = ?
                     AND r."offset" > ? AND r."offset" < ?
                     AND NOT EXISTS (SELECT 1 FROM quarantine o WHERE o.topic = r.topic
                                     AND o.partition = r.partition AND o.stage = 'fold' AND NOT o.late
                                     AND o."offset" = r."offset")""",
                [topic, partition, event_id, offset, given_up_at]).fetchone()[0]:
            continue  # another refund of this id waited and was given up
        reasons.append(reason)
    return f"quarantined: {min(reasons)}" if reasons else "applied"


def explain(cur, order_id: str, merchant_shop_id: str | None = None) -> list[dict]:
    """Everything the ledger knows about an order: event, decisions, entries, refunds. Every lookup
    goes through an index (order_events, decisions, entries by subject) or a batch id, so it answers
    at once however long the history."""
    from refledger.schemas import codec

    found = _by_key(cur, "order_events", "order_id", order_id, "merchant_shop_id, topic, partition",
                    'type, "offset", batch_id', '"offset"')
    decisions_of = _by_key(cur, "decisions", "order_id", order_id, "merchant_shop_id, topic, partition",
                           "decision", "batch_id, rowid")
    entries_of: dict[str, dict[tuple, list]] = {}
    result = []
    for (merchant, topic, partition), rows in sorted(found.items()):
        if merchant_shop_id and merchant != merchant_shop_id:
            continue
        at = [(offset, batch_id) for kind, offset, batch_id in rows if kind == "order"]
        if not at:
            continue  # refunds only: no order in this log (they wait for it; see `parked`)
        order_rows, refused = [], []
        for offset, batch_id in at:  # the order folded, and the copies the fold refused (SPEC §4)
            avro = _event_at(cur, topic, partition, offset, batch_id, "avro")[0]
            quarantined = cur.execute("""SELECT reason, detail, position FROM quarantine WHERE topic = ?
                                         AND partition = ? AND stage = 'fold' AND NOT late AND "offset" = ?""",
                                      [topic, partition, offset]).fetchall()
            if not quarantined:
                order_rows.append(avro)
                continue
            record = codec.decode(avro)
            [(reason, detail, position)] = quarantined
            refused.append({"event_id": record["event_id"], "occurred_at": codec.format_time(record["occurred_at"]),
                            "total_minor": record["order"]["total_minor"], "currency": record["order"]["currency"],
                            "reason": reason, "detail": detail, "position": position})
        decisions = [_readable_times(json.loads(d)) for (d,) in decisions_of.get((merchant, topic, partition), ())]
        if merchant not in entries_of:
            entries_of[merchant] = _by_key(cur, "entries", "subject", subject_name("order", merchant, order_id),
                                           "topic, partition", ", ".join(ENTRY_FIELDS), "seq")
        entries = entries_of[merchant].get((topic, partition), ())
        refunds = []
        for kind, offset, batch_id in rows:
            if kind != "refund":
                continue
            event_id, refund_id, amount, currency, occurred_at = _event_at(
                cur, topic, partition, offset, batch_id, "event_id, refund_id, amount_minor, currency, occurred_at")
            status = _refund_status(cur, topic, partition, offset, event_id)
            refunds.append({"event_id": event_id, "refund_id": refund_id, "amount_minor": amount, "currency": currency,
                            "occurred_at": occurred_at.isoformat(timespec="milliseconds") + "Z", "status": status})
        result.append({
            "order_id": order_id,
            "merchant_shop_id": merchant,
            "log": f"{topic}:{partition}",
            "order": [codec.record_to_json(codec.decode(avro)) for avro in order_rows],
            "refused": refused,
            "winning_click": decisions[-1].get("winning_click_event_id") if decisions else None,
            "decision": decisions[-1] if decisions else None,
            "history": decisions,
            "entries": [dict(zip(ENTRY_FIELDS, row)) for row in entries],
            "refunds": refunds,
        })
    return result


def _by_key(cur, table: str, key: str, value: str, group: str, columns: str, order: str) -> dict[tuple, list]:
    """Rows of a table by its indexed key, grouped by the ``group`` columns and sorted by ``order`` within
    each group. The key alone goes to DuckDB: with a second condition it scans the whole table rather
    than the index (seconds on a ledger of ten million entries)."""
    n_group, n_order = group.count(",") + 1, order.count(",") + 1
    rows = sorted(cur.execute(f"SELECT {group}, {order}, {columns} FROM {table} WHERE {key} = ?", [value]).fetchall(),
                  key=lambda row: row[:n_group + n_order])
    grouped: dict[tuple, list] = {}
    for row in rows:
        grouped.setdefault(row[:n_group], []).append(row[n_group + n_order:])
    return grouped


def _event_at(cur, topic: str, partition: int, offset: int, batch_id: int, columns: str) -> tuple:
    """Columns of the stored event at a position (the batch id lets DuckDB skip straight to it)."""
    return cur.execute(f"""SELECT {columns} FROM events WHERE batch_id = ? AND topic = ? AND partition = ?
                           AND "offset" = ?""", [batch_id, topic, partition, offset]).fetchone()


TIME_KEYS = frozenset({"occurred_at", "order_occurred_at", "effective_from", "period_end"})


def _readable_times(value):
    """Epoch-millisecond times in fold decisions, as the ISO text of SPEC §2."""
    from refledger.schemas import codec

    if isinstance(value, dict):
        return {k: codec.format_time(v) if k in TIME_KEYS and isinstance(v, int) else _readable_times(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_readable_times(v) for v in value]
    return value


def checkpoints(cur) -> list[dict]:
    """Chain heads recorded when each settlement and each close was folded, per log, oldest first:
    ``at`` is the settlement's period_end or the close's closed_through."""
    return [
        {"topic": t, "partition": int(p), "event_id": e, "kind": k, "at": at.isoformat(timespec="milliseconds") + "Z",
         "entries": int(n), "head": h}
        for t, p, e, k, at, n, h in cur.execute(
            """SELECT topic, partition, event_id, kind, "at", entries, head FROM checkpoints
               ORDER BY batch_id, topic, partition, rowid""").fetchall()
    ]


# -- the ledger as of one committed batch, page by page ----------------------------------------
#
# `replay` copies the live ledger before comparing with it. Every table is
# append-only and a batch commits whole, so the rows with batch_id <= B are
# one consistent cut however long the copy takes and whatever a running
# consumer commits meanwhile. Pages follow rowid (insertion order).

_ENTRY_COLUMNS = ", ".join(name for name, _type in ENTRY_COLUMNS)
_SNAPSHOT_SELECTS = {
    "entries": f"SELECT {_ENTRY_COLUMNS}, batch_id FROM entries",
    "events": """SELECT topic, partition, "offset", event_id, type, kafka_timestamp,
                        epoch_ms(occurred_at) AS occurred_ms, {value} AS avro, batch_id FROM events""",
    "quarantine": """SELECT topic, partition, "offset", position, event_id, reason, stage,
                            CASE WHEN stage = 'decode' THEN {value} END AS raw, batch_id FROM quarantine""",
}
# (bytes copied with_values, bytes copied otherwise): agreements are few and a what-if needs them
_SNAPSHOT_VALUES = {"events": ("avro", "CASE WHEN type = 'agreement' THEN avro END"),
                    "quarantine": ("raw", "NULL::BLOB")}


def snapshot_select(table: str, with_values: bool) -> str:
    """The SELECT that copies `table` (entries, events or quarantine) for replay; all bytes only when asked."""
    if table not in _SNAPSHOT_SELECTS:
        raise ValueError(f"no snapshot of table {table!r}")
    every, some = _SNAPSHOT_VALUES.get(table, ("NULL", "NULL"))
    return _SNAPSHOT_SELECTS[table].format(value=every if with_values else some)


def snapshot_head(cur) -> dict:
    """The latest committed batch and each log's next offset as of it."""
    [(batch_id,)] = cur.execute("SELECT coalesce(max(batch_id), 0) FROM batches").fetchall()
    positions = cur.execute(
        """SELECT topic, partition, arg_max(next_offset, batch_id) FROM positions WHERE batch_id <= ?
           GROUP BY topic, partition ORDER BY topic, partition""", [batch_id]).fetchall()
    return {"batch_id": int(batch_id), "positions": [[t, int(p), int(o)] for t, p, o in positions]}


def snapshot_page(cur, table: str, batch_id: int, after_rowid: int = -1, limit: int = 20_000,
                  with_values: bool = False) -> list[list]:
    """Up to `limit` rows of `table` written by batches <= batch_id, after `after_rowid`; rowid first."""
    sql = snapshot_select(table, with_values).replace("SELECT", "SELECT rowid,", 1)
    rows = cur.execute(f"{sql} WHERE batch_id <= ? AND rowid > ? ORDER BY rowid LIMIT ?",
                       [batch_id, after_rowid, limit]).fetchall()
    return [list(row) for row in rows]


def latest_snapshots(cur) -> list[dict]:
    """Each log's latest fold snapshot whose bytes match the digest its checkpoint recorded:
    where it was taken (the last offset folded into it, the entries then, the chain head) and its
    state, as hex."""
    from refledger.store.ledger_file import snapshot_state
    from refledger.store.snapshots import digest

    rows = cur.execute(
        """SELECT s.topic, s.partition, s."offset", s.entries, s.head, s.digest, s.state
           FROM snapshots s JOIN checkpoints c ON c.topic = s.topic AND c.partition = s.partition
                AND c.snapshot_digest = s.digest
           ORDER BY s.topic, s.partition, s."offset" DESC""").fetchall()
    found: dict[tuple[str, int], dict] = {}
    for t, p, o, n, h, d, inline in rows:
        if (t, p) in found:
            continue
        state = snapshot_state(cur, d, inline)
        if state is not None and digest(state) == d:
            found[(t, p)] = {"topic": t, "partition": int(p), "offset": int(o), "entries": int(n), "head": h,
                             "digest": d, "state": state.hex()}
    return list(found.values())


# The queries a ledger answers through a consumer's read socket (the command line adds the
# reports' queries, which live above the store).
QUERIES = (stats, balances, quarantine, parked_refunds, explain, checkpoints, snapshot_head, snapshot_page,
           latest_snapshots)
