"""Money and counts for people (SPEC §11): integers in minor units inside, ¥1,234.56 on the page.

The ledger keeps every amount as an integer number of the currency's minor
units (fen, cents). People see the amount in the currency's own unit, with
the ISO 4217 minor-unit exponent (CNY 2, JPY 0, BHD 3), grouped digits and
the currency's symbol as the chosen locale writes it: in `zh_CN` (the
default) ¥1,234.56, US$12.00, JP¥500; in `en_US` CN¥1,234.56, $12.00,
¥500. The arithmetic is exact (a `Decimal` scaled by the exponent, never a
float); Babel does the locale's part.
"""

from __future__ import annotations

import copy
from decimal import Context, Decimal, localcontext
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_decimal, parse_pattern

DEFAULT_LOCALE = "zh_CN"
LOCALES = ("zh_CN", "en_US")

# ISO 4217 minor units of the active codes whose exponent is not 2; codes with no minor
# unit (the funds, metals and special drawing rights) are shown as whole units.
ISO_EXPONENTS = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
    **dict.fromkeys("XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XUA".split(), 0),
}


class LocaleError(ValueError):
    """A locale Babel does not know."""


def exponent(currency: str) -> int:
    """The ISO 4217 minor-unit exponent of a currency: 2 unless it is one of the exceptions."""
    return ISO_EXPONENTS.get(currency, 2)


@lru_cache(maxsize=None)
def _locale(name: str) -> Locale:
    try:
        return Locale.parse(name)
    except (UnknownLocaleError, ValueError) as exc:
        raise LocaleError(f"unknown locale {name!r} (try {' or '.join(LOCALES)})") from exc


@lru_cache(maxsize=None)
def _pattern(locale: str, digits: int):
    pattern = copy.copy(parse_pattern(_locale(locale).currency_formats["standard"]))  # Babel shares its own
    pattern.frac_prec = (digits, digits)
    return pattern


def _exact(amount_minor: int) -> Context:
    """A decimal context that holds every digit of the amount (Decimal's default keeps 28)."""
    return Context(prec=max(28, len(str(abs(amount_minor))) + 1))


def as_decimal(amount_minor: int, currency: str) -> Decimal:
    """The amount in the currency's unit, exactly: 123456 fen is Decimal('1234.56')."""
    return Decimal(amount_minor).scaleb(-exponent(currency), _exact(amount_minor))


def format_money(amount_minor: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """``123456, "CNY"`` → ``¥1,234.56`` (zh_CN), every digit kept however large the sum."""
    digits = exponent(currency)
    with localcontext(_exact(amount_minor)):
        return _pattern(locale, digits).apply(as_decimal(amount_minor, currency), _locale(locale),
                                              currency=currency, currency_digits=False)


def format_count(count: int, locale: str = DEFAULT_LOCALE) -> str:
    """A whole number with the locale's grouping (swap credits, views, clicks): 12,345."""
    return format_decimal(count, locale=_locale(locale))
