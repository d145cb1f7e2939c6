"""A shop's statement for one month: what changed, why, and who pays whom.

The month is the alliance's month, in its time zone (SPEC §11: `--tz`, else
`$REFLEDGER_TZ`, else Asia/Shanghai): an order at 02:00 Beijing time on
December 1st is December's. "In the month" goes by the booking time of each
entry: the time of the event that caused it (its `occurred_at`), except that
what a settlement moves is booked at its `period_end`, in the month it
closes, even when the settlement runs a little later. Opening balances sum
every entry booked earlier; closing = opening + the month's entries.

Netting follows SPEC §9 and covers what is due, the payable balances at the
month's close: per counterparty and currency, what the counterparty owes the
shop (the shop's earned_payable from it) against what the shop owes it
(owed_payable); the larger side is paid the difference
(`reports/netting.py`). Pending amounts are shown beside it; they are not
due yet. The alliance's fund (``"alliance"``: fines, fees, rewards) gets a
section of its own, and swap credits (资源互换) are shown per counterparty:
clicks given and received in the month and the exchange balance to date.
Sentences are written in the locale's language (`reports/words.py`), money as
money; every amount field stays an integer in minor units.
"""

from __future__ import annotations

from datetime import datetime

from refledger.ledger.entries import CREDIT_ACCOUNTS as NEGATED, MONEY_ACCOUNTS, SWAP_ACCOUNTS as SWAP
from refledger.reports.money import DEFAULT_LOCALE, format_count, format_money
from refledger.reports.months import alliance_month
from refledger.reports.netting import PairNet
from refledger.reports.words import FUND, party, pays, say
from refledger.schemas import codec
from refledger.schemas.periods import alliance_zone
from refledger.schemas.timestamps import naive_utc, naive_utc_millis
from refledger.store.queries import QueryError

MONEY = MONEY_ACCOUNTS
LINE_COLUMNS = ("occurred_at", "event_id", "event_type", "log", "seq", "role", "account", "counterparty_shop_id",
                "currency", "change", "agreement", "model", "rate_bp", "click_event_id", "refund_id", "reason",
                "subject", "entry_id")


class StatementError(QueryError):
    """The period or shop cannot make a statement."""


# Each entry dated by the event that caused it (found by its position: an event id may come back on
# another event after a close, SPEC §9a), a settlement's by the end of its period.
_ENTRIES = """
    SELECT e.*, ev.type AS event_type, coalesce(cp."at", ev.occurred_at) AS occurred_at
    FROM entries e
    JOIN events ev ON ev.topic = e.topic AND ev.partition = e.partition AND ev."offset" = e.event_offset
    LEFT JOIN (SELECT DISTINCT topic, partition, event_id, "at" FROM checkpoints WHERE kind = 'settlement') cp
      ON cp.topic = e.topic AND cp.partition = e.partition AND cp.event_id = e.event_id
     AND ev.type = 'settlement'
    WHERE e.shop_id = $shop
"""


def _shown(account: str, amount: int) -> int:
    return -amount if account in NEGATED else amount


def statement(cur, shop_id: str, period: str, tz: str | None = None, locale: str = DEFAULT_LOCALE) -> dict:
    start_ms, last_ms = alliance_month(period, tz)
    end_ms = last_ms + 1
    start, end = naive_utc(start_ms), naive_utc(end_ms)
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
            "occurred_at": codec.format_time(naive_utc_millis(e["occurred_at"])), "event_id": e["event_id"],
            "event_type": e["event_type"],
            "log": f"{e['topic']}:{e['partition']}", "seq": int(e["seq"]), "role": e["role"],
            "account": e["account"], "counterparty_shop_id": e["counterparty_shop_id"],
            "currency": e["currency"], "change": change,
            "agreement": (f"{e['agreement_id']} v{e['agreement_version']}" if e["agreement_id"] else None),
            "agreement_id": e["agreement_id"], "agreement_version": e["agreement_version"],
            "model": e["model"], "rate_bp": e["rate_bp"], "click_event_id": e["click_event_id"],
            "refund_id": e["refund_id"], "reason": e["reason"], "subject": e["subject"],
            "entry_id": e["entry_id"],
        })

    counterparties = _netting(cur, shop_id, end, locale)
    return {
        "shop_id": shop_id,
        "period": period,
        "time_zone": alliance_zone(tz).key,
        "from": codec.format_time(start_ms),
        "until": codec.format_time(end_ms),
        "opening": _balances(opening),
        "closing": _balances(closing),
        "lines": lines,
        "netting": [row for row in counterparties if row["counterparty_shop_id"] != FUND],
        "fund": [row for row in counterparties if row["counterparty_shop_id"] == FUND],
        "overall": _overall(shop_id, counterparties, locale),
        "swaps": _swaps(cur, shop_id, start, end, locale),
    }


def _overall(shop_id: str, netting: list[dict], locale: str) -> list[dict]:
    """Per currency, the shop's net position across all its counterparties, the fund included
    (SPEC §13: "pays 1,280 overall")."""
    totals: dict[str, int] = {}
    for row in netting:
        totals[row["currency"]] = totals.get(row["currency"], 0) + row["they_owe_payable"] - row["we_owe_payable"]
    out = []
    for currency, net in sorted(totals.items()):
        who = party(shop_id, locale)
        if net > 0:
            says = say("receives_overall", locale, party=who, amount=format_money(net, currency, locale))
        elif net < 0:
            says = say("pays_overall", locale, party=who, amount=format_money(-net, currency, locale))
        else:
            says = say("even_overall", locale, party=who, currency=currency)
        out.append({"currency": currency, "net": net, "says": says})
    return out


def _balances(sums: dict[tuple[str, str], int]) -> list[dict]:
    out = []
    for currency in sorted({c for c, _ in sums}):
        accounts = SWAP if currency == "CLICK" else MONEY
        out.append({"currency": currency, **{a: sums.get((currency, a), 0) for a in accounts}})
    return out


_SIDES = {"earned_payable": "they_owe_payable", "owed_payable": "we_owe_payable",
          "earned_pending": "they_owe_pending", "owed_pending": "we_owe_pending"}


def _netting(cur, shop_id: str, end: datetime, locale: str) -> list[dict]:
    """Per counterparty and currency, at the month's close: payable both ways and who pays whom."""
    pairs: dict[tuple[str, str], dict[str, int]] = {}
    for counterparty, currency, account, total in cur.execute(
            f"""SELECT counterparty_shop_id, currency, account, sum(amount) FROM ({_ENTRIES})
                WHERE occurred_at < $end AND currency <> 'CLICK' AND counterparty_shop_id IS NOT NULL
                  AND account IN ('earned_payable', 'owed_payable', 'earned_pending', 'owed_pending')
                GROUP BY ALL""", {"shop": shop_id, "end": end}).fetchall():
        row = pairs.setdefault((counterparty, currency), dict.fromkeys(_SIDES.values(), 0))
        row[_SIDES[account]] += _shown(account, int(total))
    out = []
    for (counterparty, currency), row in sorted(pairs.items()):
        transfer = PairNet(shop_id, counterparty, currency, row["we_owe_payable"], row["they_owe_payable"]).transfer
        if transfer is None:
            says = say("even", locale, a=party(shop_id, locale), b=party(counterparty, locale))
        else:
            says = pays(transfer.payer, transfer.payee, transfer.amount, currency, locale)
        out.append({"counterparty_shop_id": counterparty, "currency": currency, **row,
                    "payer": transfer and transfer.payer, "payee": transfer and transfer.payee,
                    "net": transfer.amount if transfer else 0, "says": says,
                    "owes": say("owes_both_ways", locale, a=party(shop_id, locale), b=party(counterparty, locale),
                                a_owes=format_money(row["we_owe_payable"], currency, locale),
                                b_owes=format_money(row["they_owe_payable"], currency, locale), says=says)})
    return out


def _swaps(cur, shop_id: str, start: datetime, end: datetime, locale: str) -> list[dict]:
    """Swap credits (资源互换) per counterparty: clicks given and received in the month, and to date."""
    rows = cur.execute(
        f"""SELECT counterparty_shop_id,
                   coalesce(sum(amount) FILTER (WHERE account = 'swap_given' AND occurred_at >= $start), 0),
                   -coalesce(sum(amount) FILTER (WHERE account = 'swap_received' AND occurred_at >= $start), 0),
                   coalesce(sum(amount) FILTER (WHERE account = 'swap_given'), 0),
                   -coalesce(sum(amount) FILTER (WHERE account = 'swap_received'), 0)
            FROM ({_ENTRIES}) WHERE currency = 'CLICK' AND occurred_at < $end
            GROUP BY counterparty_shop_id ORDER BY counterparty_shop_id""",
        {"shop": shop_id, "start": start, "end": end}).fetchall()
    out = []
    for counterparty, *counts in rows:
        given, received, given_to_date, received_to_date = map(int, counts)
        balance = given_to_date - received_to_date
        out.append({"counterparty_shop_id": counterparty, "given": given, "received": received,
                    "given_to_date": given_to_date, "received_to_date": received_to_date, "balance": balance,
                    "says": say("swap_balance", locale, shop=party(shop_id, locale), other=party(counterparty, locale),
                                given=format_count(given_to_date, locale),
                                received=format_count(received_to_date, locale), balance=f"{balance:+,}")})
    return out
