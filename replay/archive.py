"""The archive: a Kafka topic's whole history in Avro container files.

Kafka's retention is finite, an audit is not. `archive_topic` copies every
record of a topic into files that the ledger can be folded from again, and
`refledger.schemas.archive.read_archive` yields them back as `Message`s,
exactly as Kafka would have delivered them. The files' layout and format are
described in `refledger.schemas.archive`; this module reads Kafka.

Layout::

    OUT/<topic>/
        .lock                                 held (flock) while a run writes
        partition-0003/
            segment-000000000000.avro         complete segments, named by the
            segment-000000000500.avro         offset of their first record
            segment-000000001000.avro.tmp     a segment being written (or a crash's leftover)

Every segment is an Avro container file (deflate) of `archive_record.avsc`
records: partition, offset, timestamp, key, value, headers; the value
undecoded, byte for byte (a null value is stored as empty bytes). Its header
metadata names the topic, the partition and `from_offset`: the previous
segment's last offset + 1, or where the partition's first run began.
Every offset between `from_offset` and the first record, and between two
records of one segment, was absent from Kafka (compaction, transaction
markers, retention), never skipped by the archive; a reader that finds
`from_offset` != previous last offset + 1 knows a segment is missing.
Offsets that retention deleted before a run could copy them are counted in
that run's summary as `unavailable`.

A run, step by step:

1. Take an exclusive lock on `OUT/<topic>/.lock`; delete leftover `*.tmp`.
2. For each partition, resume at the last offset of its last complete
   segment + 1 (or at Kafka's earliest offset when it has none), and read
   Kafka's end offsets once: the run copies up to them and no further.
3. Read with a plain consumer (`assign` + `seek`, no group, no commits).
   Records go into `segment-<first offset>.avro.tmp`; after
   `segment_records` records, or when the partition reaches its end offset,
   the file is flushed, fsynced and atomically renamed into place.

Guarantees: a complete segment is either wholly on disk under its final name
or not at all, and resuming is derived only from complete segments, so a
crash at any moment (SIGKILL included) loses at most the unfinished segments,
which the next run reads again: never a gap, never a duplicate. Running again
appends only what is new, starting a new segment at the next offset. Reading
checks that offsets only grow, that every record belongs to its partition and
that no segment is missing, and raises `ArchiveError` naming the file.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from refledger.consumers.kafka_records import BatchReadingConsumer
from refledger.schemas.kafka_client import KafkaLogin, connect
from refledger.schemas.archive import (
    ArchiveError, SegmentWriter, archived_record, exclusive, partition_dir, remove_leftovers, resume_offset,
    topic_dir,
)

DEFAULT_SEGMENT_RECORDS = 100_000
IDLE_TIMEOUT_S = 60.0
POLL_TIMEOUT_MS = 500
POLL_MAX_RECORDS = 5000


@dataclass(frozen=True, slots=True)
class PartitionSummary:
    """What one run did for one partition."""

    partition: int
    records: int
    segments: int
    bytes: int
    first_offset: int | None
    last_offset: int | None
    next_offset: int
    unavailable: int = 0  # offsets Kafka's retention deleted before they were archived

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ArchiveSummary:
    """What one run of `archive_topic` appended."""

    topic: str
    directory: str
    partitions: tuple[PartitionSummary, ...]
    seconds: float

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)

    @property
    def segments(self) -> int:
        return sum(p.segments for p in self.partitions)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.partitions)

    def as_dict(self) -> dict:
        return {
            "topic": self.topic,
            "directory": self.directory,
            "records": self.records,
            "segments": self.segments,
            "bytes": self.bytes,
            "unavailable": sum(p.unavailable for p in self.partitions),
            "seconds": round(self.seconds, 3),
            "partitions": [p.as_dict() for p in self.partitions],
        }


@dataclass(frozen=True, slots=True)
class ArchiveProgress:
    """Progress of a run: records written, offsets covered out of those to cover."""

    records: int
    offsets_done: int
    offsets_total: int


class PartitionSink:
    """Appends one partition's records, from `start` to `end`, to rotating segments.

    `resume` is where the archive left off (the previous segment's last offset
    + 1); `start` is where Kafka is read from, later than `resume` only when
    retention deleted records before they were archived.
    """

    def __init__(self, directory: Path, topic: str, partition: int, *, resume: int, start: int,
                 end: int, segment_records: int, codec: str):
        self.directory, self.topic, self.partition = directory, topic, partition
        self.resume, self.start, self.end = resume, start, end
        self.segment_records, self.codec = segment_records, codec
        self.next_offset = resume     # last archived offset + 1: where the next segment continues from
        self.covered = start          # Kafka offsets read past, records or not
        self.records = self.segments = self.bytes = 0
        self.first_offset: int | None = None
        self._current: SegmentWriter | None = None

    @property
    def done(self) -> bool:
        return self.covered >= self.end

    def write(self, record) -> None:
        if self._current is None:
            self._current = SegmentWriter(self.directory, self.topic, self.partition,
                                          record.offset, self.next_offset, self.codec)
        self._current.append(archived_record(record))
        if self.first_offset is None:
            self.first_offset = record.offset
        self.records += 1
        self.next_offset = self.covered = record.offset + 1
        if self._current.records >= self.segment_records:
            self.finish_segment()

    def reached(self, position: int) -> None:
        """The consumer's position moved on, possibly past offsets without a record."""
        self.covered = max(self.covered, min(position, self.end))

    def finish_segment(self) -> None:
        if self._current is not None:
            self.bytes += self._current.publish()
            self.segments += 1
            self._current = None

    def discard(self) -> None:
        if self._current is not None:
            self._current.discard()
            self._current = None

    def summary(self) -> PartitionSummary:
        return PartitionSummary(
            partition=self.partition, records=self.records, segments=self.segments, bytes=self.bytes,
            first_offset=self.first_offset, last_offset=self.next_offset - 1 if self.records else None,
            next_offset=self.next_offset, unavailable=self.start - self.resume)


def _open_consumer(bootstrap_servers: str, login: KafkaLogin | None) -> KafkaConsumer:
    try:
        consumer = connect(
            BatchReadingConsumer, bootstrap_servers, login, group_id=None, client_id="refledger-archive",
            enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=POLL_MAX_RECORDS, fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_wait_ms=200,
        )
    except KafkaError as exc:
        raise ArchiveError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc
    return consumer


def _topic_partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise ArchiveError(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


def _plan(consumer: KafkaConsumer, root: Path, tps: list[TopicPartition], segment_records: int,
          codec: str) -> dict[TopicPartition, PartitionSink]:
    """One sink per partition, from the archive's resume points and Kafka's offsets now."""
    earliest = consumer.beginning_offsets(tps)
    latest = consumer.end_offsets(tps)
    sinks = {}
    for tp in tps:
        directory = partition_dir(root, tp.partition)
        directory.mkdir(parents=True, exist_ok=True)
        resume = resume_offset(directory)
        if resume is not None and resume > latest[tp]:
            raise ArchiveError(
                f"{directory} is archived up to offset {resume - 1} but Kafka's partition ends at "
                f"{latest[tp]}: was the topic deleted and created again?")
        resume = earliest[tp] if resume is None else resume
        sinks[tp] = PartitionSink(directory, tp.topic, tp.partition, resume=resume,
                                  start=max(resume, earliest[tp]), end=latest[tp],
                                  segment_records=segment_records, codec=codec)
    return sinks


def _progress(sinks) -> ArchiveProgress:
    done = sum(s.covered - s.start for s in sinks)
    total = sum(max(0, s.end - s.start) for s in sinks)
    return ArchiveProgress(sum(s.records for s in sinks), done, total)


def _write_polled(polled: dict, active: dict[TopicPartition, PartitionSink]) -> None:
    for tp, records in polled.items():
        sink = active.get(tp)
        if sink is None:
            continue
        for record in records:
            if record.offset >= sink.end:
                break
            sink.write(record)


def _retire_finished(consumer: KafkaConsumer, active: dict[TopicPartition, PartitionSink]) -> None:
    for tp, sink in list(active.items()):
        sink.reached(consumer.position(tp))
        if sink.done:
            sink.finish_segment()
            consumer.pause(tp)
            del active[tp]


def _copy(consumer: KafkaConsumer, sinks: dict[TopicPartition, PartitionSink],
          on_progress, idle_timeout_s: float) -> None:
    """Read every partition from its start to its end offset into its sink."""
    active = {tp: sink for tp, sink in sinks.items() if not sink.done}
    consumer.assign(list(active))
    for tp, sink in active.items():
        consumer.seek(tp, sink.start)
    progress = _progress(sinks.values())
    if on_progress:
        on_progress(progress)
    last_moved = time.monotonic()
    while active:
        polled = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=POLL_MAX_RECORDS)
        _write_polled(polled, active)
        _retire_finished(consumer, active)
        now, previous, progress = time.monotonic(), progress, _progress(sinks.values())
        if progress.offsets_done > previous.offsets_done:
            last_moved = now
            if on_progress:
                on_progress(progress)
        elif now - last_moved > idle_timeout_s:
            raise ArchiveError(f"no progress from Kafka for {idle_timeout_s:.0f}s; still to read: "
                               + ", ".join(f"partition {tp.partition} from {s.covered} to {s.end}"
                                           for tp, s in active.items()))


def archive_topic(
    bootstrap_servers: str,
    topic: str,
    out_dir: str | os.PathLike,
    *,
    segment_records: int = DEFAULT_SEGMENT_RECORDS,
    on_progress: Callable[[ArchiveProgress], None] | None = None,
    codec: str = "deflate",
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    login: KafkaLogin | None = None,
) -> ArchiveSummary:
    """Append every record of `topic` not yet archived under `out_dir`, up to Kafka's end offsets now."""
    if segment_records < 1:
        raise ValueError("segment_records must be at least 1")
    started = time.monotonic()
    root = topic_dir(out_dir, topic)
    consumer = _open_consumer(bootstrap_servers, login)
    try:
        tps = _topic_partitions(consumer, topic)
        root.mkdir(parents=True, exist_ok=True)
        with exclusive(root):
            remove_leftovers(root)
            sinks = _plan(consumer, root, tps, segment_records, codec)
            try:
                _copy(consumer, sinks, on_progress, idle_timeout_s)
            finally:
                for sink in sinks.values():
                    sink.discard()
    finally:
        consumer.close(autocommit=False)
    partitions = tuple(sink.summary() for sink in sinks.values())
    return ArchiveSummary(topic, str(root), partitions, time.monotonic() - started)
