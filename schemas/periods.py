"""Months and dates in the alliance's time zone (SPEC §11).

Event times are UTC milliseconds everywhere inside, and the fold never looks
at a time zone. People, though, think in the alliance's months: November in
Asia/Shanghai ends at 2026-11-30T15:59:59.999Z, so an order placed at 02:00
Beijing time on December 1st belongs to December. The zone is `--tz`, else
`$REFLEDGER_TZ`, else Asia/Shanghai.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "Asia/Shanghai"
ZONE_VARIABLE = "REFLEDGER_TZ"
_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class PeriodError(ValueError):
    """A period that is not YYYY-MM, or a time zone that does not exist."""


def alliance_zone(name: str | None = None) -> ZoneInfo:
    """The zone named, else $REFLEDGER_TZ, else Asia/Shanghai."""
    name = name or os.environ.get(ZONE_VARIABLE) or DEFAULT_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PeriodError(f"unknown time zone {name!r} (an IANA name such as {DEFAULT_ZONE})") from exc


def parse_period(period: str) -> tuple[int, int]:
    """``"2026-11"`` → (2026, 11)."""
    match = _PERIOD.match(period or "")
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise PeriodError(f"period must be YYYY-MM, got {period!r}")
    return int(match.group(1)), int(match.group(2))


def _millis(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def month_bounds(period: str, zone: ZoneInfo) -> tuple[int, int]:
    """The first and the last millisecond (both inclusive, UTC epoch ms) of a month in ``zone``."""
    year, month = parse_period(period)
    start = datetime(year, month, 1, tzinfo=zone)
    following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return _millis(start), _millis(following) - 1


def period_of(millis: int, zone: ZoneInfo) -> str:
    """The month (YYYY-MM) a UTC epoch-millisecond time falls in, in ``zone``."""
    return local_time(millis, zone).strftime("%Y-%m")


def shift_period(period: str, months: int) -> str:
    """The period ``months`` later (earlier when negative)."""
    year, month = parse_period(period)
    index = year * 12 + month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def local_time(millis: int, zone: ZoneInfo) -> datetime:
    """A UTC epoch-millisecond time as an aware datetime in ``zone``."""
    return (_EPOCH + timedelta(milliseconds=millis)).astimezone(zone)


def show_time(millis: int, zone: ZoneInfo, seconds: bool = False) -> str:
    """For people: ``2026-12-01 02:00`` in the alliance's zone."""
    return local_time(millis, zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def show_date(millis: int, zone: ZoneInfo) -> str:
    return local_time(millis, zone).strftime("%Y-%m-%d")


_MOMENT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?(Z|[+-]\d{2}:\d{2})?$")


def parse_moment(text: str, zone: ZoneInfo) -> int:
    """A time given by a person, as UTC epoch milliseconds (``--at``).

    ``2026-12-15T08:30:00Z`` or ``…+08:00`` is that instant; without an offset
    the time is in ``zone``; a date alone means the end of that day in ``zone``
    (its last millisecond), so ``--at 2026-12-15`` includes all of the 15th.
    """
    match = _MOMENT.match((text or "").strip())
    if not match:
        raise PeriodError(f"expected a time like 2026-12-15, 2026-12-15T08:30 or 2026-12-15T00:30:00Z, got {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if hour is None and offset:
        raise PeriodError(f"a date has no offset: {text!r}")
    try:
        if hour is None:
            following = datetime(int(year), int(month), int(day)) + timedelta(days=1)
            return _millis(following.replace(tzinfo=zone)) - 1
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                          int((fraction or "0").ljust(3, "0")) * 1000)
    except ValueError as exc:
        raise PeriodError(f"not a valid date and time: {text!r} ({exc})") from None
    if offset is None:
        return _millis(moment.replace(tzinfo=zone))
    sign = 1 if offset == "Z" or offset[0] == "+" else -1
    shift = timedelta() if offset == "Z" else timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return _millis(moment.replace(tzinfo=timezone(sign * shift)))
