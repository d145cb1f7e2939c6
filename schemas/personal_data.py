"""Personal data in an event, found and redacted (SPEC §4b).

Shops pseudonymise customers before emitting (SPEC §2), but a careless
integration may not. The fields that carry free text a person could type a
phone number into — `visitor_id`, an order line's `sku`, a view's or click's
`placement_id`, an adjustment's `reason` — are checked against three
patterns: a Chinese mobile number (`+86-138-0013-8000` too), an e-mail
address, and a resident identity number whose GB 11643 check digit is
right. An event with any match is quarantined `personal_data`, right after
the shape checks, and the ledger keeps it only with each match replaced by
``redacted:`` and the first 16 hex digits of its HMAC-SHA-256 under a key
kept outside the ledger file, so the same text always redacts alike and
nothing in the ledger reveals it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
from typing import Iterator

MOBILE = re.compile(r"(?<!\d)(\+?86[- ]?)?1[3-9]\d(?:[- ]?\d){8}(?!\d)")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
IDENTITY = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
# Every match of the three needs an "@" or eleven digits in a row (separators allowed between them):
# looking for those finds nearly every event clean at once ("@" by a plain substring test, which is
# five times faster than one pattern with both).
_ELEVEN_DIGITS = re.compile(r"\d(?:[- ]?\d){10}").search
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
REDACTED = "redacted:"


def identity_number_valid(number: str) -> bool:
    """GB 11643: the 18th character is the check digit of the first 17."""
    total = sum(int(d) * w for d, w in zip(number[:17], _WEIGHTS))
    return _CHECK[total % 11] == number[17].upper()


def may_hold(*texts: str | None) -> bool:
    """False when none of the texts can hold personal data (the cheap test of the hot path)."""
    for text in texts:
        if text is not None and ("@" in text or _ELEVEN_DIGITS(text)):
            return True
    return False


def matches(text: str) -> list[tuple[int, int]]:
    """(start, end) of every piece of personal data in ``text``, in order, not overlapping."""
    found = [m.span() for m in MOBILE.finditer(text)]
    found += [m.span() for m in EMAIL.finditer(text)]
    found += [m.span() for m in IDENTITY.finditer(text) if identity_number_valid(m.group())]
    found.sort()
    spans: list[tuple[int, int]] = []
    for start, end in found:
        if spans and start < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans


def checked_fields(record: dict) -> Iterator[tuple[str, str, callable]]:
    """(field path, value, setter) of every field of a record that SPEC §4b checks and holds text."""
    def setter(holder, key):
        return lambda value: holder.__setitem__(key, value)

    if isinstance(record.get("visitor_id"), str):
        yield "visitor_id", record["visitor_id"], setter(record, "visitor_id")
    kind = record.get("type")
    payload = record.get(kind) if isinstance(kind, str) else None
    if not isinstance(payload, dict):
        return
    if kind in ("view", "click") and isinstance(payload.get("placement_id"), str):
        yield f"{kind}.placement_id", payload["placement_id"], setter(payload, "placement_id")
    if kind == "order":
        for i, line in enumerate(payload.get("lines") or ()):
            if isinstance(line, dict) and isinstance(line.get("sku"), str):
                yield f"order.lines[{i}].sku", line["sku"], setter(line, "sku")
    if kind == "adjustment" and isinstance(payload.get("reason"), str):
        yield "adjustment.reason", payload["reason"], setter(payload, "reason")


def personal_fields(record: dict) -> list[str]:
    """The field paths of a record that hold personal data (none: an empty list)."""
    return [path for path, value, _set in checked_fields(record) if matches(value)]


def redacted(record: dict, key: bytes) -> dict:
    """A copy of the record with every match replaced by ``redacted:`` + 16 hex digits of its
    HMAC-SHA-256 under ``key``."""
    copied = copy.deepcopy(record)
    for _path, value, set_value in checked_fields(copied):
        spans = matches(value)
        if not spans:
            continue
        pieces, at = [], 0
        for start, end in spans:
            digest = hmac.new(key, value[start:end].encode("utf-8"), hashlib.sha256).hexdigest()[:16]
            pieces += [value[at:start], REDACTED + digest]
            at = end
        set_value("".join(pieces) + value[at:])
    return copied
