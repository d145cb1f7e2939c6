"""UTC instants as ``int`` milliseconds since the Unix epoch, and their JSON Lines text form.

Text form (SPEC section 2): ``YYYY-MM-DDTHH:MM:SS.mmmZ``, always written with
three fraction digits and ``Z``. Parsing is strict:

* date and time are required, separated by ``T``, seconds included;
* the fraction may have 0 to 9 digits but must be a whole number of
  milliseconds (``.5``, ``.500``, ``.500000`` are accepted, ``.5001`` is not);
* the offset must be ``Z`` or ``+00:00``; any other offset, or none, is rejected
  rather than converted, because the contract says events are stamped in UTC
  and a local time is more likely a bug than a choice;
* years 0001 to 9999 (the range the text form can express).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_TEXT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_UTC_OFFSETS = frozenset({"Z", "+00:00"})
_EPOCH = datetime(1970, 1, 1)
_ONE_MS = timedelta(milliseconds=1)

MIN_MILLIS = (datetime(1, 1, 1) - _EPOCH) // _ONE_MS
MAX_MILLIS = (datetime(9999, 12, 31, 23, 59, 59, 999000) - _EPOCH) // _ONE_MS


def parse_utc_millis(text: str) -> int:
    """Milliseconds since the epoch of a UTC time in text form; ``ValueError`` says what is wrong."""
    match = _TEXT.fullmatch(text)
    if match is None:
        raise ValueError(f"expected a UTC time like 2026-11-01T10:00:00.000Z, got {text!r}")
    if match[8] not in _UTC_OFFSETS:
        raise ValueError(f"offset {match[8]} is not UTC (Z or +00:00): {text!r}")
    fraction = (match[7] or "").ljust(9, "0")
    if fraction[3:] != "000000":
        raise ValueError(f"more precise than a millisecond: {text!r}")
    try:
        moment = datetime(*(int(part) for part in match.groups()[:6]))
    except ValueError:
        raise ValueError(f"not a valid calendar date and time: {text!r}") from None
    return (moment - _EPOCH) // _ONE_MS + int(fraction[:3])


def format_utc_millis(millis: int) -> str:
    """Text form of a UTC instant given in milliseconds since the epoch."""
    if not MIN_MILLIS <= millis <= MAX_MILLIS:
        raise ValueError(f"time out of range for the text form: {millis}")
    seconds, rest = divmod(millis, 1000)
    m = _EPOCH + timedelta(seconds=seconds)
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{rest:03d}Z"


def naive_utc_millis(moment: datetime) -> int:
    """Milliseconds since the epoch of a naive UTC datetime (how the ledger file's TIMESTAMP columns read)."""
    return (moment - _EPOCH) // _ONE_MS


def naive_utc(millis: int) -> datetime:
    """The naive UTC datetime of an epoch-millisecond time (to compare with the ledger file's TIMESTAMPs)."""
    return _EPOCH + millis * _ONE_MS
