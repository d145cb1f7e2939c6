"""The ledger is append-only: no SQL anywhere in the project updates or deletes rows."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("refledger", "ledger", "consumers", "producers", "replay", "schemas", "bench")
MUTATING_SQL = re.compile(r"\b(UPDATE\s+\w+\s+SET|DELETE\s+FROM|TRUNCATE\s+|DROP\s+TABLE|INSERT\s+OR\s+REPLACE"
                          r"|ON\s+CONFLICT\s+DO\s+UPDATE)\b", re.IGNORECASE)


def project_sources():
    for package in PACKAGES:
        yield from (ROOT / package).rglob("*.py")


def test_no_sql_updates_or_deletes_ledger_rows():
    offenders = []
    for path in project_sources():
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if MUTATING_SQL.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert offenders == []


def test_the_check_catches_a_mutation():
    assert MUTATING_SQL.search('cur.execute("UPDATE entries SET amount = 0")')
    assert MUTATING_SQL.search("delete from entries where seq = 3")
    assert not MUTATING_SQL.search("INSERT INTO entries SELECT * FROM incoming")
