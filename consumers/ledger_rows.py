"""Fold outcomes as Arrow columns for the `entries` and `decisions` tables."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass

import pyarrow as pa

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
    ("period_end", pa.timestamp("ms")),
    ("entries", pa.int64()),
    ("head", pa.string()),
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
        self.entries = {name: [] for name, _ in ENTRY_COLUMNS}
        self.decisions = {name: [] for name, _ in DECISION_COLUMNS}
        self.checkpoints = {name: [] for name, _ in CHECKPOINT_COLUMNS}
        self.entry_count = 0

    def checkpoint(self, topic: str, partition: int, event_id: str, period_end, entries: int, head: str) -> None:
        """The chain head of a partition right after it folded a settlement."""
        for name, value in zip(self.checkpoints, (topic, partition, event_id, period_end, entries, head)):
            self.checkpoints[name].append(value)

    def add(self, topic: str, partition: int, outcome) -> None:
        cols = self.entries
        for entry in outcome.entries:
            cols["topic"].append(topic)
            cols["partition"].append(partition)
            for name, _ in ENTRY_COLUMNS[2:]:
                cols[name].append(getattr(entry, name))
            self.entry_count += 1
        dec = self.decisions
        for decision in outcome.decisions:
            body = _jsonable(decision)
            dec["topic"].append(topic)
            dec["partition"].append(partition)
            dec["event_id"].append(body.get("event_id") or "")
            dec["merchant_shop_id"].append(body.get("merchant_shop_id") or "")
            dec["order_id"].append(body.get("order_id") or "")
            dec["decision"].append(json.dumps(body, sort_keys=True, ensure_ascii=False))

    def tables(self) -> dict[str, pa.Table]:
        out = {}
        if self.entry_count:
            out["entries"] = pa.table({n: pa.array(self.entries[n], type=t) for n, t in ENTRY_COLUMNS})
        if self.decisions["order_id"]:
            out["decisions"] = pa.table({n: pa.array(self.decisions[n], type=t) for n, t in DECISION_COLUMNS})
        if self.checkpoints["head"]:
            out["checkpoints"] = pa.table({n: pa.array(self.checkpoints[n], type=t) for n, t in CHECKPOINT_COLUMNS})
        return out
