"""Event times in the words of SPEC §2, for the fold's own messages.

The fold keeps times as UTC epoch milliseconds and imports no clock or
calendar module; a quarantine's detail still names a time as people read
it, ``2026-10-15T23:59:59.999Z``, by the integer calendar arithmetic of
days since 1970-01-01 (proleptic Gregorian, as ISO 8601).
"""

from __future__ import annotations

DAY_MS = 86_400_000


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a count of days since 1970-01-01."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def iso(millis: int) -> str:
    """``1793491200000`` → ``2026-11-01T00:00:00.000Z``."""
    days, rest = divmod(millis, DAY_MS)
    year, month, day = _civil(days)
    seconds, ms = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}Z"
