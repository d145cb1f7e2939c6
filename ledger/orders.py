"""Orders as subjects: attribution, pricing and refunds applied to the ledger.

``reprice`` recomputes an order's desired terms from the current state (its
clicks, members and agreements) and posts the difference; ``apply_refunds``
posts the cumulative refund reversal for the current terms. Refunds folded
before their order are parked here until it arrives.
"""

from __future__ import annotations

from typing import Iterable

from refledger.ledger.agreements import AgreementBook
from refledger.ledger.attribution import attribute_order
from refledger.ledger.clicks import ClickBook
from refledger.ledger.decisions import AttributionDecision
from refledger.ledger.digests import DigestSet, text_digest
from refledger.ledger.entries import Entry
from refledger.ledger.events import ANY, CURRENCY_MISMATCH, REFUND_EXCEEDS_ORDER, Order, Problem, Refund
from refledger.ledger.membership import Membership
from refledger.ledger.pricing import price_order
from refledger.ledger.refunds import reverse_for_refund
from refledger.ledger.subjects import Postings, Subject, Terms, subject_name


class OrderSubject(Subject):
    """An order and what is posted for it."""

    __slots__ = ("order", "refunded", "applied")

    def __init__(self, order: Order):
        super().__init__(subject_name("order", order.merchant_shop_id, order.order_id), order.occurred_at)
        self.order = order
        self.refunded = 0  # Σ accepted refunds (A_k)
        self.applied = 0   # the A at which the posted reversal was computed

    def refund_problem(self, refund: Refund) -> Problem | None:
        if refund.currency != self.order.currency:
            return CURRENCY_MISMATCH, f"refund in {refund.currency}, order {self.order.order_id} in {self.order.currency}"
        if self.refunded + refund.amount_minor > self.order.total_minor:
            currency = self.order.currency
            return (REFUND_EXCEEDS_ORDER, f"refunds would total {self.refunded + refund.amount_minor} {currency} "
                                          f"of an order of {self.order.total_minor} {currency}")
        return None

    def accept(self, refund: Refund) -> None:
        self.refunded += refund.amount_minor


class OrderBook:
    """Every order folded in this partition, and the refunds waiting for theirs.

    After a close (SPEC §9a) an order of the closed period can no longer change:
    only a 16-byte digest of its key is kept (``closed``; no rule reads more of
    it), so that ``duplicate_order`` and refunds of closed orders are still
    decided; what it still has pending stays with the postings until a
    settlement moves it. Closed orders are all of history, so each costs the
    fold its digest's 16 bytes, side by side with the others (``DigestSet``).
    """

    __slots__ = ("_orders", "_by_mv", "_by_merchant", "_parked", "_parked_seq", "closed")

    def __init__(self):
        self._orders: dict[tuple[str, str], OrderSubject] = {}
        # (merchant, visitor) → its order, or a list once there are several (most
        # visitors place one order per merchant; a list each would be memory for nothing)
        self._by_mv: dict[tuple[str, str | None], OrderSubject | list[OrderSubject]] = {}
        self._by_merchant: dict[str, list[OrderSubject]] = {}
        self._parked: dict[tuple[str, str], list[tuple[int, Refund]]] = {}  # (n-th parked, refund)
        self._parked_seq = 0
        self.closed = DigestSet()  # order_key(merchant, order_id) of every closed order

    def get(self, merchant: str, order_id: str) -> OrderSubject | None:
        """The open order (None for an unknown or a closed one)."""
        return self._orders.get((merchant, order_id))

    def is_closed(self, merchant: str, order_id: str) -> bool:
        return order_key(merchant, order_id) in self.closed

    def add(self, order: Order) -> OrderSubject:
        return self._add_subject(OrderSubject(order))

    def _add_subject(self, subject: OrderSubject) -> OrderSubject:
        order = subject.order
        self._orders[(order.merchant_shop_id, order.order_id)] = subject
        mv = (order.merchant_shop_id, order.visitor_id)
        known = self._by_mv.get(mv)
        if known is None:
            self._by_mv[mv] = subject
        elif type(known) is list:
            known.append(subject)
        else:
            self._by_mv[mv] = [known, subject]
        self._by_merchant.setdefault(order.merchant_shop_id, []).append(subject)
        return subject

    def at_visitor(self, merchant: str, visitor: str | None, since: int) -> list[OrderSubject]:
        """Orders of this visitor at this merchant at or after ``since``, in time order."""
        bucket = self._by_mv.get((merchant, visitor))
        if bucket is None:
            return []
        if type(bucket) is not list:
            return [bucket] if bucket.occurred_at >= since else []
        found = [o for o in bucket if o.occurred_at >= since]
        if len(found) > 1:
            found.sort(key=_order_key)
        return found

    def at_merchant(self, merchant: str, since: int) -> list[OrderSubject]:
        """Orders at ``merchant`` (``*``: any) at or after ``since``, in time order."""
        groups = self._by_merchant.values() if merchant == ANY else [self._by_merchant.get(merchant, ())]
        found = [o for group in groups for o in group if o.occurred_at >= since]
        found.sort(key=_order_key)
        return found

    def park(self, refund: Refund) -> None:
        self._parked.setdefault((refund.merchant_shop_id, refund.order_id), []).append((self._parked_seq, refund))
        self._parked_seq += 1

    def unpark(self, merchant: str, order_id: str) -> list[Refund]:
        """The refunds waiting for this order, in the order they were folded."""
        return [refund for _n, refund in self._parked.pop((merchant, order_id), ())]

    def close_through(self, closed_through: int) -> list[Refund]:
        """Close the books through ``closed_through``: orders at or before it are kept as the digest of
        their key only; parked refunds at or before it are given up (their order can no longer arrive) and
        returned, in the order they were folded."""
        open_orders, closed = [], []
        for key, subject in self._orders.items():
            if subject.occurred_at <= closed_through:
                closed.append(order_key(*key))
            else:
                open_orders.append(subject)
        self.closed.update(closed)
        # the book and its indexes built anew rather than pruned: a dict never gives back the room of
        # the keys deleted from it
        self._orders, self._by_mv, self._by_merchant = {}, {}, {}
        for subject in open_orders:
            self._add_subject(subject)
        given_up, parked = [], {}
        for key, waiting in self._parked.items():
            for n, refund in waiting:
                if refund.occurred_at <= closed_through:
                    given_up.append((n, refund))
                else:
                    parked.setdefault(key, []).append((n, refund))
        self._parked = parked
        return [refund for _n, refund in sorted(given_up, key=lambda item: item[0])]

    @property
    def parked_seq(self) -> int:
        return self._parked_seq

    def open_subjects(self) -> list[OrderSubject]:
        return list(self._orders.values())

    def parked_rows(self) -> list[tuple[int, Refund]]:
        """(n-th parked, refund) of every refund waiting, in the order they were folded."""
        return sorted((item for waiting in self._parked.values() for item in waiting), key=lambda item: item[0])

    def restore(self, subjects: list[OrderSubject], closed: Iterable[bytes],
                parked: list[tuple[int, Refund]], parked_seq: int) -> None:
        """Load a snapshot's orders (in time order), closed orders and parked refunds into an empty book."""
        for subject in subjects:
            self._add_subject(subject)
        self.closed = DigestSet(closed)
        for seq, refund in parked:
            self._parked.setdefault((refund.merchant_shop_id, refund.order_id), []).append((seq, refund))
        self._parked_seq = parked_seq

    def size(self) -> dict[str, int]:
        return {"open_orders": len(self._orders), "closed_orders": len(self.closed),
                "parked_refunds": sum(len(w) for w in self._parked.values())}


def order_key(merchant: str, order_id: str) -> bytes:
    """A closed order as the fold remembers it: the BLAKE2b-128 digest of its merchant and id (two
    orders are taken for one only when their digests are equal, the bound of every digest the fold
    compares)."""
    return text_digest(f"{len(merchant)}:{merchant}{order_id}")


def _order_key(o: OrderSubject):
    return (o.occurred_at, o.order.merchant_shop_id, o.order.order_id)


def decide(o: OrderSubject, cause: str, clicks: ClickBook, agreements: AgreementBook,
           membership: Membership) -> tuple[AttributionDecision, Terms | None]:
    """Attribute and price the order from the current state (pure: posts nothing)."""
    order = o.order
    candidates = clicks.for_visitor(order.merchant_shop_id, order.visitor_id) if order.visitor_id is not None else ()
    attribution = attribute_order(order, candidates, agreements.resolve, membership.status_at)
    winner, agreement = attribution.winner, attribution.agreement
    terms = None
    if winner is not None:
        pricing = price_order(order, agreement)
        terms = Terms(winner.referrer_shop_id, order.merchant_shop_id, pricing.currency, pricing.commission,
                      agreement.agreement_id, agreement.version, agreement.event_id, pricing.model,
                      pricing.rate_bp, pricing.category_rates_bp, winner.event_id, agreement.hold_days)
    decision = AttributionDecision(
        cause, order.event_id, order.order_id, order.merchant_shop_id, order.visitor_id, order.occurred_at,
        attribution.considered,
        terms.click_event_id if terms else None,
        terms.referrer_shop_id if terms else None,
        terms.agreement_id if terms else None,
        terms.agreement_version if terms else None,
        terms.model if terms else None,
        terms.rate_bp if terms else None,
        terms.category_rates_bp if terms else (),
        terms.commission if terms else 0,
        terms.currency if terms else order.currency,
        terms.hold_days if terms else None,
    )
    return decision, terms


def reprice(o: OrderSubject, event_id: str, clicks: ClickBook, agreements: AgreementBook,
            membership: Membership, postings: Postings, out: list[Entry]) -> AttributionDecision:
    """Recompute the order's attribution and pricing; post the difference."""
    decision, terms = decide(o, event_id, clicks, agreements, membership)
    if postings.set_terms(o, terms, event_id, out):
        o.applied = 0
        apply_refunds(o, postings, event_id, out)
    return decision


def apply_refunds(o: OrderSubject, postings: Postings, event_id: str, out: list[Entry],
                  refund: Refund | None = None, qualifier: str | None = None) -> None:
    """Post round(C × A / total) for the accepted refunds, less what is already reversed."""
    terms = o.terms
    if terms is not None:
        reversal = reverse_for_refund(terms.commission, o.applied, o.refunded, o.order.total_minor)
        postings.post(o, terms, event_id, "refund", -reversal,
                      terms.basis(refund.refund_id if refund is not None else None), out, qualifier)
    o.applied = o.refunded
