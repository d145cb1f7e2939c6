"""Folding event files without a broker: the files form one partition, in file order.

Files go through the same `LogProcessor` as Kafka messages, in batches, each
committed in one transaction with the partition's next offset. Offsets of the
`ingest` log continue across runs, so ingesting the same file twice stores
nothing new: every event is an identical re-delivery and is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from consumers.batch import LogProcessor
from producers.files import EventFileError, file_kind, read_messages

INGEST_TOPIC = "ingest"


@dataclass
class IngestSummary:
    files: list[str] = field(default_factory=list)
    events_read: int = 0
    events_stored: int = 0
    duplicates_skipped: int = 0
    quarantined: int = 0
    entries_posted: int = 0
    batches: int = 0

    def add(self, batch) -> None:
        self.events_read += batch.events_read
        self.events_stored += batch.events_stored
        self.duplicates_skipped += batch.duplicates_skipped
        self.quarantined += batch.quarantined
        self.entries_posted += batch.entries_posted
        self.batches += 1

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("files", "events_read", "events_stored", "duplicates_skipped",
                                              "quarantined", "entries_posted", "batches")}


def check_readable(paths: Iterable[str | Path]) -> list[Path]:
    """Fail before anything is written if a file is missing, unreadable or of unknown type."""
    checked = []
    for raw in paths:
        path = Path(raw)
        file_kind(path)
        if not path.is_file():
            raise EventFileError(f"{path}: no such file")
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise EventFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
        checked.append(path)
    return checked


def ingest_files(paths: Iterable[str | Path], processor: LogProcessor, *, partition: int = 0,
                 topic: str = INGEST_TOPIC, batch_size: int = 5000,
                 on_batch: Callable[[IngestSummary], None] | None = None) -> IngestSummary:
    summary = IngestSummary()
    files = check_readable(paths)
    offset = processor.position(topic, partition) or 0
    for path in files:
        summary.files.append(str(path))
        chunk = []
        for msg in read_messages(path, topic, partition, offset):
            chunk.append(msg)
            offset = msg.offset + 1
            if len(chunk) >= batch_size:
                _commit(processor, chunk, summary, on_batch)
                chunk = []
        if chunk:
            _commit(processor, chunk, summary, on_batch)
    return summary


def _commit(processor: LogProcessor, chunk, summary: IngestSummary, on_batch) -> None:
    batch = processor.process(chunk)
    processor.commit(batch)
    summary.add(batch)
    if on_batch:
        on_batch(summary)
