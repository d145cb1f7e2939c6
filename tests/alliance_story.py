"""Hand-built alliances for the operator's reports: a story told event by event, then a ledger.

    story = Alliance()
    story.member("a-tea", "2026-10-01T00:00:00Z")
    story.views("a-tea", "b-cups", 200, between=("2026-11-01T00:00:00Z", "2026-11-20T00:00:00Z"))
    db = story.ledger(tmp_path)             # refledger ingest, one partition in story order

Times are ISO text (UTC) or epoch milliseconds. Event ids are numbered in the
order the events are told; the ledger folds them in that order.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from click.testing import CliRunner

from refledger.cli import cli

DAY_MS = 86_400_000


def ms(when) -> int:
    if isinstance(when, int):
        return when
    return int(datetime.fromisoformat(when.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp() * 1000)


def iso(when) -> str:
    millis = ms(when)
    moment = datetime.fromtimestamp(millis // 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"


def run(*args, code=0):
    """The command line, as a person runs it; its exit status must be ``code`` (None: 0 or 1)."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code in ((0, 1) if code is None else (code,)), result.output
    return result


def as_json(*args, code=0):
    return json.loads(run(*args, "--format", "json", code=code).output)


class Alliance:
    def __init__(self, alliance_id: str = "harbor"):
        self.alliance_id = alliance_id
        self.events: list[dict] = []

    def _add(self, kind: str, at, shop_id: str, visitor: str | None, payload: dict, event_id: str | None = None) -> str:
        event_id = event_id or f"e-{len(self.events) + 1:06d}"
        self.events.append({"event_id": event_id, "type": kind, "occurred_at": iso(at),
                            "alliance_id": self.alliance_id, "shop_id": shop_id, "visitor_id": visitor,
                            kind: payload})
        return event_id

    # -- the operator -----------------------------------------------------

    def member(self, shop: str, at, status: str = "active", event_id: str | None = None) -> str:
        return self._add("member", at, "alliance", None, {"member_shop_id": shop, "status": status}, event_id)

    def close(self, at, closed_through, close_id: str = "close-1") -> str:
        return self._add("close", at, "alliance", None, {"close_id": close_id, "closed_through": iso(closed_through)})

    def agreement(self, at, rate_bp: int = 1000, window_days: int = 15, hold_days: int = 15) -> str:
        """Everyone pays everyone ``rate_bp`` (cps) from ``at`` on."""
        return self._add("agreement", at, "alliance", None, {
            "agreement_id": "default", "version": 1, "effective_from": iso(at), "merchant_shop_id": "*",
            "referrer_shop_id": "*", "model": "cps", "rate_bp": rate_bp,
            "attribution_window_days": window_days, "hold_days": hold_days})

    def settlement(self, at, period_end, settlement_id: str = "s-1") -> str:
        return self._add("settlement", at, "alliance", None,
                         {"settlement_id": settlement_id, "period_end": iso(period_end)})

    # -- the shops --------------------------------------------------------

    def view(self, referrer: str, merchant: str, at, visitor: str = "v-0001", event_id: str | None = None) -> str:
        return self._add("view", at, referrer, visitor, {"referrer_shop_id": referrer, "merchant_shop_id": merchant,
                                                         "placement_id": "banner-1"}, event_id)

    def click(self, referrer: str, merchant: str, at, visitor: str = "v-0001", event_id: str | None = None) -> str:
        return self._add("click", at, referrer, visitor, {"referrer_shop_id": referrer, "merchant_shop_id": merchant,
                                                          "placement_id": "banner-1"}, event_id)

    def views(self, referrer: str, merchant: str, count: int, between) -> None:
        """``count`` views spread over the open interval ``between`` (neither end is reached)."""
        for at in _spread(count, between):
            self.view(referrer, merchant, at)

    def clicks(self, referrer: str, merchant: str, count: int, between, visitors: int = 1) -> None:
        """``count`` clicks spread over the open interval ``between``, by ``visitors`` visitors in turn."""
        for i, at in enumerate(_spread(count, between)):
            self.click(referrer, merchant, at, visitor=f"v-{i % visitors:04d}")

    def order(self, merchant: str, at, total: int, visitor: str = "v-0001", order_id: str | None = None,
              currency: str = "CNY", event_id: str | None = None) -> str:
        order_id = order_id or f"o-{len(self.events) + 1}"
        self._add("order", at, merchant, visitor, {
            "order_id": order_id, "merchant_shop_id": merchant, "currency": currency,
            "lines": [{"sku": "item", "category": "goods", "quantity": 1, "unit_price_minor": total}],
            "total_minor": total}, event_id)
        return order_id

    def refund(self, merchant: str, order_id: str, at, amount: int, visitor: str = "v-0001",
               currency: str = "CNY") -> str:
        return self._add("refund", at, merchant, visitor, {
            "order_id": order_id, "refund_id": f"r-{len(self.events) + 1}", "merchant_shop_id": merchant,
            "currency": currency, "amount_minor": amount})

    # -- the ledger -------------------------------------------------------

    def write(self, path: Path) -> Path:
        path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.events), encoding="utf-8")
        return path

    def ledger(self, folder: Path, name: str = "alliance") -> Path:
        """The story folded by `refledger ingest` into a fresh ledger file."""
        db = folder / f"{name}.duckdb"
        run("ingest", self.write(folder / f"{name}.jsonl"), "--db", db)
        return db


def _spread(count: int, between) -> list[int]:
    start, end = ms(between[0]), ms(between[1])
    step = (end - start) / (count + 1)
    return [start + int(step * (i + 1)) for i in range(count)]


def simulated_ledger(folder: Path, seed: int, visitors: int, days: int) -> Path:
    """`refledger simulate` of an alliance, folded by `refledger ingest` into ``folder``."""
    run("simulate", "--seed", seed, "--visitors", visitors, "--days", days, "--out", folder / "sim.jsonl")
    db = folder / "sim.duckdb"
    run("ingest", folder / "sim.jsonl", "--db", db)
    return db
