"""A quarantine names a time as people read it (``ledger/times.py``): the fold's own calendar
arithmetic, checked against Python's calendar on the days where calendars go wrong."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refledger.ledger.times import iso
from refledger.schemas.timestamps import MAX_MILLIS, MIN_MILLIS

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def by_datetime(millis: int) -> str:
    d = EPOCH + timedelta(milliseconds=millis)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d:%H:%M:%S}.{d.microsecond // 1000:03d}Z"


def ms(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - EPOCH) // timedelta(milliseconds=1)


@pytest.mark.parametrize("text", [
    "1970-01-01T00:00:00.000Z",   # the epoch
    "1969-12-31T23:59:59.999Z",   # one millisecond before it
    "2026-10-15T23:59:59.999Z",   # the end of a day
    "2026-11-30T16:00:00.000Z",   # Beijing's December begins
    "2000-02-29T12:00:00.500Z",   # a leap day of a year divisible by 400
    "2000-03-01T00:00:00.000Z",
    "1900-02-28T23:59:59.999Z",   # 1900 is no leap year
    "1900-03-01T00:00:00.000Z",
    "2100-02-28T00:00:00.001Z",   # nor is 2100
    "2100-03-01T00:00:00.000Z",
    "2024-02-29T23:59:59.999Z",
    "2024-12-31T23:59:59.999Z",   # the last day of a leap year
    "2025-01-01T00:00:00.000Z",
    "0001-01-01T00:00:00.000Z",   # the first day ISO 8601 names
    "9999-12-31T23:59:59.999Z",   # the last
])
def test_a_time_is_named_as_written(text):
    assert iso(ms(text)) == text


@given(st.integers(min_value=MIN_MILLIS, max_value=MAX_MILLIS))
def test_every_time_is_named_as_pythons_calendar_names_it(millis):
    assert iso(millis) == by_datetime(millis)
