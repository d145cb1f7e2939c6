"""Clicks: the index attribution reads, and the 24-hour rule for cpc and swap (SPEC §6).

A click is *valid* when it is not a self-referral, its referrer is an active
member at the click, and no valid click of the same (visitor, referrer,
merchant) was counted less than 24 hours before it, clicks taken in
(occurred_at, event_id) order. Validity does not depend on the agreement:
a valid click earns when the agreement resolved for (merchant, referrer) at
the click's time is ``cpc`` (money) or ``swap`` (one traffic credit).

The rule is greedy, so a click arriving out of order can invalidate a later
click and revalidate another: the whole chain of its (visitor, referrer,
merchant) is then recomputed and every click whose validity flipped is
reported back to the fold. A click arriving in order only needs to know
whether a valid click of its chain lies less than 24 hours before it.

The index holds each click as a ``ClickRef``, a named tuple
``(occurred_at, event_id, referrer_shop_id, merchant_shop_id, visitor_id)``:
its natural order is the rule's (occurred_at, event_id) order, and tuples of
strings and integers cost the garbage collector nothing, which matters with
millions of clicks in memory.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from itertools import chain
from typing import Callable, Sequence

from refledger.ledger.attribution import ClickRef
from refledger.ledger.entries import CLICK, Entry
from refledger.ledger.events import ANY, DAY_MS, Agreement, Click
from refledger.ledger.subjects import Postings, Subject, Terms, click_subject_name

SMALL_BUCKET = 64  # a visitor's clicks to one merchant: a tuple up to this many, then a list
BaseOk = Callable[[ClickRef], bool]  # not a self-referral and referrer active at the click


_new = tuple.__new__


def click_ref(click: Click) -> ClickRef:
    return _new(ClickRef, (click.occurred_at, click.event_id, click.referrer_shop_id, click.merchant_shop_id,
                           click.visitor_id))


def counted_flags(clicks: Sequence[ClickRef], base_ok: Sequence[bool], last: int | None = None) -> list[bool]:
    """The 24-hour rule over one (visitor, referrer, merchant), clicks in order; ``last`` is the time of
    the last valid click before them, if any."""
    flags = []
    for click, ok in zip(clicks, base_ok):
        valid = ok and (last is None or click.occurred_at - last >= DAY_MS)
        if valid:
            last = click.occurred_at
        flags.append(valid)
    return flags


def _with_click(bucket, click: ClickRef):
    """The sorted bucket with ``click`` added (small buckets are tuples, rebuilt; large ones lists)."""
    if type(bucket) is list:
        if click > bucket[-1]:
            bucket.append(click)
        else:
            insort(bucket, click)
        return bucket
    if click > bucket[-1]:
        grown = bucket + (click,)
    else:
        i = bisect_right(bucket, click)
        grown = bucket[:i] + (click,) + bucket[i:]
    return list(grown) if len(grown) > SMALL_BUCKET else grown


def click_terms(click: ClickRef, valid: bool, agreement: Agreement | None) -> Terms | None:
    """What a click earns by itself: cpc money or one swap credit, if valid."""
    if not valid or agreement is None:
        return None
    if agreement.model == "cpc":
        return Terms(click.referrer_shop_id, click.merchant_shop_id, agreement.currency, agreement.amount_minor,
                     agreement.agreement_id, agreement.version, agreement.event_id, "cpc", None, (),
                     click.event_id, agreement.hold_days)
    if agreement.model == "swap":
        return Terms(click.referrer_shop_id, click.merchant_shop_id, CLICK, 1, agreement.agreement_id, agreement.version,
                     agreement.event_id, "swap", None, (), click.event_id, 0)
    return None


class ClickBook:
    """Every click folded in this partition, indexed for attribution and re-evaluation.

    Clicks are kept per (merchant, visitor), sorted: attribution reads one such
    list, and the clicks of a (visitor, referrer, merchant) chain are the ones
    of its referrer in that list. Validity is a flag per click (not per click id:
    an id may come back on a new click after a close, SPEC §9a).
    """

    __slots__ = ("_by_mv", "_by_referrer", "_valid", "_subjects", "closed_through")

    def __init__(self):
        self._by_mv: dict[tuple[str, str | None], tuple[ClickRef, ...] | list[ClickRef]] = {}
        self._by_referrer: dict[str, list[ClickRef]] = {}
        # keyed by the click itself, not its id: after a close an id may come back on a new click (SPEC §9a)
        self._valid: dict[ClickRef, bool] = {}
        self._subjects: dict[ClickRef, Subject] = {}
        self.closed_through: int | None = None  # clicks at or before it are final (SPEC §9a)

    def add(self, click: ClickRef, base_ok: BaseOk) -> list[tuple[ClickRef, bool]]:
        """Index the click; return (click, validity) for it and every click whose validity flipped."""
        at, _event_id, referrer, merchant, visitor = click
        by_referrer = self._by_referrer.get(referrer)
        if by_referrer is None:
            self._by_referrer[referrer] = [click]
        else:
            by_referrer.append(click)
        mv = (merchant, visitor)
        bucket = self._by_mv.get(mv)
        if bucket is None:
            self._by_mv[mv] = (click,)
            valid = self._valid[click] = base_ok(click)
            return [(click, valid)]
        in_order = click > bucket[-1]
        bucket = self._by_mv[mv] = _with_click(bucket, click)
        if not in_order and any(c.referrer_shop_id == referrer and c > click for c in bucket):
            return self._recheck_chain(bucket, referrer, base_ok, click)
        valid = base_ok(click)
        if valid:
            since = at - DAY_MS
            flags = self._valid
            for c in reversed(bucket):
                if c.occurred_at <= since:
                    break
                if c.referrer_shop_id == referrer and c is not click and flags.get(c):
                    valid = False
                    break
        self._valid[click] = valid
        return [(click, valid)]

    def _recheck_chain(self, bucket: Sequence[ClickRef], referrer: str, base_ok: BaseOk,
                       new: ClickRef | None = None) -> list[tuple[ClickRef, bool]]:
        """Run the 24-hour rule again over the referrer's chain in this bucket. Clicks of a closed
        period keep their flags (they are final); the rule runs on from the last valid one."""
        chain = [c for c in bucket if c.referrer_shop_id == referrer]
        last = None
        closed = self.closed_through
        if closed is not None:
            flags = self._valid
            done = 0
            for c in chain:
                if c.occurred_at > closed:
                    break
                if flags.get(c):
                    last = c.occurred_at
                done += 1
            chain = chain[done:]
        flags = counted_flags(chain, [base_ok(c) for c in chain], last)
        changed = []
        for c, valid in zip(chain, flags):
            if c is new or self._valid.get(c) is not valid:
                self._valid[c] = valid
                changed.append((c, valid))
        return changed

    def recheck_referrer(self, referrer: str, since: int, base_ok: BaseOk) -> list[tuple[ClickRef, bool]]:
        """Re-run the 24-hour rule for the referrer's chains with a click at or after ``since``."""
        changed = []
        for mv in self.visitors_of_referrer_since(referrer, since):
            changed.extend(self._recheck_chain(self._by_mv[mv], referrer, base_ok))
        return changed

    def visitors_of_referrer_since(self, referrer: str, since: int) -> dict[tuple[str, str | None], int]:
        """(merchant, visitor) → earliest click time, for the referrer's clicks at or after ``since``."""
        earliest: dict[tuple[str, str | None], int] = {}
        for c in self._by_referrer.get(referrer, ()):
            if c.occurred_at >= since:
                mv = (c.merchant_shop_id, c.visitor_id)
                if c.occurred_at < earliest.get(mv, c.occurred_at + 1):
                    earliest[mv] = c.occurred_at
        return earliest

    def for_visitor(self, merchant: str, visitor: str | None) -> Sequence[ClickRef]:
        """The visitor's clicks through to this merchant, in (occurred_at, event_id) order."""
        return self._by_mv.get((merchant, visitor), ())

    def valid_clicks(self, merchant: str, referrer: str, since: int) -> list[ClickRef]:
        """Valid clicks at or after ``since`` matching a scope (``*`` matches any shop)."""
        referrers = self._by_referrer.values() if referrer == ANY else [self._by_referrer.get(referrer, ())]
        flags = self._valid
        return [c for group in referrers for c in group
                if c.occurred_at >= since and (merchant == ANY or c.merchant_shop_id == merchant) and flags.get(c)]

    def close_through(self, closed_through: int, keep_from: int) -> None:
        """The books are closed through ``closed_through``: clicks at or before it keep their validity
        from now on, and clicks before ``keep_from`` (no open order can reach back that far) are
        forgotten. What a forgotten cpc click still has pending stays with the postings until a
        settlement moves it."""
        self.closed_through = closed_through
        gone: list[ClickRef] = []
        for mv, bucket in list(self._by_mv.items()):
            if bucket[0].occurred_at >= keep_from:
                continue
            i = bisect_right(bucket, (keep_from,))
            gone.extend(bucket[:i])
            if i == len(bucket):
                del self._by_mv[mv]
            else:
                rest = bucket[i:]
                self._by_mv[mv] = rest if type(rest) is tuple or len(rest) > SMALL_BUCKET else tuple(rest)
        if not gone:
            return
        for referrer, clicks in list(self._by_referrer.items()):
            kept = [c for c in clicks if c.occurred_at >= keep_from]
            if kept:
                self._by_referrer[referrer] = kept
            else:
                del self._by_referrer[referrer]
        for c in gone:
            self._valid.pop(c, None)
            self._subjects.pop(c, None)

    def size(self) -> int:
        """How many clicks are remembered."""
        return len(self._valid)

    def subjects(self) -> list[Subject]:
        """The subjects of remembered clicks that earn (cpc, swap)."""
        return list(self._subjects.values())

    def rows(self) -> list[tuple[ClickRef, bool]]:
        """Every remembered click with its validity, in (occurred_at, event_id) order."""
        flags = self._valid
        return [(click, flags[click]) for click in sorted(chain.from_iterable(self._by_mv.values()))]

    def restore(self, clicks: list[tuple[ClickRef, bool]], subjects: dict[str, Subject],
                closed_through: int | None) -> None:
        """Load a snapshot's clicks (in order, with validity) and click subjects (by name) into an
        empty book."""
        for click, valid in clicks:
            self._by_referrer.setdefault(click.referrer_shop_id, []).append(click)
            mv = (click.merchant_shop_id, click.visitor_id)
            bucket = self._by_mv.get(mv)
            self._by_mv[mv] = (click,) if bucket is None else _with_click(bucket, click)
            self._valid[click] = valid
            subject = subjects.get(click_subject_name(click.event_id, click.occurred_at))
            if subject is not None:
                self._subjects[click] = subject
        self.closed_through = closed_through

    def revalue(self, click: ClickRef, valid: bool, agreement: Agreement | None, postings: Postings,
                event_id: str, out: list[Entry]) -> None:
        """Post the difference between what the click earns now and what was posted for it."""
        terms = click_terms(click, valid, agreement)
        subject = self._subjects.get(click)
        if subject is None:
            if terms is None:
                return
            subject = self._subjects[click] = Subject(click_subject_name(click.event_id, click.occurred_at),
                                                                click.occurred_at)
        postings.set_terms(subject, terms, event_id, out)
