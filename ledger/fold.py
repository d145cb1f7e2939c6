"""PartitionFold: one partition's log folded, event by event, into ledger entries.

    record ─parse_event─▶ event ─▶ bad_signature? (SPEC §4a, while a policy requires signatures)
                                 ─▶ period_closed? future_close? (SPEC §9a)
                                 ─▶ seen before? identical: skipped; else conflicting_duplicate
                                 ─▶ check_event ─▶ quarantine reason
                                   │
                                   ▼ handler for its type
          subjects it can affect (orders, cpc/swap clicks) recomputed from the
          whole current state ─▶ difference posted as new entries (journal,
          hash chain) ─▶ FoldOutcome(entries, decisions, late quarantines)

The fold is deterministic and pure: the same records in the same order give
the same entries, entry ids and chain head, from any source.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from refledger.ledger.agreements import AgreementBook
from refledger.ledger.clicks import ClickBook, ClickRef, click_ref
from refledger.ledger.decisions import AttributionDecision
from refledger.ledger.digests import DIGEST_SIZE, digest, text_digest
from refledger.ledger.entries import NO_BASIS, Entry, commission_legs, payout_legs, reason_basis
from refledger.ledger.events import (
    BAD_SIGNATURE, CONFLICTING_DUPLICATE, DATED_TYPES, DAY_MS, DUPLICATE_ORDER, FUTURE_CLOSE, MAX_DAYS,
    PAYOUT_EXCEEDS_PAYABLE, PERIOD_CLOSED, SCHEMA_INVALID, Adjustment, Agreement, BadRecord, Click, Close, Event,
    Member, Order, Payout, Policy, Refund, Settlement, View, parse_event,
)
from refledger.ledger.checks import check_event
from refledger.ledger.journal import Journal
from refledger.ledger.membership import Membership
from refledger.ledger.orders import OrderBook, OrderSubject, apply_refunds, reprice
from refledger.ledger.settlement import settle_period
from refledger.ledger.signers import Signature, SignatureCheck, Signers
from refledger.ledger.subjects import Postings, subject_name
from refledger.ledger.times import iso

# After a close through C, no open order can be attributed by a click older than C − 90 days (the
# longest window, SPEC §9a), and the 24-hour rule of an open click looks back one day: the clicks
# before that are forgotten.
CLICK_MEMORY_MS = MAX_DAYS * DAY_MS


@dataclass(frozen=True, slots=True)
class FoldOutcome:
    """What folding one record did."""

    quarantine: str | None = None    # a SPEC §4 reason code; then the event changed nothing
    detail: str | None = None        # human-readable explanation of the quarantine
    entries: tuple[Entry, ...] = ()
    decisions: tuple[AttributionDecision, ...] = ()
    late_quarantines: tuple[tuple[str, str], ...] = ()  # (event_id, reason) of earlier, parked events
    skipped: bool = False            # an identical re-delivery of an event already folded
    parked: bool = False             # a refund waiting for its order


NOTHING = FoldOutcome()
SKIPPED = FoldOutcome(skipped=True)
PARKED = FoldOutcome(parked=True)


def content_digest(ev: Event) -> bytes:
    """A digest of an event's parsed content (its type and every field; an event carries no
    signature, so the comparison ignores it, SPEC §4a): equal digests, equal content. Callers that
    hold a stable digest of the event's content already (the consumer digests its canonical bytes)
    pass theirs instead."""
    return digest(repr(ev).encode("utf-8"))


# What the fold remembers of every event it folded (SPEC §4 duplicates), compactly (the open
# period's events can number millions): the event id's 16-byte digest as the key, and as the value
# the content's 16-byte digest, followed by the event's time (8 bytes) for the dated kinds a close
# lets the fold forget. Two event ids are taken for one only when their BLAKE2b-128 digests are
# equal: the bound the content comparison rests on already.
_AT = struct.Struct(">q")


def id_key(event_id: str) -> bytes:
    """An event id as the fold remembers it."""
    return text_digest(event_id)


def _remembered(ev: Event, content: bytes | None) -> bytes:
    """What is remembered of a folded event to tell a re-delivery from a conflict: a digest of its
    content, and its time if it is of a dated kind (log-order events are never forgotten)."""
    if content is None:
        kept = content_digest(ev)
    else:  # a caller's digest of another size is digested again: what follows it must stay at DIGEST_SIZE
        kept = content if len(content) == DIGEST_SIZE else digest(content)
    return kept + _AT.pack(ev.occurred_at) if ev.type in DATED_TYPES else kept


def remembered_at(remembered: bytes) -> int | None:
    """The time kept with a remembered event (None for the log-order kinds)."""
    return _AT.unpack_from(remembered, DIGEST_SIZE)[0] if len(remembered) > DIGEST_SIZE else None


def _quarantined(reason: str, detail: str) -> FoldOutcome:
    return FoldOutcome(reason, detail)


def _posted(entries, decisions=(), late=()) -> FoldOutcome:
    if not entries and not decisions and not late:
        return NOTHING
    return FoldOutcome(None, None, tuple(entries), tuple(decisions), tuple(late))


class PartitionFold:
    """The state of one partition's ledger, built by ``apply`` from its log.

    ``signatures`` checks signatures while a policy requires them (SPEC §4a); a fold without
    one cannot fold a log that requires them."""

    def __init__(self, signatures: SignatureCheck | None = None):
        self.membership = Membership()
        self.agreements = AgreementBook()
        self.clicks = ClickBook()
        self.orders = OrderBook()
        self.journal = Journal()
        self.postings = Postings(self.journal)
        self.closed_through: int | None = None  # SPEC §9a: what occurred at or before it is final
        self.signers = Signers()
        self.signatures = signatures
        self._seen: dict[bytes, bytes] = {}  # id_key(event id) → what is remembered of the event folded
        self._handlers = {
            "view": self._on_view, "click": self._on_click, "order": self._on_order,
            "refund": self._on_refund, "member": self._on_member, "agreement": self._on_agreement,
            "settlement": self._on_settlement, "payout": self._on_payout, "adjustment": self._on_adjustment,
            "close": self._on_close, "policy": self._on_policy,
        }

    # -- reading -----------------------------------------------------------------------------

    @property
    def chain_head(self) -> str:
        return self.journal.head

    def seen_rows(self) -> list[tuple[bytes, int | None, bytes]]:
        """(event id's digest, occurred_at or None, content digest) of every event remembered, sorted."""
        seen, unpack = self._seen, _AT.unpack_from  # (remembered_at, inline: a snapshot's biggest table)
        return [(key, unpack(value, DIGEST_SIZE)[0] if len(value) > DIGEST_SIZE else None, value[:DIGEST_SIZE])
                for key in sorted(seen) for value in (seen[key],)]  # keys are unique: sorted alone, as bytes

    def restore_seen(self, rows) -> None:
        self._seen.update((key, content if at is None else content + _AT.pack(at)) for key, at, content in rows)

    def state_size(self) -> dict[str, int]:
        """How much the fold remembers, per kind of state (after a close, only what SPEC §9a needs)."""
        return {"event_ids": len(self._seen), "clicks": self.clicks.size(), **self.orders.size(),
                "pending_subjects": len(self.postings.pending_subjects()),
                "agreements": self.agreements.size(), "members": len(self.membership.known_shops),
                "signing_keys": self.signers.size()}

    # -- folding -----------------------------------------------------------------------------

    def apply(self, record: dict, content: bytes | None = None, signed: Signature | None = None) -> FoldOutcome:
        """Fold one record. Never raises for bad data: bad data is a quarantine reason.

        ``signed``: the record's signature with its canonical bytes (and a verdict reached
        ahead), when the caller has them; else they are read from the record if needed."""
        try:
            ev = parse_event(record)
        except BadRecord as exc:
            return _quarantined(SCHEMA_INVALID, str(exc))
        return self.apply_event(ev, content, signed, record)

    def apply_event(self, ev: Event, content: bytes | None = None, signed: Signature | None = None,
                    record: dict | None = None) -> FoldOutcome:
        """Fold one event: the signature check, the closing checks, the duplicate checks, the SPEC §4
        checks, then the rules of its type. ``content`` is a digest of the event's content, if the
        caller has one.

        For callers that hold events already (the consumer builds views and clicks
        from the fields its reader found, without a record, and hands their signature as
        ``signed``: without it, and without ``record``, the event counts as unsigned)."""
        if self.signers.required or ev.type == "policy":
            problem = self._signature_problem(ev, signed, record)
            if problem is not None:
                return _quarantined(*problem)
        closed = self.closed_through
        if closed is not None and ev.occurred_at <= closed and ev.type in DATED_TYPES:
            return _quarantined(PERIOD_CLOSED, f"{ev.type} of {iso(ev.occurred_at)}: the books are closed through "
                                               f"{iso(closed)}")
        if ev.type == "close" and ev.closed_through > ev.occurred_at:
            return _quarantined(FUTURE_CLOSE, f"closes through {iso(ev.closed_through)}, later than the close "
                                              f"itself ({iso(ev.occurred_at)})")
        key = id_key(ev.event_id)
        remembered = _remembered(ev, content)
        prior = self._seen.get(key)
        if prior is not None:
            if prior == remembered:
                return SKIPPED
            return _quarantined(CONFLICTING_DUPLICATE,
                                f"event id {ev.event_id} was already folded with other content")
        self._seen[key] = remembered
        problem = check_event(ev, self.membership.known_shops.__contains__)
        if problem is not None:
            return _quarantined(*problem)
        return self._handlers[ev.type](ev)

    def _signature_problem(self, ev: Event, signed: Signature | None, record: dict | None):
        """SPEC §4a: bad_signature unless one of the keys the event needs signed it."""
        keys = self.signers.keys_for(ev)
        if keys is None:
            return None
        if signed is None and record is not None and record.get("signature") is not None:
            signed = Signature(record["signature"], self._check().message(record))
        if signed is None or signed.signature is None:
            return BAD_SIGNATURE, f"unsigned {ev.type}: signatures are required (policy {self.signers.policy_id})"
        if not keys:
            return BAD_SIGNATURE, f"no key is known to verify a {ev.type} of {ev.shop_id}"
        if signed.valid and signed.key in keys:
            return None
        for key in keys:
            if (key != signed.key or signed.valid is None) and self._check().verify(key, signed.signature,
                                                                                     signed.message):
                return None
        return BAD_SIGNATURE, f"{ev.type} not signed by {self.signers.who(ev)}"

    def _check(self) -> SignatureCheck:
        if self.signatures is None:
            raise RuntimeError("this fold was built without a signature check and its log requires signatures")
        return self.signatures

    # -- shop events -------------------------------------------------------------------------

    def _on_view(self, view: View) -> FoldOutcome:
        return NOTHING

    def _base_ok(self, click: ClickRef) -> bool:
        referrer = click.referrer_shop_id
        return referrer != click.merchant_shop_id and self.membership.is_active(referrer, click.occurred_at)

    def _revalue_clicks(self, changed: list[tuple[ClickRef, bool]], event_id: str, out: list[Entry]) -> None:
        resolve = self.agreements.resolve
        if len(changed) > 1:
            changed = sorted(changed)
        for click, valid in changed:
            agreement = resolve(click.merchant_shop_id, click.referrer_shop_id, click.occurred_at) if valid else None
            self.clicks.revalue(click, valid, agreement, self.postings, event_id, out)

    def _reprice(self, orders: list[OrderSubject], event_id: str, out: list[Entry]) -> list[AttributionDecision]:
        return [reprice(o, event_id, self.clicks, self.agreements, self.membership, self.postings, out)
                for o in orders]

    def _on_click(self, click: Click) -> FoldOutcome:
        return self._fold_click(click_ref(click))

    def _fold_click(self, click: ClickRef) -> FoldOutcome:
        at, event_id, referrer, merchant, visitor = click
        out: list[Entry] = []
        changed = self.clicks.add(click, self._base_ok)
        if len(changed) == 1:
            ref, valid = changed[0]
            agreement = self.agreements.resolve(merchant, referrer, at) if valid else None
            self.clicks.revalue(ref, valid, agreement, self.postings, event_id, out)
        else:
            self._revalue_clicks(changed, event_id, out)
        later = self.orders.at_visitor(merchant, visitor, at)
        decisions = self._reprice(later, event_id, out) if later else ()
        return _posted(out, decisions)

    def _on_order(self, order: Order) -> FoldOutcome:
        merchant, order_id = order.merchant_shop_id, order.order_id
        if self.orders.get(merchant, order_id) is not None or self.orders.is_closed(merchant, order_id):
            return _quarantined(DUPLICATE_ORDER, f"order {order_id} at {merchant} was already folded")
        subject = self.orders.add(order)
        out: list[Entry] = []
        decisions = self._reprice([subject], order.event_id, out)
        late = []
        for refund in self.orders.unpark(order.merchant_shop_id, order.order_id):
            problem = subject.refund_problem(refund)
            if problem is not None:
                late.append((refund.event_id, problem[0]))
                continue
            subject.accept(refund)
            apply_refunds(subject, self.postings, order.event_id, out, refund, qualifier=refund.event_id)
        return _posted(out, decisions, late)

    def _on_refund(self, refund: Refund) -> FoldOutcome:
        subject = self.orders.get(refund.merchant_shop_id, refund.order_id)
        if subject is None:
            if self.orders.is_closed(refund.merchant_shop_id, refund.order_id):
                return _quarantined(PERIOD_CLOSED, f"order {refund.order_id} at {refund.merchant_shop_id} is in "
                                                   "a closed period: correct it with an adjustment")
            self.orders.park(refund)
            return PARKED
        problem = subject.refund_problem(refund)
        if problem is not None:
            return _quarantined(*problem)
        subject.accept(refund)
        out: list[Entry] = []
        apply_refunds(subject, self.postings, refund.event_id, out, refund)
        return _posted(out)

    # -- alliance events ---------------------------------------------------------------------

    def _on_member(self, member: Member) -> FoldOutcome:
        """A member event changes the shop's status from its occurred_at on: re-evaluate
        the shop's clicks from then, and the orders those clicks could win."""
        self.membership.record(member)
        self.signers.adopt(member)
        shop, since = member.member_shop_id, member.occurred_at
        out: list[Entry] = []
        self._revalue_clicks(self.clicks.recheck_referrer(shop, since, self._base_ok), member.event_id, out)
        orders = {}
        for (merchant, visitor), t in self.clicks.visitors_of_referrer_since(shop, since).items():
            for o in self.orders.at_visitor(merchant, visitor, t):
                orders[o.subject_id] = o
        ordered = sorted(orders.values(), key=lambda o: (o.occurred_at, o.subject_id))
        decisions = self._reprice(ordered, member.event_id, out)
        return _posted(out, decisions)

    def _on_agreement(self, agreement: Agreement) -> FoldOutcome:
        """A new version can change what everything in its scope from effective_from earns."""
        self.agreements.add(agreement)
        out: list[Entry] = []
        since = agreement.effective_from
        valid = self.clicks.valid_clicks(agreement.merchant_shop_id, agreement.referrer_shop_id, since)
        self._revalue_clicks([(c, True) for c in valid], agreement.event_id, out)
        orders = self.orders.at_merchant(agreement.merchant_shop_id, since)
        decisions = self._reprice(orders, agreement.event_id, out)
        return _posted(out, decisions)

    def _on_settlement(self, settlement: Settlement) -> FoldOutcome:
        out: list[Entry] = []
        for subject in settle_period(self.postings.pending_subjects(), settlement.period_end):
            self.postings.settle(subject, settlement.event_id, out)
        return _posted(out)

    def _on_close(self, close: Close) -> FoldOutcome:
        """SPEC §9a: everything at or before closed_through becomes final. Closing posts no entry;
        parked refunds of the closed period are given up, and the fold forgets what it no longer
        needs. A close not later than the current one changes nothing."""
        through = close.closed_through
        if self.closed_through is not None and through <= self.closed_through:
            return NOTHING
        self.closed_through = through
        given_up = self.orders.close_through(through)
        self.clicks.close_through(through, through - CLICK_MEMORY_MS)
        self._seen = {key: remembered for key, remembered in self._seen.items()
                      if (at := remembered_at(remembered)) is None or at > through}
        return _posted((), (), [(refund.event_id, PERIOD_CLOSED) for refund in given_up])

    def _on_policy(self, policy: Policy) -> FoldOutcome:
        self.signers.adopt(policy)
        return NOTHING

    def _on_payout(self, payout: Payout) -> FoldOutcome:
        merchant, referrer, currency = payout.merchant_shop_id, payout.referrer_shop_id, payout.currency
        owed = self.journal.payable_owed(merchant, referrer, currency)
        if payout.amount_minor > owed:
            return _quarantined(PAYOUT_EXCEEDS_PAYABLE, f"{merchant} owes {referrer} {owed} {currency} payable, "
                                                        f"payout is {payout.amount_minor} {currency}")
        if payout.amount_minor == 0:
            return NOTHING
        entries = self.journal.post(payout.event_id, subject_name("payout", merchant, payout.payout_id), "payout",
                                    payout_legs(referrer, merchant, currency, payout.amount_minor), NO_BASIS)
        return _posted(entries)

    def _on_adjustment(self, adj: Adjustment) -> FoldOutcome:
        if adj.amount_minor == 0:
            return NOTHING
        legs = commission_legs(adj.referrer_shop_id, adj.merchant_shop_id, adj.currency, adj.amount_minor, True)
        entries = self.journal.post(adj.event_id, subject_name("adjustment", adj.merchant_shop_id, adj.adjustment_id),
                                    "adjust", legs, reason_basis(adj.reason))
        return _posted(entries)
