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

The index keeps clicks in columns, not an object per click: a busy alliance
folds millions of clicks and SPEC §9a keeps three months of them. Each
click is a number (its position in the columns); its time is an int64, its
event id UTF-8 bytes in one buffer, its shops and visitor small codes into
one table of names, its validity a byte. A ``ClickRef``, a named tuple
``(occurred_at, event_id, referrer_shop_id, merchant_shop_id, visitor_id)``
whose natural order is the rule's (occurred_at, event_id) order, is made
when a caller reads a click. A close forgets the clicks no open order can
reach and packs the columns again, names included, so the index stays the
size of what SPEC §9a keeps (about 150 bytes a click with its place in the
lists and the names, against 310–350 as named tuples; `tests/test_fold_memory.py`).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from typing import Callable, Iterable, Sequence

from refledger.ledger.attribution import ClickRef
from refledger.ledger.entries import CLICK, Entry
from refledger.ledger.events import ANY, DAY_MS, Agreement, Click
from refledger.ledger.subjects import Postings, Subject, Terms, click_subject_name

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

    __slots__ = ("_at", "_id_bytes", "_id_end", "_referrer", "_merchant", "_visitor", "_valid", "_codes", "_names",
                 "_by_mv", "_by_referrer", "_subjects", "closed_through")

    def __init__(self):
        self._at = array("q")             # click number → occurred_at
        self._id_bytes = bytearray()      # every click's event id, UTF-8, one after the other
        self._id_end = array("Q")         # click number → where its event id ends in _id_bytes
        self._referrer = array("I")       # click number → code of its referrer, merchant, visitor
        self._merchant = array("I")
        self._visitor = array("I")
        self._valid = bytearray()         # click number → 1 when the 24-hour rule counts it
        self._codes: dict[str | None, int] = {}  # a shop's or visitor's name → its code
        self._names: list[str | None] = []       # code → name
        # (merchant code, visitor code) → click numbers in (occurred_at, event_id) order
        self._by_mv: dict[int, array] = {}
        self._by_referrer: dict[int, array] = {}  # referrer code → its click numbers
        # keyed by the click itself, not its id: after a close an id may come back on a new click (SPEC §9a)
        self._subjects: dict[ClickRef, Subject] = {}
        self.closed_through: int | None = None  # clicks at or before it are final (SPEC §9a)

    # -- the columns ---------------------------------------------------------------------------

    def _code(self, name: str | None) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self._names)
            self._names.append(name)
        return code

    def _event_id(self, n: int) -> str:
        end = self._id_end
        return self._id_bytes[end[n - 1] if n else 0:end[n]].decode("utf-8", "surrogatepass")

    def _named(self, at: int, event_id: str, referrer: int, merchant: int, visitor: int) -> ClickRef:
        """A click as callers read it, its shops and visitor named with the index's own strings (not
        the copies a pickle or a snapshot made: a click that earns is kept as the key of what it earns)."""
        names = self._names
        return _new(ClickRef, (at, event_id, names[referrer], names[merchant], names[visitor]))

    def _ref(self, n: int) -> ClickRef:
        return self._named(self._at[n], self._event_id(n), self._referrer[n], self._merchant[n], self._visitor[n])

    def _order_key(self, n: int) -> tuple[int, str]:
        return self._at[n], self._event_id(n)

    def _append(self, at: int, event_id: str, referrer: int, merchant: int, visitor: int, valid: bool) -> int:
        n = len(self._at)
        self._at.append(at)
        self._id_bytes += event_id.encode("utf-8", "surrogatepass")
        self._id_end.append(len(self._id_bytes))
        self._referrer.append(referrer)
        self._merchant.append(merchant)
        self._visitor.append(visitor)
        self._valid.append(valid)
        by_referrer = self._by_referrer.get(referrer)
        if by_referrer is None:
            self._by_referrer[referrer] = array("I", (n,))
        else:
            by_referrer.append(n)
        return n

    def _bucket(self, merchant: str, visitor: str | None) -> array | None:
        m, v = self._codes.get(merchant), self._codes.get(visitor)
        if m is None or v is None:
            return None
        return self._by_mv.get(m << 32 | v)

    # -- folding -------------------------------------------------------------------------------

    def add(self, click: ClickRef, base_ok: BaseOk) -> list[tuple[ClickRef, bool]]:
        """Index the click; return (click, validity) for it and every click whose validity flipped."""
        at, event_id, referrer, merchant, visitor = click
        r, m, v = self._code(referrer), self._code(merchant), self._code(visitor)
        n = self._append(at, event_id, r, m, v, False)
        mv = m << 32 | v
        click = self._named(at, event_id, r, m, v)
        bucket = self._by_mv.get(mv)
        if bucket is None:
            self._by_mv[mv] = array("I", (n,))
            valid = base_ok(click)
            self._valid[n] = valid
            return [(click, valid)]
        times, refs, flags = self._at, self._referrer, self._valid
        last = bucket[-1]
        if at > times[last] or (at == times[last] and event_id > self._event_id(last)):
            bucket.append(n)
        else:  # out of order: its place, and whether a click of its chain comes after it
            i = bisect_right(bucket, (at, event_id), key=self._order_key)
            bucket.insert(i, n)
            if any(refs[c] == r for c in bucket[i + 1:]):
                return self._recheck_chain(bucket, r, base_ok, n)
        valid = base_ok(click)
        if valid:
            since = at - DAY_MS
            for c in reversed(bucket):
                if times[c] <= since:
                    break
                if refs[c] == r and c != n and flags[c]:
                    valid = False
                    break
        flags[n] = valid
        return [(click, valid)]

    def _recheck_chain(self, bucket: Sequence[int], referrer: int, base_ok: BaseOk,
                       new: int | None = None) -> list[tuple[ClickRef, bool]]:
        """Run the 24-hour rule again over the referrer's chain in this bucket. Clicks of a closed
        period keep their flags (they are final); the rule runs on from the last valid one."""
        refs, times, flags = self._referrer, self._at, self._valid
        chain = [c for c in bucket if refs[c] == referrer]
        last = None
        closed = self.closed_through
        if closed is not None:
            done = 0
            for c in chain:
                if times[c] > closed:
                    break
                if flags[c]:
                    last = times[c]
                done += 1
            chain = chain[done:]
        clicks = [self._ref(c) for c in chain]
        counted = counted_flags(clicks, [base_ok(c) for c in clicks], last)
        changed = []
        for c, click, valid in zip(chain, clicks, counted):
            if c == new or bool(flags[c]) is not valid:
                flags[c] = valid
                changed.append((click, valid))
        return changed

    def recheck_referrer(self, referrer: str, since: int, base_ok: BaseOk) -> list[tuple[ClickRef, bool]]:
        """Re-run the 24-hour rule for the referrer's chains with a click at or after ``since``."""
        r = self._codes.get(referrer)
        if r is None:
            return []
        changed = []
        for mv in self._chains_since(r, since):
            changed.extend(self._recheck_chain(self._by_mv[mv], r, base_ok))
        return changed

    def _chains_since(self, referrer: int, since: int) -> dict[int, int]:
        """(merchant, visitor) code pair → earliest click time, for the referrer's clicks at or after ``since``."""
        earliest: dict[int, int] = {}
        times, merchants, visitors = self._at, self._merchant, self._visitor
        for c in self._by_referrer.get(referrer, ()):
            at = times[c]
            if at >= since:
                mv = merchants[c] << 32 | visitors[c]
                if at < earliest.get(mv, at + 1):
                    earliest[mv] = at
        return earliest

    def visitors_of_referrer_since(self, referrer: str, since: int) -> dict[tuple[str, str | None], int]:
        """(merchant, visitor) → earliest click time, for the referrer's clicks at or after ``since``."""
        r = self._codes.get(referrer)
        if r is None:
            return {}
        names = self._names
        return {(names[mv >> 32], names[mv & 0xFFFFFFFF]): at for mv, at in self._chains_since(r, since).items()}

    def for_visitor(self, merchant: str, visitor: str | None) -> Sequence[ClickRef]:
        """The visitor's clicks through to this merchant, in (occurred_at, event_id) order."""
        bucket = self._bucket(merchant, visitor)
        return () if bucket is None else [self._ref(c) for c in bucket]

    def valid_clicks(self, merchant: str, referrer: str, since: int) -> list[ClickRef]:
        """Valid clicks at or after ``since`` matching a scope (``*`` matches any shop)."""
        if referrer == ANY:
            groups: Iterable[array] = self._by_referrer.values()
        else:
            r = self._codes.get(referrer)
            groups = () if r is None else [self._by_referrer.get(r, ())]
        m = None if merchant == ANY else self._codes.get(merchant, -1)
        times, merchants, flags = self._at, self._merchant, self._valid
        return [self._ref(c) for group in groups for c in group
                if times[c] >= since and (m is None or merchants[c] == m) and flags[c]]

    def close_through(self, closed_through: int, keep_from: int) -> None:
        """The books are closed through ``closed_through``: clicks at or before it keep their validity
        from now on, and clicks before ``keep_from`` (no open order can reach back that far) are
        forgotten, the columns packed again without them. What a forgotten cpc click still has
        pending stays with the postings until a settlement moves it."""
        self.closed_through = closed_through
        times = self._at
        if not times or min(times) >= keep_from:
            return
        old = (times, self._id_bytes, self._id_end, self._referrer, self._merchant, self._visitor, self._valid,
               self._names, self._by_mv, self._subjects)
        self.__init__()
        self.closed_through = closed_through
        times, id_bytes, id_end, referrers, merchants, visitors, flags, names, by_mv, subjects = old
        renumbered = array("q", (-1,)) * len(times)  # old number → new, -1 when forgotten
        start = 0
        for c in range(len(times)):  # in arrival order, as the referrers' lists keep them
            end = id_end[c]
            if times[c] >= keep_from:
                event_id = id_bytes[start:end].decode("utf-8", "surrogatepass")
                renumbered[c] = self._append(times[c], event_id, self._code(names[referrers[c]]),
                                             self._code(names[merchants[c]]), self._code(names[visitors[c]]),
                                             flags[c])
            start = end
        for bucket in by_mv.values():
            kept = array("I", (renumbered[c] for c in bucket if renumbered[c] >= 0))
            if kept:
                n = kept[0]
                self._by_mv[self._merchant[n] << 32 | self._visitor[n]] = kept
        self._subjects = {click: subject for click, subject in subjects.items() if click.occurred_at >= keep_from}

    # -- reading and snapshots -----------------------------------------------------------------

    def size(self) -> int:
        """How many clicks are remembered."""
        return len(self._at)

    def subjects(self) -> list[Subject]:
        """The subjects of remembered clicks that earn (cpc, swap)."""
        return list(self._subjects.values())

    def rows(self) -> list[tuple[ClickRef, bool]]:
        """Every remembered click with its validity, in (occurred_at, event_id) order."""
        flags = self._valid
        return sorted((self._ref(c), bool(flags[c])) for c in range(len(self._at)))

    def restore(self, clicks: list[tuple[ClickRef, bool]], subjects: dict[str, Subject],
                closed_through: int | None) -> None:
        """Load a snapshot's clicks (in order, with validity) and click subjects (by name) into an
        empty book."""
        code = self._code
        for click, valid in clicks:
            at, event_id, referrer, merchant, visitor = click
            r, m, v = code(referrer), code(merchant), code(visitor)
            n = self._append(at, event_id, r, m, v, valid)
            bucket = self._by_mv.get(m << 32 | v)
            if bucket is None:
                self._by_mv[m << 32 | v] = array("I", (n,))
            else:
                bucket.append(n)
            subject = subjects.get(click_subject_name(event_id, at))
            if subject is not None:
                self._subjects[self._named(at, event_id, r, m, v)] = subject
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
