"""Fold outcomes as Arrow columns for the `entries` and `decisions` tables."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass

import orjson
import pyarrow as pa
from refledger.store.columns import (
    CHECKPOINT_COLUMNS, DECISION_COLUMNS, ENTRY_COLUMNS, FOLD_STATE_COLUMNS, SNAPSHOT_COLUMNS, arrow_columns,
    arrow_rows,
)

def _jsonable(value):
    to_dict = getattr(value, "to_dict", None)
    if to_dict is not None:
        return to_dict()
    if is_dataclass(value):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


class LedgerRows:
    """Collects the entries and decisions of one batch, column by column."""

    def __init__(self):
        self.entries: list[tuple] = []  # rows in ENTRY_COLUMNS order
        self.decisions = {name: [] for name, _ in DECISION_COLUMNS}
        self.checkpoints = {name: [] for name, _ in CHECKPOINT_COLUMNS}
        self.fold_state = {name: [] for name, _ in FOLD_STATE_COLUMNS}
        self.snapshots = {name: [] for name, _ in SNAPSHOT_COLUMNS}
        self.entry_count = 0

    def checkpoint(self, topic: str, partition: int, event_id: str, kind: str, at: int, entries: int,
                   head: str, snapshot_digest: str | None = None) -> None:
        """The chain head of a partition right after it folded a settlement or a close (``at``: the
        settlement's period_end, the close's closed_through), or took a snapshot."""
        for name, value in zip(self.checkpoints, (topic, partition, event_id, kind, at, entries, head,
                                                  snapshot_digest)):
            self.checkpoints[name].append(value)

    def snapshot(self, topic: str, partition: int, offset: int, kind: str, entries: int, head: str, digest: str,
                 state: bytes) -> None:
        """A snapshot of a partition's fold, taken after the event at ``offset``."""
        for name, value in zip(self.snapshots, (topic, partition, offset, kind, entries, head, digest, state)):
            self.snapshots[name].append(value)

    def state(self, topic: str, partition: int, sizes: dict[str, int]) -> None:
        """How much a partition's fold remembers, per kind, after this batch."""
        for kind, objects in sizes.items():
            for name, value in zip(self.fold_state, (topic, partition, kind, objects)):
                self.fold_state[name].append(value)

    def add(self, topic: str, partition: int, offset: int, outcome) -> None:
        """What folding the event at ``offset`` of the log posted and decided."""
        add_entry = self.entries.append
        for entry in outcome.entries:  # an Entry: entry_id, txn_id, seq, event_id, … (seq goes first here)
            add_entry((topic, partition, entry[2], entry[0], entry[1], *entry[3:], offset))
        self.entry_count += len(outcome.entries)
        dec = self.decisions
        for decision in outcome.decisions:
            body = _jsonable(decision)
            dec["topic"].append(topic)
            dec["partition"].append(partition)
            dec["event_id"].append(body.get("event_id") or "")
            dec["merchant_shop_id"].append(body.get("merchant_shop_id") or "")
            dec["order_id"].append(body.get("order_id") or "")
            dec["decision"].append(orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode())

    def tables(self) -> dict[str, pa.Table]:
        out = {}
        if self.entry_count:
            out["entries"] = arrow_rows(self.entries, ENTRY_COLUMNS)
        if self.decisions["order_id"]:
            out["decisions"] = arrow_columns(self.decisions, DECISION_COLUMNS)
        if self.checkpoints["head"]:
            out["checkpoints"] = arrow_columns(self.checkpoints, CHECKPOINT_COLUMNS)
        if self.fold_state["kind"]:
            out["fold_state"] = arrow_columns(self.fold_state, FOLD_STATE_COLUMNS)
        if self.snapshots["digest"]:
            out["snapshots"] = arrow_columns(self.snapshots, SNAPSHOT_COLUMNS)
        return out
