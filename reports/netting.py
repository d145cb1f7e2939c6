"""Netting what parties owe each other as payable into one transfer per pair (SPEC §9).

Input: what each payer owes each payee as payable, per currency (the payee's
``earned_payable`` from that payer: commission settled to payable and
adjustments, less payouts and clawbacks; it may be negative). For each pair
of parties and currency the two directions net into one transfer: if A owes
B 100 and B owes A 30, A pays B 70. Pairs are netted on their own, never
across a third party, so every transfer stays a debt the two parties can
check between themselves. The alliance's fund (``"alliance"``) is a party like
any shop.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

# The SQL that reads what each payer owes each payee as payable, from the entries in a
# FROM clause given to it (the whole ledger, or the entries as they stood at some cut).
PAYABLE_BY_PAIR = """
    SELECT counterparty_shop_id AS payer, shop_id AS payee, currency, sum(amount) AS owed
    FROM {entries}
    WHERE account = 'earned_payable' AND counterparty_shop_id IS NOT NULL AND currency <> 'CLICK'
    GROUP BY ALL
"""


class Owed(NamedTuple):
    """``payer`` owes ``payee`` ``amount`` (minor units; negative: the payee owes it back)."""

    payer: str
    payee: str
    currency: str
    amount: int


class Transfer(NamedTuple):
    """One netted transfer: ``payer`` pays ``payee`` ``amount`` > 0."""

    payer: str
    payee: str
    currency: str
    amount: int

    def to_dict(self) -> dict:
        """The SPEC §11 shape of the settlement sheet's transfers."""
        return {"from": self.payer, "to": self.payee, "currency": self.currency, "amount_minor": self.amount}


class PairNet(NamedTuple):
    """A pair of parties (``a`` < ``b``) in one currency: what each owes the other, and the one transfer."""

    a: str
    b: str
    currency: str
    a_owes_b: int
    b_owes_a: int

    @property
    def transfer(self) -> Transfer | None:
        net = self.a_owes_b - self.b_owes_a
        if net > 0:
            return Transfer(self.a, self.b, self.currency, net)
        if net < 0:
            return Transfer(self.b, self.a, self.currency, -net)
        return None

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "currency": self.currency, "a_owes_b": self.a_owes_b,
                "b_owes_a": self.b_owes_a}


def net_pairs(owed: Iterable[Owed]) -> list[PairNet]:
    """Every pair that owes anything either way, ordered by currency, then the parties."""
    pairs: dict[tuple[str, str, str], list[int]] = {}
    for payer, payee, currency, amount in owed:
        if payer == payee or not amount:
            continue
        a, b = sorted((payer, payee))
        sides = pairs.setdefault((currency, a, b), [0, 0])
        sides[0 if payer == a else 1] += int(amount)
    return [PairNet(a, b, currency, a_owes_b, b_owes_a)
            for (currency, a, b), (a_owes_b, b_owes_a) in sorted(pairs.items()) if a_owes_b or b_owes_a]


def transfers(pairs: Iterable[PairNet]) -> list[Transfer]:
    """The netted transfers, largest first within each currency (then payer, payee)."""
    found = [p.transfer for p in pairs]
    return sorted((t for t in found if t is not None), key=lambda t: (t.currency, -t.amount, t.payer, t.payee))


def party_totals(moves: Iterable[Transfer]) -> list[dict]:
    """Per party and currency: the total it pays and receives in the transfers, and the net (+ receives)."""
    totals: dict[tuple[str, str], list[int]] = {}
    for payer, payee, currency, amount in moves:
        totals.setdefault((payer, currency), [0, 0])[0] += amount
        totals.setdefault((payee, currency), [0, 0])[1] += amount
    return [{"party": party, "currency": currency, "to_pay": pay, "to_receive": receive, "net": receive - pay}
            for (party, currency), (pay, receive) in sorted(totals.items())]
