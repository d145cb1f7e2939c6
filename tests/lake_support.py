"""Helpers for tests that run several `refledger consume` processes into one ledger on DuckLake."""

from __future__ import annotations

import subprocess
import sys
import time

from refledger.store import queries
from refledger.store.lake import BATCHES_PER_EPOCH, LakeLedger
from refledger.store.readside import ReadError, query


def consume_process(bootstrap: str, topic: str, db, group: str, log, until_idle: float = 8,
                    compact_every: float = 0, batch_records: int | None = None) -> subprocess.Popen:
    """`refledger consume` of ``topic`` into ``db`` (a DuckDB file or a lake) as its own process."""
    args = [sys.executable, "-m", "refledger", "consume", "--bootstrap-servers", bootstrap, "--topic", topic,
            "--group", group, "--until-idle", str(until_idle), "--format", "json", "--db", str(db)]
    if batch_records is not None:
        args += ["--batch-records", str(batch_records)]
    if isinstance(db, LakeLedger):
        args += ["--data-path", db.data_path, "--compact-every", str(compact_every)]
    proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    proc.started_at = time.monotonic()
    return proc


def events_read(db) -> int:
    try:
        return query(db, queries.stats)["events_read"]
    except ReadError:
        return 0


def entry_rows(cur) -> list[list]:
    """Every entry, every column but the batch that wrote it, per log in chain order."""
    return [list(row) for row in cur.execute(
        """SELECT topic, partition, seq, entry_id, txn_id, event_id, shop_id, account, counterparty_shop_id,
                  currency, amount, subject, role, agreement_id, agreement_version, model, rate_bp,
                  click_event_id, refund_id, reason, prev_hash, hash
           FROM entries ORDER BY topic, partition, seq""").fetchall()]


def chain_heads(cur) -> dict:
    return {f"{t}:{p}": [int(n), h] for t, p, n, h in cur.execute(
        "SELECT topic, partition, count(*), arg_max(hash, seq) FROM entries GROUP BY ALL ORDER BY ALL").fetchall()}


def ledger_facts(db) -> dict:
    """What a member or an auditor checks: balances, entries, chain heads per log, quarantine and the
    counts of `stats` (but the number of batches and files, which depend on how polls fell)."""
    stats = query(db, queries.stats)
    for how_written in ("batches", "data_files"):
        stats.pop(how_written)
    quarantined = sorted(query(db, queries.quarantine), key=lambda r: (r["topic"], r["partition"], r["offset"],
                                                                        r["reason"]))
    return {"balances": query(db, queries.balances), "stats": stats, "quarantine": quarantined,
            "heads": query(db, chain_heads), "entries": query(db, entry_rows)}


def epochs_in_commit_order(cur) -> dict[str, list[int]]:
    """Per log, the claim epoch of each batch that wrote its position, in the order they committed."""
    rows = cur.execute('SELECT topic, partition, batch_id FROM positions ORDER BY rowid').fetchall()
    out: dict[str, list[int]] = {}
    for topic, partition, batch_id in rows:
        out.setdefault(f"{topic}:{partition}", []).append(batch_id // BATCHES_PER_EPOCH)
    return out
