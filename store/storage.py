"""One interface, two ledger stores: the embedded DuckDB file, and DuckLake shared by many writers.

`LedgerStorage` is what the batch processor (`consumers.batch`), `ingest`,
`consume` and replay ask of a store; `open_store` opens the one ``--db``
names: a path is a DuckDB file (`store.ledger_file.LedgerStore`, the
default), ``ducklake:postgres:<libpq connection string>`` a DuckLake with a
PostgreSQL catalog (`store.lake.LakeStore`). Both hold the same tables, so
the read queries (`store.queries`, the reports) run unchanged on a cursor of
either. Both are held to the same contract tests (tests/test_store_contract.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Protocol, runtime_checkable

from refledger.store.lake import LakeStore, is_lake, lake_ledger
from refledger.store.ledger_file import BatchWrite, LedgerStore


@runtime_checkable
class LedgerStorage(Protocol):
    """A ledger's tables, their one write path and what a writer reads to resume."""

    path: object
    # True when no other process can write while this one does (a DuckDB file): what this process
    # folded is then the latest state of every log. False for a shared lake.
    single_writer: bool

    def positions(self) -> dict[tuple[str, int], int]:
        """The next offset to read, per log."""

    def snapshots(self, topic: str, partition: int) -> Iterator[tuple[int, str, str | None, bytes | None]]:
        """A log's fold snapshots, latest first: (offset, digest, digest in its checkpoint, state), each
        state read when its turn comes (None: it cannot be found)."""

    def partition_events(self, topic: str, partition: int, after: int = -1,
                         types: tuple[str, ...] | None = None) -> Iterator[tuple[int, str, bytes]]:
        """A log's stored events after an offset, in order: (offset, event id, canonical Avro); only
        those of ``types``, if given."""

    def logs(self) -> list[tuple[str, int]]:
        """Every log with a stored position."""

    def redaction_key(self) -> bytes:
        """The secret personal data is redacted under (SPEC §4b), kept outside the ledger's tables."""

    def claim(self, logs: Iterable[tuple[str, int]]) -> object:
        """Take over writing these logs: once this returns, no other writer commits to them."""

    def write_batch(self, batch: BatchWrite) -> int:
        """Commit a batch's rows, positions and counters in one transaction; returns its batch id."""

    def checkpoint(self) -> bool:
        """A quiet moment to tidy the store's files (the consumer calls it when a poll is empty)."""

    def cursor(self):
        """A DuckDB cursor on which the read queries run."""

    def close(self) -> None:
        """Let go of the store."""


def open_store(db, data_path: str | None = None) -> LedgerStorage:
    """The ledger ``db`` names, opened for writing (created when new)."""
    if is_lake(db):
        return LakeStore(lake_ledger(db, data_path))
    return LedgerStore(Path(db))
