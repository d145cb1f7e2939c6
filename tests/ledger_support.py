"""Helpers for the ledger tests: scenario files as fold records, and small event builders.

A record is the codec's shape (SPEC §2 JSON Lines with times as epoch
milliseconds, agreement defaults filled in); these helpers build that shape
from ISO times so tests read like the alliance's own story.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from refledger.ledger.balances import balances
from refledger.ledger.fold import PartitionFold

from tests.scenario_files import SCENARIOS
TIME_FIELDS = {"agreement": ("effective_from",), "settlement": ("period_end",), "close": ("closed_through",)}
AGREEMENT_OPTIONAL = ("rate_bp", "amount_minor", "currency")


def ms(iso: str) -> int:
    """'2026-11-01T10:00:00.000Z' (or '2026-11-01T10:00') as epoch milliseconds, UTC."""
    text = iso.rstrip("Z")
    dt = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def to_record(event: dict) -> dict:
    """A JSON Lines event (ISO times) as the record the fold receives."""
    record = json.loads(json.dumps(event))
    if isinstance(record.get("occurred_at"), str):
        record["occurred_at"] = ms(record["occurred_at"])
    kind = record["type"]
    payload = record[kind]
    for name in TIME_FIELDS.get(kind, ()):
        if isinstance(payload.get(name), str):
            payload[name] = ms(payload[name])
    if kind == "agreement":
        for name in AGREEMENT_OPTIONAL:
            payload.setdefault(name, None)
        payload.setdefault("category_rates_bp", {})
        if payload["category_rates_bp"] is None:
            payload["category_rates_bp"] = {}
        payload.setdefault("attribution_window_days", 15)
        payload.setdefault("hold_days", 15)
    if kind == "member":
        payload.setdefault("public_key", None)
    if kind == "policy":
        payload.setdefault("require_signatures", None)
        payload.setdefault("operator_public_key", None)
    record.setdefault("visitor_id", None)
    return record


def load_records(path: Path) -> list[dict]:
    return [to_record(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fold_all(records) -> tuple[PartitionFold, list]:
    fold = PartitionFold()
    outcomes = [fold.apply(r) for r in records]
    return fold, outcomes


def all_entries(outcomes) -> list:
    return [e for o in outcomes for e in o.entries]


def first_broken_link(entries) -> int | None:
    """The index of the first entry whose link or hash does not verify, or None: the auditor's
    check of SPEC §10 as ledger/README.md writes it, on its own (no code of the ledger's)."""
    import hashlib

    prev = "0" * 64
    for i, entry in enumerate(entries):
        fields = entry if isinstance(entry, dict) else entry._asdict()
        body = {k: v for k, v in fields.items() if k not in ("prev_hash", "hash")}
        canonical = json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(bytes.fromhex(prev) + canonical.encode("utf-8")).hexdigest()
        if fields["prev_hash"] != prev or fields["hash"] != digest:
            return i
        prev = digest
    return None


def nonzero_rows(rows: list[dict]) -> list[dict]:
    """Balance rows with at least one nonzero number, in a stable order."""
    kept = [r for r in rows if any(v for k, v in r.items() if k not in ("shop_id", "currency"))]
    return sorted(kept, key=lambda r: (r["shop_id"], r["currency"]))


def balance_of(outcomes, shop: str, currency: str = "CNY") -> dict:
    for row in balances(all_entries(outcomes)):
        if row["shop_id"] == shop and row["currency"] == currency:
            return {k: v for k, v in row.items() if k not in ("shop_id", "currency")}
    return {}


# -- event builders (alliance "test"), times as ISO strings -----------------------------------

class Alliance:
    """Builds records for one alliance, numbering event ids in order of creation."""

    def __init__(self, alliance_id: str = "test"):
        self.alliance_id = alliance_id
        self._n = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n:04d}"

    def _event(self, kind, at, shop, visitor, payload, event_id=None):
        return to_record({"event_id": event_id or self._id(kind[0]), "type": kind, "occurred_at": at,
                          "alliance_id": self.alliance_id, "shop_id": shop, "visitor_id": visitor,
                          kind: payload})

    def member(self, shop, at="2026-10-01T00:00", status="active", event_id=None):
        return self._event("member", at, "alliance", None, {"member_shop_id": shop, "status": status}, event_id)

    def unsafe(self, kind, at, shop, payload, event_id=None):
        """Any event, as a careless integration might send it."""
        return self._event(kind, at, shop, None, payload, event_id)

    def agreement(self, at="2026-10-01T00:00", *, agreement_id="default", version=1,
                  effective_from="2026-10-01T00:00", merchant="*", referrer="*", model="cps", rate_bp=None,
                  category_rates_bp=None, amount_minor=None, currency=None, window=15, hold=15, event_id=None):
        return self._event("agreement", at, "alliance", None, {
            "agreement_id": agreement_id, "version": version, "effective_from": effective_from,
            "merchant_shop_id": merchant, "referrer_shop_id": referrer, "model": model, "rate_bp": rate_bp,
            "category_rates_bp": category_rates_bp or {}, "amount_minor": amount_minor, "currency": currency,
            "attribution_window_days": window, "hold_days": hold}, event_id)

    def view(self, at, referrer, merchant, visitor, event_id=None, shop=None):
        return self._event("view", at, shop or referrer, visitor, {
            "referrer_shop_id": referrer, "merchant_shop_id": merchant, "placement_id": "banner"}, event_id)

    def click(self, at, referrer, merchant, visitor, event_id=None, shop=None):
        return self._event("click", at, shop or referrer, visitor, {
            "referrer_shop_id": referrer, "merchant_shop_id": merchant, "placement_id": "banner"}, event_id)

    def order(self, at, merchant, visitor, order_id, lines, currency="CNY", total=None, event_id=None, shop=None):
        """lines: [(quantity, unit_price_minor, category), ...]"""
        rows = [{"sku": f"sku-{i}", "category": cat, "quantity": q, "unit_price_minor": p}
                for i, (q, p, cat) in enumerate(lines)]
        if total is None:
            total = sum(q * p for q, p, _c in lines)
        return self._event("order", at, shop or merchant, visitor, {
            "order_id": order_id, "merchant_shop_id": merchant, "currency": currency, "lines": rows,
            "total_minor": total}, event_id)

    def refund(self, at, merchant, order_id, amount, currency="CNY", refund_id=None, event_id=None, shop=None):
        return self._event("refund", at, shop or merchant, "v-any", {
            "order_id": order_id, "refund_id": refund_id or self._id("rf"), "merchant_shop_id": merchant,
            "currency": currency, "amount_minor": amount}, event_id)

    def settlement(self, at, period_end, settlement_id="s", event_id=None):
        return self._event("settlement", at, "alliance", None,
                           {"settlement_id": settlement_id, "period_end": period_end}, event_id)

    def close(self, at, closed_through, close_id="close", event_id=None):
        return self._event("close", at, "alliance", None, {"close_id": close_id, "closed_through": closed_through},
                           event_id)

    def payout(self, at, merchant, referrer, amount, currency="CNY", payout_id="pay", event_id=None):
        return self._event("payout", at, "alliance", None, {
            "payout_id": payout_id, "merchant_shop_id": merchant, "referrer_shop_id": referrer,
            "currency": currency, "amount_minor": amount}, event_id)

    def adjustment(self, at, merchant, referrer, amount, reason, currency="CNY", adjustment_id="adj",
                   event_id=None):
        return self._event("adjustment", at, "alliance", None, {
            "adjustment_id": adjustment_id, "merchant_shop_id": merchant, "referrer_shop_id": referrer,
            "currency": currency, "amount_minor": amount, "reason": reason}, event_id)


class ExplodingFold(PartitionFold):
    """A fold with a bug: the child must report it, not hang or write half a batch."""

    def apply(self, record, content=None, signed=None):
        if record["type"] == "order":
            raise ZeroDivisionError("a bug in the fold")
        return super().apply(record, content, signed)


SLOW_FOLD_SECONDS = 2.0


class SlowFold(PartitionFold):
    """A fold that takes its time (SLOW_FOLD_SECONDS) over an event whose id begins with "slow-"."""

    def apply(self, record, content=None, signed=None):
        if record["event_id"].startswith("slow-"):
            time.sleep(SLOW_FOLD_SECONDS)
        return super().apply(record, content, signed)
