"""Ledger entries, accounts and the legs of a posting (SPEC §10).

Sign convention: an entry's ``amount`` is signed and every transaction sums
to zero per currency (``"CLICK"`` for swap credits). Displayed balances are
Σ amount for ``earned_*``, ``received`` and ``swap_given``, and −Σ amount for
``owed_*``, ``paid_out`` and ``swap_received``: a commission C for referrer R
from merchant M posts R ``earned_pending`` +C and M ``owed_pending`` −C.
"""

from __future__ import annotations

from typing import NamedTuple

EARNED_PENDING = "earned_pending"
EARNED_PAYABLE = "earned_payable"
OWED_PENDING = "owed_pending"
OWED_PAYABLE = "owed_payable"
RECEIVED = "received"
PAID_OUT = "paid_out"
SWAP_GIVEN = "swap_given"
SWAP_RECEIVED = "swap_received"
ACCOUNTS = (EARNED_PENDING, EARNED_PAYABLE, OWED_PENDING, OWED_PAYABLE, RECEIVED, PAID_OUT,
            SWAP_GIVEN, SWAP_RECEIVED)
MONEY_ACCOUNTS = ACCOUNTS[:6]
SWAP_ACCOUNTS = ACCOUNTS[6:]
# Accounts shown as −Σ amount.
CREDIT_ACCOUNTS = frozenset({OWED_PENDING, OWED_PAYABLE, PAID_OUT, SWAP_RECEIVED})

CLICK = "CLICK"  # the unit of swap credits


class Entry(NamedTuple):
    """One line of the ledger. Append-only; ``hash`` chains it to the one before.

    A named tuple: immutable, and cheap to make by the million (a frozen
    dataclass of twenty fields costs several times as much to build).
    """

    entry_id: str
    txn_id: str
    seq: int
    event_id: str
    shop_id: str
    account: str
    counterparty_shop_id: str
    currency: str
    amount: int
    subject: str
    role: str
    agreement_id: str | None
    agreement_version: int | None
    model: str | None
    rate_bp: int | None
    click_event_id: str | None
    refund_id: str | None
    reason: str | None
    prev_hash: str
    hash: str

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in ENTRY_FIELDS}


ENTRY_FIELDS = Entry._fields


# One side of a posting before it is sealed into the chain:
# (shop_id, account, counterparty_shop_id, currency, amount).
Leg = tuple[str, str, str, str, int]


# What priced, attributed and caused a posting, copied onto each of its entries:
# (agreement_id, agreement_version, model, rate_bp, click_event_id, refund_id, reason).
Basis = tuple[str | None, int | None, str | None, int | None, str | None, str | None, str | None]

NO_BASIS: Basis = (None, None, None, None, None, None, None)


def reason_basis(reason: str | None) -> Basis:
    """The basis of an adjustment: no agreement or click, just its reason."""
    return (None, None, None, None, None, None, reason)


def commission_legs(referrer: str, merchant: str, currency: str, amount: int, payable: bool) -> tuple[Leg, Leg]:
    """The referrer earns ``amount`` from the merchant (negative: gives it back).

    Swap credits (currency CLICK) go to swap_given / swap_received, never
    pending or payable.
    """
    if currency == CLICK:
        return ((referrer, SWAP_GIVEN, merchant, CLICK, amount),
                (merchant, SWAP_RECEIVED, referrer, CLICK, -amount))
    if payable:
        return ((referrer, EARNED_PAYABLE, merchant, currency, amount),
                (merchant, OWED_PAYABLE, referrer, currency, -amount))
    return ((referrer, EARNED_PENDING, merchant, currency, amount),
            (merchant, OWED_PENDING, referrer, currency, -amount))


def settle_legs(referrer: str, merchant: str, currency: str, amount: int) -> tuple[Leg, ...]:
    """Move ``amount`` of a pair's pending commission to payable."""
    return ((referrer, EARNED_PENDING, merchant, currency, -amount),
            (referrer, EARNED_PAYABLE, merchant, currency, amount),
            (merchant, OWED_PENDING, referrer, currency, amount),
            (merchant, OWED_PAYABLE, referrer, currency, -amount))


def payout_legs(referrer: str, merchant: str, currency: str, amount: int) -> tuple[Leg, ...]:
    """The merchant pays the referrer ``amount`` of what it owes as payable."""
    return ((referrer, EARNED_PAYABLE, merchant, currency, -amount),
            (referrer, RECEIVED, merchant, currency, amount),
            (merchant, OWED_PAYABLE, referrer, currency, amount),
            (merchant, PAID_OUT, referrer, currency, -amount))


def _escape(part: str) -> str:
    if "%" in part or "/" in part:
        return part.replace("%", "%25").replace("/", "%2F")
    return part


def make_txn_id(event_id: str, subject: str, role: str, qualifier: str | None = None) -> str:
    """``event/subject/role[:qualifier]``, each part with '%' and '/' percent-escaped."""
    tail = role if qualifier is None else f"{role}:{_escape(qualifier)}"
    return f"{_escape(event_id)}/{_escape(subject)}/{tail}"


def make_entry_id(txn_id: str, account: str) -> str:
    """A posting never uses one account twice, so the account completes the id."""
    return f"{txn_id}/{account}"
