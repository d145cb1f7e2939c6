"""Boundary stories told once and checked twice: by the fold and by the SQL recomputation.

A boundary test writes a short story in the alliance's words (``li-kids refers
v1 to wang-bath …``) as event records, then says what each shop must have
earned and owed. ``both_ways(records)`` folds the records in process with
``PartitionFold`` and also ingests them into a DuckDB ledger (the same path as
``refledger ingest``), where ``replay.bulk`` recomputes every shop's totals
from the stored events with its own SQL. ``Outcome.totals(...)`` then asserts
the same expected numbers from both; neither implementation is compared with
itself, and a rule broken in either one fails the test.

The SQL recomputation gives totals (earned, owed, received, paid out; swap
credits given and received); which side of the hold an amount sits on
(pending or payable) is the fold's alone (see replay/bulk.py), so
``Outcome.fold_split`` checks that part against the fold only.

Adding a boundary for a new rule is one test function: build the story with
``Story`` (or any records), call ``both_ways`` and state the totals.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from refledger.consumers.batch import LogProcessor
from refledger.consumers.ingest import ingest_files
from refledger.ledger.balances import balances
from refledger.ledger.fold import FoldOutcome, PartitionFold
from refledger.replay.bulk import compare
from refledger.schemas.event_files import write_event_file
from refledger.store.ledger_file import LedgerStore
from tests.ledger_support import Alliance

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

EARNED_ACCOUNTS = ("earned_pending", "earned_payable", "received")
OWED_ACCOUNTS = ("owed_pending", "owed_payable", "paid_out")


def t(iso: str) -> int:
    """'2026-11-01T10:00' (UTC) as epoch milliseconds, in exact integer arithmetic."""
    dt = datetime.fromisoformat(iso.rstrip("Z")).replace(tzinfo=timezone.utc)
    return (dt - EPOCH) // timedelta(milliseconds=1)


def text(millis: int) -> str:
    """Epoch milliseconds as the ISO text the event builders take."""
    return (EPOCH + timedelta(milliseconds=millis)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


class Story(Alliance):
    """The event builders of ``tests.ledger_support.Alliance`` with times as epoch milliseconds
    (so a boundary can be one millisecond on either side), members made active up front."""

    def __init__(self, alliance_id: str = "baby-care", members=("li-kids", "wang-bath", "zhang-toys", "zhao-photo"),
                 joined: int | None = None):
        super().__init__(alliance_id)
        joined = t("2026-10-01T00:00") if joined is None else joined
        self.head = [self.member_at(joined, shop, event_id=f"m-{shop}") for shop in members]

    @staticmethod
    def _exact(record: dict, occurred_at: int, **payload_times: int) -> dict:
        record["occurred_at"] = occurred_at
        record[record["type"]].update(payload_times)
        return record

    def member_at(self, at: int, shop: str, status: str = "active", event_id=None) -> dict:
        return self._exact(self.member(shop, text(at), status, event_id), at)

    def agreement_at(self, effective_from: int, *, published: int | None = None, **terms) -> dict:
        published = effective_from if published is None else published
        record = self.agreement(text(published), effective_from=text(effective_from), **terms)
        return self._exact(record, published, effective_from=effective_from)

    def click_at(self, at: int, referrer: str, merchant: str, visitor: str, event_id=None) -> dict:
        return self._exact(self.click(text(at), referrer, merchant, visitor, event_id), at)

    def order_at(self, at: int, merchant: str, visitor: str, order_id: str, lines, **kw) -> dict:
        return self._exact(self.order(text(at), merchant, visitor, order_id, lines, **kw), at)

    def refund_at(self, at: int, merchant: str, order_id: str, amount: int, **kw) -> dict:
        return self._exact(self.refund(text(at), merchant, order_id, amount, **kw), at)

    def settlement_at(self, at: int, period_end: int, **kw) -> dict:
        return self._exact(self.settlement(text(at), text(period_end), **kw), at, period_end=period_end)


@dataclass
class Outcome:
    """What the fold posted and what SQL recomputed for one story."""

    fold_rows: list[dict]                   # balances(entries) of the in-process fold
    fold_outcomes: list[FoldOutcome]
    sql_rows: list[dict]                    # replay.bulk's totals from the DuckDB ledger
    sql_problems: list[tuple[str, str]]     # replay.bulk.compare: the stored fold against SQL

    def _fold_totals(self, currency: str) -> dict[str, tuple[int, int]]:
        found = {}
        for row in self.fold_rows:
            if row["currency"] != currency:
                continue
            if currency == "CLICK":
                found[row["shop_id"]] = (row["swap_given"], row["swap_received"])
            else:
                found[row["shop_id"]] = (sum(row[k] for k in EARNED_ACCOUNTS), sum(row[k] for k in OWED_ACCOUNTS))
        return {shop: v for shop, v in found.items() if v != (0, 0)}

    def _sql_totals(self, currency: str) -> dict[str, tuple[int, int]]:
        found = {r["shop_id"]: (r["earned"], r["owed"]) for r in self.sql_rows if r["currency"] == currency}
        return {shop: v for shop, v in found.items() if v != (0, 0)}

    def totals(self, currency: str = "CNY", *, earned: dict[str, int] | None = None,
               owed: dict[str, int] | None = None) -> "Outcome":
        """Every shop's total earned and owed in ``currency`` is exactly this (shops not named: 0),
        by the fold and by SQL alike. For ``CLICK``, earned is swap credits given, owed received."""
        earned, owed = earned or {}, owed or {}
        shops = set(earned) | set(owed)
        expected = {s: (earned.get(s, 0), owed.get(s, 0)) for s in shops if (earned.get(s, 0), owed.get(s, 0)) != (0, 0)}
        assert self._fold_totals(currency) == expected, f"the fold's {currency} totals"
        assert self._sql_totals(currency) == expected, f"the SQL recomputation's {currency} totals"
        assert self.sql_problems == [], self.sql_problems
        return self

    def nothing_earned(self, currency: str = "CNY") -> "Outcome":
        return self.totals(currency)

    def fold_split(self, shop: str, currency: str = "CNY", **accounts: int) -> "Outcome":
        """The fold's pending/payable split for one shop (SQL leaves the split to the fold)."""
        row = next((r for r in self.fold_rows if r["shop_id"] == shop and r["currency"] == currency), {})
        assert {k: row.get(k, 0) for k in accounts} == accounts, f"{shop} {currency}"
        return self

    def folded_cleanly(self) -> "Outcome":
        """No event of the story was quarantined (a boundary story uses only good events)."""
        assert [o.quarantine for o in self.fold_outcomes if o.quarantine] == []
        return self


def fold_in_process(records: list[dict]) -> tuple[list[dict], list[FoldOutcome]]:
    fold = PartitionFold()
    outcomes = [fold.apply(r) for r in records]
    return balances([e for o in outcomes for e in o.entries]), outcomes


def ingested(records, workdir: Path, name: str = "story") -> Path:
    """The records written to an event file and ingested into a fresh DuckDB ledger; its path."""
    events, db = workdir / f"{name}.jsonl", workdir / f"{name}.duckdb"
    write_event_file(records, events)
    store = LedgerStore(db)
    processor = LogProcessor(store, PartitionFold, source="ingest")
    try:
        ingest_files([events], processor)
    finally:
        processor.close()
        store.close()
    return db


def recompute_in_sql(records: list[dict], workdir: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """Ingest the records into a fresh DuckDB ledger, then recompute every total from its events."""
    db = ingested(records, workdir)
    con = duckdb.connect(str(db), read_only=True)
    try:
        problems, result = compare(con)
    finally:
        con.close()
    return result.balances, problems


def both_ways(records: list[dict]) -> Outcome:
    """Fold the story in process and recompute it by SQL from a DuckDB ledger built by ingesting it."""
    fold_rows, outcomes = fold_in_process(records)
    with tempfile.TemporaryDirectory(prefix="boundary-") as tmp:
        sql_rows, problems = recompute_in_sql(records, Path(tmp))
    return Outcome(fold_rows, outcomes, sql_rows, problems).folded_cleanly()
