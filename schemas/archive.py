"""The archive's format: a Kafka topic's history as Avro container files on disk.

`refledger.replay.archive` copies a topic into this layout; `read_archive`
yields the records back as `Message`s, exactly as Kafka would have delivered
them (`ingest` and `replay` fold them). Reading and writing the files is
Avro, so it lives with the codec.

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

Reading checks that offsets only grow, that every record belongs to its
partition and that no segment is missing, and raises `ArchiveError` naming
the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import fastavro
from fastavro.write import Writer

from refledger.schemas.messages import AVRO, Message

SCHEMA_PATH = Path(__file__).with_name("archive_record.avsc")

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
def exclusive(root: Path) -> Iterator[None]:
    with open(root / LOCK_NAME, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ArchiveError(f"another archive run is writing {root}") from exc
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remove_leftovers(root: Path) -> None:
    for partition in archive_partitions(root.parent, root.name):
        for leftover in partition_dir(root, partition).glob(f"*{TEMP_SUFFIX}"):
            leftover.unlink()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- writing ---------------------------------------------------------------

def archived_record(record) -> dict:
    """A Kafka record (anything with partition, offset, timestamp, key, value, headers) as an archive datum."""
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
