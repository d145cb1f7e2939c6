"""The archive: a Kafka topic's whole history in Avro container files.

Kafka's retention is finite, an audit is not. `archive_topic` copies every
record of a topic into files that the ledger can be folded from again, and
`read_archive` yields them back as `consumers.batch.Message`s, exactly as
Kafka would have delivered them.

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

import fcntl
import json
import os
import re
import time
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import fastavro
from fastavro.write import Writer
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from consumers.batch import AVRO, Message

DEFAULT_SEGMENT_RECORDS = 100_000
SCHEMA_PATH = Path(__file__).with_name("archive_record.avsc")
IDLE_TIMEOUT_S = 60.0
POLL_TIMEOUT_MS = 500
POLL_MAX_RECORDS = 5000

META_TOPIC = "refledger.archive.topic"
META_PARTITION = "refledger.archive.partition"
META_FROM_OFFSET = "refledger.archive.from_offset"

_PARTITION_DIR = re.compile(r"^partition-(\d{4,})$")
_SEGMENT_FILE = re.compile(r"^segment-(\d{12,})\.avro$")
TEMP_SUFFIX = ".tmp"
LOCK_NAME = ".lock"
_UNREADABLE = (OSError, ValueError, EOFError, KeyError, TypeError, IndexError, zlib.error)


class ArchiveError(Exception):
    """The archive on disk is inconsistent, or the topic cannot be archived."""


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


def archive_schema() -> dict:
    """The parsed Avro schema of an archived record."""
    return fastavro.parse_schema(json.loads(SCHEMA_PATH.read_text("utf-8")))


_SCHEMA = archive_schema()


# ---- layout ---------------------------------------------------------------

def topic_dir(out_dir: str | os.PathLike, topic: str) -> Path:
    if not topic or "/" in topic or topic in (".", ".."):
        raise ArchiveError(f"not a usable topic name for an archive directory: {topic!r}")
    return Path(out_dir) / topic


def partition_dir(root: Path, partition: int) -> Path:
    return root / f"partition-{partition:04d}"


def segment_name(first_offset: int) -> str:
    return f"segment-{first_offset:012d}.avro"


def archive_partitions(out_dir: str | os.PathLike, topic: str) -> list[int]:
    """The partitions that have a directory in the archive of `topic`, ascending."""
    root = topic_dir(out_dir, topic)
    if not root.is_dir():
        return []
    found = (_PARTITION_DIR.match(entry.name) for entry in root.iterdir() if entry.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def partition_segments(out_dir: str | os.PathLike, topic: str, partition: int) -> list[Path]:
    """Complete segment files of one partition, in offset order (temporary files ignored)."""
    return _segments(partition_dir(topic_dir(out_dir, topic), partition))


def _segments(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    named = ((_SEGMENT_FILE.match(p.name), p) for p in directory.iterdir() if p.is_file())
    return [p for m, p in sorted((int(m.group(1)), p) for m, p in named if m)]


def _first_offset_of(path: Path) -> int:
    return int(_SEGMENT_FILE.match(path.name).group(1))


def _last_offset(path: Path) -> int:
    """Offset of the last record of a complete segment (decodes only its last block)."""
    try:
        with open(path, "rb") as stream:
            last_block = None
            for block in fastavro.block_reader(stream):
                if block.num_records:
                    last_block = block
            if last_block is None:
                raise ArchiveError(f"{path}: segment holds no records")
            return list(last_block)[-1]["offset"]
    except _UNREADABLE as exc:
        raise ArchiveError(f"{path}: unreadable archive segment: {exc}") from exc


def resume_offset(directory: Path) -> int | None:
    """Next offset to archive for a partition directory, or None when it holds no segment."""
    segments = _segments(directory)
    return _last_offset(segments[-1]) + 1 if segments else None


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    with open(root / LOCK_NAME, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ArchiveError(f"another archive run is writing {root}") from exc
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _remove_leftovers(root: Path) -> None:
    for partition in archive_partitions(root.parent, root.name):
        for leftover in partition_dir(root, partition).glob(f"*{TEMP_SUFFIX}"):
            leftover.unlink()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- writing --------------------------------------------------------------

def _archived(record) -> dict:
    return {
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": record.key,
        "value": record.value if record.value is not None else b"",
        "headers": [{"key": k, "value": v} for k, v in (record.headers or ())],
    }


class SegmentWriter:
    """One segment being written to its temporary file until `publish` renames it."""

    def __init__(self, directory: Path, topic: str, partition: int, first_offset: int,
                 from_offset: int, codec: str):
        self.path = directory / segment_name(first_offset)
        self.temp = self.path.with_name(self.path.name + TEMP_SUFFIX)
        if self.path.exists():
            raise ArchiveError(f"{self.path} already exists: the archive is ahead of where it resumed")
        self.records = 0
        self._file = open(self.temp, "wb")
        metadata = {META_TOPIC: topic, META_PARTITION: str(partition), META_FROM_OFFSET: str(from_offset)}
        self._writer = Writer(self._file, _SCHEMA, codec=codec, metadata=metadata)

    def append(self, datum: dict) -> None:
        self._writer.write(datum)
        self.records += 1

    def publish(self) -> int:
        """Flush, fsync and rename into place; returns the segment's size in bytes."""
        self._writer.flush()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp, self.path)
        _fsync_dir(self.path.parent)
        return self.path.stat().st_size

    def discard(self) -> None:
        self._file.close()
        self.temp.unlink(missing_ok=True)


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
        self._current.append(_archived(record))
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


def _open_consumer(bootstrap_servers: str) -> KafkaConsumer:
    try:
        return KafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=None, client_id="refledger-archive",
            enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=POLL_MAX_RECORDS, fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_wait_ms=200,
        )
    except KafkaError as exc:
        raise ArchiveError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc


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
) -> ArchiveSummary:
    """Append every record of `topic` not yet archived under `out_dir`, up to Kafka's end offsets now."""
    if segment_records < 1:
        raise ValueError("segment_records must be at least 1")
    started = time.monotonic()
    root = topic_dir(out_dir, topic)
    consumer = _open_consumer(bootstrap_servers)
    try:
        tps = _topic_partitions(consumer, topic)
        root.mkdir(parents=True, exist_ok=True)
        with _exclusive(root):
            _remove_leftovers(root)
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


# ---- reading --------------------------------------------------------------

def _segment_data(path: Path) -> Iterator[tuple[dict, dict]]:
    """(header metadata, record) pairs of one segment file; unreadable files raise ArchiveError."""
    try:
        with open(path, "rb") as stream:
            reader = fastavro.reader(stream)
            for datum in reader:
                yield reader.metadata, datum
    except _UNREADABLE as exc:
        raise ArchiveError(f"{path}: unreadable archive segment: {exc}") from exc


def _check_header(path: Path, metadata: dict, topic: str, partition: int, previous: int | None) -> None:
    if metadata.get(META_TOPIC, topic) != topic:
        raise ArchiveError(f"{path}: segment of topic {metadata[META_TOPIC]!r}, not {topic!r}")
    if metadata.get(META_PARTITION, str(partition)) != str(partition):
        raise ArchiveError(f"{path}: segment of partition {metadata[META_PARTITION]}, not {partition}")
    from_offset = metadata.get(META_FROM_OFFSET)
    if previous is not None and from_offset is not None and int(from_offset) != previous + 1:
        raise ArchiveError(
            f"{path}: segment continues from offset {from_offset} but the previous segment ends at "
            f"offset {previous}: a segment is missing or overlaps")


def _check_first(path: Path, metadata: dict, offset: int) -> None:
    if offset != _first_offset_of(path):
        raise ArchiveError(f"{path}: first record has offset {offset}, not the one in the file name")
    from_offset = metadata.get(META_FROM_OFFSET)
    if from_offset is not None and int(from_offset) > offset:
        raise ArchiveError(f"{path}: first record has offset {offset}, before {from_offset} "
                           "where the segment says it continues from")


def _check_record(path: Path, datum: dict, partition: int, previous: int | None) -> None:
    if datum["partition"] != partition:
        raise ArchiveError(f"{path}: offset {datum['offset']} belongs to partition {datum['partition']}")
    if previous is not None and datum["offset"] <= previous:
        raise ArchiveError(f"{path}: offset {datum['offset']} follows offset {previous}; "
                           "offsets must strictly increase")


def iter_partition(out_dir: str | os.PathLike, topic: str, partition: int) -> Iterator[dict]:
    """Archived records of one partition in offset order, checked as they are read.

    Raises ArchiveError naming the file on a repeated or decreasing offset, a
    record of another partition, a missing or overlapping segment, or an
    unreadable file. Offset gaps inside what Kafka returned are accepted.
    """
    previous: int | None = None
    for path in partition_segments(out_dir, topic, partition):
        first = True
        for metadata, datum in _segment_data(path):
            if first:
                _check_header(path, metadata, topic, partition, previous)
                _check_first(path, metadata, datum["offset"])
            _check_record(path, datum, partition, previous)
            first, previous = False, datum["offset"]
            yield datum
        if first:
            raise ArchiveError(f"{path}: segment holds no records")


def to_message(topic: str, datum: dict) -> Message:
    partition, offset = datum["partition"], datum["offset"]
    return Message(topic, partition, offset, datum["value"], kind=AVRO, timestamp=datum["timestamp"],
                   position=f"{topic}:{partition}:{offset}")


def read_partition(out_dir: str | os.PathLike, topic: str, partition: int) -> Iterator[Message]:
    """One partition's archived messages in offset order, as the batch processor reads Kafka."""
    return (to_message(topic, datum) for datum in iter_partition(out_dir, topic, partition))


def read_archive(out_dir: str | os.PathLike, topic: str) -> dict[int, Iterator[Message]]:
    """Per partition, a lazy iterator of its archived messages in offset order."""
    partitions = archive_partitions(out_dir, topic)
    if not partitions:
        raise ArchiveError(f"no archive of topic {topic!r} in {out_dir}")
    return {p: read_partition(out_dir, topic, p) for p in partitions}


def verify_archive(out_dir: str | os.PathLike, topic: str) -> dict[int, int]:
    """Read the whole archive, checking it; returns the record count per partition."""
    return {p: sum(1 for _ in iter_partition(out_dir, topic, p)) for p in archive_partitions(out_dir, topic)}
