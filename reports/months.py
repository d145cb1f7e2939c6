"""The alliance's month asked for by a report (SPEC §11): its bounds, or the asker's mistake.

A read query may run in a consumer, behind its read socket; a malformed
period or an unknown zone must come back as a `QueryError`, which the socket
reports as it is, not as a failure of the consumer.
"""

from __future__ import annotations

from refledger.schemas.periods import PeriodError, alliance_zone, month_bounds
from refledger.store.queries import QueryError


class MonthError(QueryError):
    """Not a month (YYYY-MM), or not a time zone."""


def alliance_month(period: str, tz: str | None = None) -> tuple[int, int]:
    """The first and the last millisecond (UTC epoch ms) of ``period`` in the alliance's zone."""
    try:
        return month_bounds(period, alliance_zone(tz))
    except PeriodError as exc:
        raise MonthError(str(exc)) from exc
