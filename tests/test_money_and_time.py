"""Money and time as people read them (SPEC §11): the alliance's own currency symbols and months."""

from __future__ import annotations

import pytest

from refledger.reports.money import LocaleError, as_decimal, format_count, format_money
from refledger.schemas.periods import (
    PeriodError, alliance_zone, month_bounds, period_of, shift_period, show_time,
)
from refledger.schemas.timestamps import format_utc_millis, parse_utc_millis


@pytest.mark.parametrize("amount, currency, locale, shown", [
    (123456, "CNY", "zh_CN", "¥1,234.56"),
    (1200, "USD", "zh_CN", "US$12.00"),
    (500, "JPY", "zh_CN", "JP¥500"),
    (123456, "CNY", "en_US", "CN¥1,234.56"),
    (1200, "USD", "en_US", "$12.00"),
    (-5, "CNY", "zh_CN", "-¥0.05"),
    (0, "CNY", "zh_CN", "¥0.00"),
    (100, "CNY", "zh_CN", "¥1.00"),
    (1234567, "BHD", "en_US", "BHD1,234.567"),
    (10**12, "CNY", "zh_CN", "¥10,000,000,000.00"),
])
def test_fen_are_shown_as_yuan_and_yen_have_no_decimals(amount, currency, locale, shown):
    assert format_money(amount, currency, locale) == shown


def test_a_hundred_fen_is_one_yuan_not_a_hundred():
    # "b-cups pays c-snacks 100 CNY" used to mean ¥1.00
    assert format_money(100, "CNY") == "¥1.00"
    assert str(as_decimal(100, "CNY")) == "1.00" and str(as_decimal(100, "JPY")) == "100"


def test_counts_are_grouped_and_an_unknown_locale_is_a_clear_error():
    assert format_count(1234567) == "1,234,567"
    with pytest.raises(LocaleError, match="unknown locale 'xx_YY'"):
        format_money(1, "CNY", "xx_YY")


def test_november_in_shanghai_ends_at_the_last_millisecond_of_the_month_there():
    start, end = month_bounds("2026-11", alliance_zone("Asia/Shanghai"))
    assert format_utc_millis(start) == "2026-10-31T16:00:00.000Z"
    assert format_utc_millis(end) == "2026-11-30T15:59:59.999Z"


def test_an_order_at_two_in_the_morning_beijing_time_on_the_first_is_in_the_new_month():
    shanghai = alliance_zone("Asia/Shanghai")
    order = parse_utc_millis("2026-11-30T18:00:00.000Z")  # 2026-12-01 02:00 in Beijing
    assert period_of(order, shanghai) == "2026-12"
    assert period_of(order, alliance_zone("UTC")) == "2026-11"
    assert show_time(order, shanghai) == "2026-12-01 02:00"
    last = month_bounds("2026-11", shanghai)[1]
    assert period_of(last, shanghai) == "2026-11" and period_of(last + 1, shanghai) == "2026-12"


def test_the_zone_comes_from_the_option_then_the_environment_then_shanghai(monkeypatch):
    monkeypatch.delenv("REFLEDGER_TZ", raising=False)
    assert alliance_zone().key == "Asia/Shanghai"
    monkeypatch.setenv("REFLEDGER_TZ", "Asia/Tokyo")
    assert alliance_zone().key == "Asia/Tokyo"
    assert alliance_zone("Europe/Berlin").key == "Europe/Berlin"
    with pytest.raises(PeriodError, match="unknown time zone"):
        alliance_zone("Mars/Olympus")


def test_periods_are_yyyy_mm_and_shift_across_years():
    assert shift_period("2026-01", -1) == "2025-12" and shift_period("2026-12", 1) == "2027-01"
    for bad in ("2026-13", "2026-1", "26-11", "", "2026-11-01"):
        with pytest.raises(PeriodError, match="YYYY-MM"):
            month_bounds(bad, alliance_zone("UTC"))


SHANGHAI_MIDNIGHT_DEC_15 = 1_765_728_000_000  # 2025-12-15T00:00:00+08:00 = 2025-12-14T16:00:00Z


@pytest.mark.parametrize("given, millis", [
    ("2025-12-15T00:00", SHANGHAI_MIDNIGHT_DEC_15),                       # no offset: Shanghai's time
    ("2025-12-15 08:30", SHANGHAI_MIDNIGHT_DEC_15 + 8 * 3_600_000 + 30 * 60_000),
    ("2025-12-15T00:00:00Z", SHANGHAI_MIDNIGHT_DEC_15 + 8 * 3_600_000),    # that instant in UTC
    ("2025-12-15T08:00:00+08:00", SHANGHAI_MIDNIGHT_DEC_15 + 8 * 3_600_000),
    ("2025-12-14T19:30:00-04:30", SHANGHAI_MIDNIGHT_DEC_15 + 8 * 3_600_000),
    ("2025-12-15T00:00:01.5", SHANGHAI_MIDNIGHT_DEC_15 + 1_500),           # .5 is 500 ms
    ("2025-12-15T00:00:01.25Z", SHANGHAI_MIDNIGHT_DEC_15 + 8 * 3_600_000 + 1_250),
    ("2025-12-15", SHANGHAI_MIDNIGHT_DEC_15 + 86_400_000 - 1),             # a date: all of the 15th
    (" 2025-12-14 ", SHANGHAI_MIDNIGHT_DEC_15 - 1),
])
def test_an_operator_gives_a_moment_as_a_date_a_local_time_or_an_instant(given, millis):
    """`--at`: a date alone takes in its whole day in the alliance's zone; a time without an offset is
    the alliance's clock; with Z or an offset it is that instant."""
    from refledger.schemas.periods import parse_moment, show_date

    shanghai = alliance_zone("Asia/Shanghai")
    assert parse_moment(given, shanghai) == millis
    assert show_date(SHANGHAI_MIDNIGHT_DEC_15, shanghai) == "2025-12-15"
    assert show_date(SHANGHAI_MIDNIGHT_DEC_15 - 1, shanghai) == "2025-12-14"


@pytest.mark.parametrize("given, says", [
    ("15/12/2025", "expected a time like 2026-12-15, 2026-12-15T08:30 or 2026-12-15T00:30:00Z, got '15/12/2025'"),
    ("", "expected a time like 2026-12-15, 2026-12-15T08:30 or 2026-12-15T00:30:00Z, got ''"),
    (None, "expected a time like 2026-12-15, 2026-12-15T08:30 or 2026-12-15T00:30:00Z, got None"),
    ("2025-12-15Z", "a date has no offset: '2025-12-15Z'"),
    ("2025-02-30", "not a valid date and time: '2025-02-30' (day is out of range for month)"),
    ("2025-12-15T24:00", "not a valid date and time: '2025-12-15T24:00' (hour must be in 0..23)"),
])
def test_a_moment_that_is_not_one_is_refused_saying_what_is_expected(given, says):
    from refledger.schemas.periods import parse_moment

    with pytest.raises(PeriodError) as refused:
        parse_moment(given, alliance_zone("Asia/Shanghai"))
    assert str(refused.value) == says
