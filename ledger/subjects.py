"""Subjects — the things that earn — and how changes to them are posted.

A subject is an order (``order:<merchant>:<order_id>``) or a click earning
under ``cpc``/``swap`` (``click:<event_id>:<occurred_at>``, the time in epoch
milliseconds: after a close an event id may come back on a new click, SPEC
§9a, and the two are two subjects); payouts and adjustments are named like
orders (``payout:<merchant>:<payout_id>``). ``%`` and ``:`` inside a part
are written ``%25`` and ``%3A``, so that merchant ``a:b``'s order ``c`` and
merchant ``a``'s order ``b:c`` are two subjects too. Its *terms* say who earns
what from whom, priced by which agreement; its *net* is what is currently
posted for those terms. Changing the terms posts a reversal of the old net and
a posting of the new commission (never an edit). While a subject is
unsettled its postings go to pending; once a settlement has moved it to
payable, every later change goes to payable (SPEC §9).
"""

from __future__ import annotations

from dataclasses import dataclass

from refledger.ledger.entries import CLICK, Basis, Entry, commission_legs, settle_legs
from refledger.ledger.journal import Journal


def _escaped(part: str) -> str:
    if "%" in part or ":" in part:
        return part.replace("%", "%25").replace(":", "%3A")
    return part


def subject_name(kind: str, merchant: str, key: str) -> str:
    """The name of a merchant's order, payout or adjustment: ``kind:merchant:key``, unambiguous."""
    return f"{kind}:{_escaped(merchant)}:{_escaped(key)}"


def click_subject_name(event_id: str, occurred_at: int) -> str:
    """The name of a click that earns by itself: ``click:event_id:occurred_at`` (epoch ms)."""
    return f"click:{_escaped(event_id)}:{occurred_at}"


@dataclass(frozen=True, slots=True)
class Terms:
    """How a subject earns: R earns ``commission`` (gross) in ``currency`` from M."""

    referrer_shop_id: str
    merchant_shop_id: str
    currency: str
    commission: int
    agreement_id: str
    agreement_version: int
    agreement_event_id: str
    model: str
    rate_bp: int | None
    category_rates_bp: tuple[tuple[str, int], ...]
    click_event_id: str | None
    hold_days: int

    def basis(self, refund_id: str | None = None) -> Basis:
        return (self.agreement_id, self.agreement_version, self.model, self.rate_bp,
                self.click_event_id, refund_id, None)


class Subject:
    """Fold state of one subject (mutable, private to the fold)."""

    __slots__ = ("subject_id", "occurred_at", "terms", "net", "settled")

    def __init__(self, subject_id: str, occurred_at: int):
        self.subject_id = subject_id
        self.occurred_at = occurred_at
        self.terms: Terms | None = None
        self.net = 0
        self.settled = False

    @property
    def settles(self) -> bool:
        """Unsettled, with a nonzero pending amount of money (swap credits never settle)."""
        return (not self.settled and self.net != 0 and self.terms is not None
                and self.terms.currency != CLICK)


class Postings:
    """Posts subject changes to the journal and tracks what is still pending."""

    __slots__ = ("journal", "_unsettled")

    def __init__(self, journal: Journal):
        self.journal = journal
        # by the subject itself: two clicks may share an id, and so a name (an id used again after a close)
        self._unsettled: dict[Subject, Subject] = {}

    def post(self, subject: Subject, terms: Terms, event_id: str, role: str, amount: int, basis: Basis,
             out: list[Entry], qualifier: str | None = None) -> None:
        """R earns ``amount`` (negative: gives back) on this subject, pending or payable."""
        if amount == 0:
            return
        legs = commission_legs(terms.referrer_shop_id, terms.merchant_shop_id, terms.currency, amount,
                               subject.settled)
        out.extend(self.journal.post(event_id, subject.subject_id, role, legs, basis, qualifier))
        subject.net += amount
        self.track(subject)

    def set_terms(self, subject: Subject, terms: Terms | None, event_id: str, out: list[Entry]) -> bool:
        """Reverse the old net and post the new commission when the terms changed."""
        old = subject.terms
        if old == terms:
            return False
        if old is not None and subject.net:
            self.post(subject, old, event_id, "reverse", -subject.net, old.basis(), out)
        subject.terms = terms
        subject.net = 0
        if terms is not None:
            role = "swap-credit" if terms.currency == CLICK else "commission"
            self.post(subject, terms, event_id, role, terms.commission, terms.basis(), out)
        self.track(subject)
        return True

    def track(self, subject: Subject) -> None:
        """Keep the subject among those a settlement may move, while it has money pending."""
        if subject.settles:
            self._unsettled[subject] = subject
        else:
            self._unsettled.pop(subject, None)

    def pending_subjects(self) -> list[Subject]:
        return list(self._unsettled.values())

    def settle(self, subject: Subject, event_id: str, out: list[Entry]) -> None:
        """Move the subject's pending net to payable; it is settled from now on."""
        terms = subject.terms
        legs = settle_legs(terms.referrer_shop_id, terms.merchant_shop_id, terms.currency, subject.net)
        out.extend(self.journal.post(event_id, subject.subject_id, "settle", legs, terms.basis()))
        subject.settled = True
        self.track(subject)
