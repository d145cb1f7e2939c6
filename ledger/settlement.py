"""Which pending amounts a settlement moves to payable (SPEC §9).

A settlement with ``period_end`` P moves every nonzero pending amount whose
order (or cpc click) occurred at or before P − hold_days of the agreement
that priced it. Subjects are taken in (occurred_at, subject id) order so the
postings come out in the same order whatever the fold's internal layout.
"""

from __future__ import annotations

from typing import Iterable

from refledger.ledger.events import DAY_MS
from refledger.ledger.subjects import Subject


def settle_period(pending: Iterable[Subject], period_end: int) -> list[Subject]:
    """The subjects a settlement with this ``period_end`` settles, in posting order."""
    due = [s for s in pending
           if s.settles and s.occurred_at <= period_end - s.terms.hold_days * DAY_MS]
    due.sort(key=lambda s: (s.occurred_at, s.subject_id))
    return due
