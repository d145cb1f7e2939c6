"""A shop's statement for one month: what changed, why, and who pays whom.

"In the period" goes by the booking time of each entry: the time of the
event that caused it (its `occurred_at`, UTC), except that what a
settlement moves is booked at its `period_end`, in the period it closes,
even when the settlement runs a little later. Opening
balances sum every entry caused by an earlier event; closing = opening +
the period's entries. Netting follows SPEC §9 and covers what is due, the
payable balances at the period's close: per counterparty and currency, what
the counterparty owes the shop (the shop's earned_payable from it) against
what the shop owes it (owed_payable); the larger side is paid the
difference. Pending amounts are shown beside it; they are not due yet.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from refledger.ledger.entries import CREDIT_ACCOUNTS as NEGATED, MONEY_ACCOUNTS, SWAP_ACCOUNTS as SWAP
from refledger.store.queries import QueryError

MONEY = MONEY_ACCOUNTS
LINE_COLUMNS = ("occurred_at", "event_id", "event_type", "log", "seq", "role", "account", "counterparty_shop_id",
                "currency", "change", "agreement", "model", "rate_bp", "click_event_id", "refund_id", "reason",
                "subject", "entry_id")


class StatementError(QueryError):
    """The period or shop cannot make a statement."""


def period_bounds(period: str) -> tuple[datetime, datetime]:
    if not re.fullmatch(r"\d{4}-\d{2}", period or ""):
        raise StatementError(f"period must be YYYY-MM, got {period!r}")
    year, month = int(period[:4]), int(period[5:])
    if not 1 <= month <= 12:
        raise StatementError(f"period must be YYYY-MM, got {period!r}")
    start = datetime(year, month, 1)
    end = datetime(year + month // 12, month % 12 + 1, 1)
    return start, end


_ENTRIES = """
    SELECT e.*, ev.type AS event_type, coalesce(cp."at", ev.occurred_at) AS occurred_at
    FROM entries e
    JOIN (SELECT DISTINCT topic, partition, event_id, type, occurred_at FROM folded_events) ev
      USING (topic, partition, event_id)
    LEFT JOIN (SELECT DISTINCT topic, partition, event_id, "at" FROM checkpoints WHERE kind = 'settlement') cp
      USING (topic, partition, event_id)
    WHERE e.shop_id = $shop
"""


def _shown(account: str, amount: int) -> int:
    return -amount if account in NEGATED else amount


def statement(cur, shop_id: str, period: str) -> dict:
    start, end = period_bounds(period)
    [(known,)] = cur.execute("SELECT count(*) FROM entries WHERE shop_id = ? OR counterparty_shop_id = ?",
                             [shop_id, shop_id]).fetchall()
    [(member,)] = cur.execute("SELECT count(*) FROM events WHERE shop_id = ?", [shop_id]).fetchall()
    if not known and not member:
        raise StatementError(f"no shop {shop_id!r} in this ledger")

    opening: dict[tuple[str, str], int] = {}
    for currency, account, total in cur.execute(
            f"""SELECT currency, account, sum(amount) FROM ({_ENTRIES}) WHERE occurred_at < $start
                GROUP BY ALL""", {"shop": shop_id, "start": start}).fetchall():
        opening[(currency, account)] = _shown(account, int(total))

    cur.execute(f"""SELECT * FROM ({_ENTRIES}) WHERE occurred_at >= $start AND occurred_at < $end
                    ORDER BY occurred_at, topic, partition, seq""", {"shop": shop_id, "start": start, "end": end})
    names = [d[0] for d in cur.description]
    lines = []
    closing = dict(opening)
    for row in cur.fetchall():
        e = dict(zip(names, row))
        change = _shown(e["account"], int(e["amount"]))
        closing[(e["currency"], e["account"])] = closing.get((e["currency"], e["account"]), 0) + change
        lines.append({
            "occurred_at": _iso(e["occurred_at"]), "event_id": e["event_id"], "event_type": e["event_type"],
            "log": f"{e['topic']}:{e['partition']}", "seq": int(e["seq"]), "role": e["role"],
            "account": e["account"], "counterparty_shop_id": e["counterparty_shop_id"],
            "currency": e["currency"], "change": change,
            "agreement": (f"{e['agreement_id']} v{e['agreement_version']}" if e["agreement_id"] else None),
            "agreement_id": e["agreement_id"], "agreement_version": e["agreement_version"],
            "model": e["model"], "rate_bp": e["rate_bp"], "click_event_id": e["click_event_id"],
            "refund_id": e["refund_id"], "reason": e["reason"], "subject": e["subject"],
            "entry_id": e["entry_id"],
        })

    return {
        "shop_id": shop_id,
        "period": period,
        "from": _iso(start),
        "until": _iso(end),
        "opening": _balances(opening),
        "closing": _balances(closing),
        "lines": lines,
        "netting": (netting := _netting(cur, shop_id, end)),
        "overall": _overall(shop_id, netting),
    }


def _overall(shop_id: str, netting: list[dict]) -> list[dict]:
    """Per currency, the shop's net position across all its counterparties (SPEC §13: "pays 1,280 overall")."""
    totals: dict[str, int] = {}
    for row in netting:
        totals[row["currency"]] = totals.get(row["currency"], 0) + row["they_owe_payable"] - row["we_owe_payable"]
    return [{"currency": c, "net": n,
             "says": (f"{shop_id} receives {n:,} {c} overall" if n > 0 else
                      f"{shop_id} pays {-n:,} {c} overall" if n < 0 else f"{shop_id} is even in {c}")}
            for c, n in sorted(totals.items())]


def _balances(sums: dict[tuple[str, str], int]) -> list[dict]:
    out = []
    for currency in sorted({c for c, _ in sums}):
        accounts = SWAP if currency == "CLICK" else MONEY
        out.append({"currency": currency, **{a: sums.get((currency, a), 0) for a in accounts}})
    return out


def _netting(cur, shop_id: str, end: datetime) -> list[dict]:
    """Per counterparty and currency, at the period's close: payable both ways and who pays whom."""
    pairs: dict[tuple[str, str], dict[str, int]] = {}
    for counterparty, currency, account, total in cur.execute(
            f"""SELECT counterparty_shop_id, currency, account, sum(amount) FROM ({_ENTRIES})
                WHERE occurred_at < $end AND currency <> 'CLICK' AND counterparty_shop_id IS NOT NULL
                  AND account IN ('earned_payable', 'owed_payable', 'earned_pending', 'owed_pending')
                GROUP BY ALL""", {"shop": shop_id, "end": end}).fetchall():
        row = pairs.setdefault((counterparty, currency), dict.fromkeys(
            ("they_owe_payable", "we_owe_payable", "they_owe_pending", "we_owe_pending"), 0))
        shown = _shown(account, int(total))
        key = {"earned_payable": "they_owe_payable", "owed_payable": "we_owe_payable",
               "earned_pending": "they_owe_pending", "owed_pending": "we_owe_pending"}[account]
        row[key] += shown
    out = []
    for (counterparty, currency), row in sorted(pairs.items()):
        net = row["they_owe_payable"] - row["we_owe_payable"]
        if net > 0:
            payer, payee = counterparty, shop_id
        elif net < 0:
            payer, payee = shop_id, counterparty
        else:
            payer = payee = None
        says = (f"{payer} pays {payee} {abs(net):,} {currency}" if payer else f"{shop_id} and {counterparty} are even")
        out.append({"counterparty_shop_id": counterparty, "currency": currency, **row,
                    "payer": payer, "payee": payee, "net": abs(net), "says": says,
                    "owes": f"{shop_id} owes {counterparty} {row['we_owe_payable']:,} and {counterparty} owes "
                            f"{shop_id} {row['they_owe_payable']:,}: {says}"})
    return out


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
