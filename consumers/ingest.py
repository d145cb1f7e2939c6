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

from refledger.consumers.batch import BatchCounts, LogProcessor
from refledger.consumers.folding import folding_collector
from refledger.schemas.event_files import EventFileError, file_kind, read_messages

INGEST_TOPIC = "ingest"


@dataclass
class IngestSummary(BatchCounts):
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"files": self.files, **self.counts()}


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
    with folding_collector() as settle:
        for path in files:
            summary.files.append(str(path))
            chunk = []
            for msg in read_messages(path, topic, partition, offset):
                chunk.append(msg)
                offset = msg.offset + 1
                if len(chunk) >= batch_size:
                    _commit(processor, chunk, summary, on_batch, settle)
                    chunk = []
            if chunk:
                _commit(processor, chunk, summary, on_batch, settle)
    return summary


def _commit(processor: LogProcessor, chunk, summary: IngestSummary, on_batch, settle) -> None:
    batch = processor.process(chunk)
    processor.commit(batch)
    summary.add(batch.write)
    settle()
    if on_batch:
        on_batch(summary)


def ingest_archive(directory: str | Path, processor: LogProcessor, *, batch_size: int = 5000,
                   on_batch: Callable[[IngestSummary], None] | None = None) -> IngestSummary:
    """Fold an archive written by `refledger archive`: each archived partition is its own log,
    read in offset order with its topic, partition and offsets, so the ledger equals the
    one `consume` built from the topic. Offsets the ledger already holds are skipped."""
    from refledger.schemas.archive import ArchiveError, archive_partitions, read_archive

    root = Path(directory)
    topics = sorted(d.name for d in root.iterdir() if d.is_dir() and archive_partitions(root, d.name))
    if not topics:
        raise EventFileError(f"{root}: no archived topic in this directory (expected TOPIC/partition-NNNN/)")
    summary = IngestSummary()
    try:
        with folding_collector() as settle:
            for topic in topics:
                for partition, messages in sorted(read_archive(root, topic).items()):
                    summary.files.append(f"{root}/{topic}/partition-{partition:04d}")
                    start = processor.position(topic, partition) or 0
                    chunk = []
                    for msg in messages:
                        if msg.offset < start:
                            continue
                        chunk.append(msg)
                        if len(chunk) >= batch_size:
                            _commit(processor, chunk, summary, on_batch, settle)
                            chunk = []
                    if chunk:
                        _commit(processor, chunk, summary, on_batch, settle)
    except ArchiveError as exc:
        raise EventFileError(str(exc)) from exc
    return summary
