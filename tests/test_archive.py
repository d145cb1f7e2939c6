"""The archive keeps every record of the topic exactly once, across runs and crashes.

Real-Kafka tests produce arbitrary bytes (one of them garbage that no codec
reads), archive the topic, and compare the archive with what the producer was
told Kafka stored: partition, offset, timestamp, key and value. The offline
tests hand-write damaged archives and expect `ArchiveError` naming the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time

import fastavro
import pytest
from click.testing import CliRunner
from kafka import KafkaProducer, TopicPartition

from refledger.schemas.messages import AVRO, Message
from refledger.producers.kafka_admin import admin_client
from refledger.replay.archive import archive_topic
from refledger.schemas.archive import (
    META_FROM_OFFSET, META_PARTITION, META_TOPIC, ArchiveError, SegmentWriter, archive_partitions, archive_schema,
    archived_record, iter_partition, partition_dir, partition_segments, read_archive, remove_leftovers,
    resume_offset, segment_name, topic_dir)
from refledger.cli_archive import archive as archive_command

def verify_archive(out_dir, topic: str) -> dict[int, int]:
    """Read the whole archive, checking it as it is read; the record count per partition."""
    return {p: sum(1 for _ in iter_partition(out_dir, topic, p)) for p in archive_partitions(out_dir, topic)}


GARBAGE = b"\xc3\x01not-a-fingerprint\x00\xff\xfe garbage"
KILLS = 6


def produce(bootstrap: str, topic: str, count: int, *, seed: int, first_ts: int = 1_750_000_000_000) -> dict:
    """Send `count` messages; returns {(partition, offset): (timestamp, key, value)} as Kafka stored them."""
    rng = random.Random(seed)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             batch_size=256 * 1024)
    futures = []
    try:
        for i in range(count):
            key = None if i % 97 == 0 else f"merchant-{rng.randrange(40)}".encode()
            value = GARBAGE if i == count // 2 else rng.randbytes(rng.randrange(0, 300))
            ts = first_ts + i * 7
            futures.append((key, value, producer.send(topic, value=value, key=key, timestamp_ms=ts)))
        producer.flush()
    finally:
        producer.close()
    sent = {}
    for key, value, future in futures:
        meta = future.get(timeout=30)
        sent[(meta.partition, meta.offset)] = (meta.timestamp, key, value)
    return sent


def archived(out_dir, topic) -> dict:
    """{(partition, offset): (timestamp, key, value)}, asserting each offset once and in order."""
    found = {}
    for partition in archive_partitions(out_dir, topic):
        offsets = []
        for datum in iter_partition(out_dir, topic, partition):
            assert datum["partition"] == partition
            found[(partition, datum["offset"])] = (datum["timestamp"], datum["key"], datum["value"])
            offsets.append(datum["offset"])
        assert offsets == sorted(set(offsets)), f"partition {partition} repeats or reorders offsets"
    return found


def assert_archive_is(out_dir, topic, sent: dict) -> None:
    found = archived(out_dir, topic)
    assert len(found) == len(sent)
    missing = sent.keys() - found.keys()
    assert not missing, f"{len(missing)} messages missing, e.g. {sorted(missing)[:3]}"
    assert found == sent
    for partition in archive_partitions(out_dir, topic):
        offsets = [o for p, o in sorted(found) if p == partition]
        assert offsets == list(range(len(offsets))), "a fresh topic has no offset gaps"


@pytest.mark.kafka
def test_every_message_is_archived_once_with_its_bytes_and_segments_rotate(
        kafka_bootstrap, kafka_topic, tmp_path):
    sent = produce(kafka_bootstrap, kafka_topic, 3000, seed=1)
    assert len({p for p, _ in sent}) == 6
    steps = []

    summary = archive_topic(kafka_bootstrap, kafka_topic, tmp_path, segment_records=200,
                            on_progress=steps.append)

    assert summary.records == 3000
    assert_archive_is(tmp_path, kafka_topic, sent)
    assert archive_partitions(tmp_path, kafka_topic) == list(range(6))
    for part in summary.partitions:
        segments = partition_segments(tmp_path, kafka_topic, part.partition)
        assert part.segments == len(segments) == -(-part.records // 200) >= 2
        assert [s.name for s in segments] == [segment_name(o) for o in range(0, part.records, 200)]
        assert part.bytes == sum(s.stat().st_size for s in segments)
        assert (part.first_offset, part.last_offset, part.next_offset) == (0, part.records - 1, part.records)
    assert summary.segments == sum(p.segments for p in summary.partitions)
    assert steps[-1].offsets_done == steps[-1].offsets_total == 3000
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.kafka
def test_read_archive_yields_messages_like_kafka(kafka_bootstrap, kafka_topic, tmp_path):
    sent = produce(kafka_bootstrap, kafka_topic, 600, seed=2)
    archive_topic(kafka_bootstrap, kafka_topic, tmp_path, segment_records=50)

    streams = read_archive(tmp_path, kafka_topic)

    assert sorted(streams) == list(range(6))
    messages = [m for partition in sorted(streams) for m in streams[partition]]
    assert len(messages) == 600
    for m in messages:
        assert isinstance(m, Message)
        ts, _key, value = sent[(m.partition, m.offset)]
        assert (m.topic, m.kind, m.value, m.timestamp) == (kafka_topic, AVRO, value, ts)
        assert m.position == f"{kafka_topic}:{m.partition}:{m.offset}"
    assert any(m.value == GARBAGE for m in messages)


@pytest.mark.kafka
def test_a_second_run_appends_only_what_is_new(kafka_bootstrap, kafka_topic, tmp_path):
    sent = produce(kafka_bootstrap, kafka_topic, 1500, seed=3)
    first = archive_topic(kafka_bootstrap, kafka_topic, tmp_path, segment_records=400)
    files_before = sorted(tmp_path.rglob("*.avro"))
    sent |= produce(kafka_bootstrap, kafka_topic, 900, seed=4, first_ts=1_760_000_000_000)

    second = archive_topic(kafka_bootstrap, kafka_topic, tmp_path, segment_records=400)
    third = archive_topic(kafka_bootstrap, kafka_topic, tmp_path, segment_records=400)

    assert (first.records, second.records, third.records) == (1500, 900, 0)
    assert third.segments == 0
    assert set(files_before) <= set(tmp_path.rglob("*.avro"))
    for part in second.partitions:
        earlier = next(p for p in first.partitions if p.partition == part.partition)
        if part.records:
            assert part.first_offset == earlier.next_offset
        assert part.next_offset == earlier.next_offset + part.records
    assert_archive_is(tmp_path, kafka_topic, sent)


ARCHIVE_SCRIPT = """
import sys
from refledger.replay.archive import archive_topic
def report(step):
    print(step.records, flush=True)
archive_topic(sys.argv[1], sys.argv[2], sys.argv[3], segment_records=int(sys.argv[4]), on_progress=report)
print("done", flush=True)
"""


def start_archive(bootstrap, topic, out_dir, segment_records, log):
    return subprocess.Popen(
        [sys.executable, "-c", ARCHIVE_SCRIPT, bootstrap, topic, str(out_dir), str(segment_records)],
        stdout=subprocess.PIPE, stderr=log, cwd=os.getcwd())


def kill_while_copying(proc, delay_s: float) -> bool:
    """Wait until the run reports its plan, let it copy for `delay_s`, SIGKILL it.

    True when the process was still running when killed."""
    proc.stdout.readline()
    time.sleep(delay_s)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    return alive


@pytest.mark.kafka
def test_sigkill_at_random_points_then_a_clean_run_leaves_exactly_the_topic(
        kafka_bootstrap, kafka_topic, tmp_path):
    rng = random.Random(20260611)
    out_dir = tmp_path / "archive"
    sent = produce(kafka_bootstrap, kafka_topic, 20_000, seed=5)
    killed_mid_run = 0
    left_a_partial_segment = 0
    archived_after_kill = []
    with open(tmp_path / "archive.log", "wb") as log:
        for round_ in range(KILLS):
            proc = start_archive(kafka_bootstrap, kafka_topic, out_dir, 100, log)
            killed_mid_run += kill_while_copying(proc, rng.uniform(0.0, 0.3))
            left_a_partial_segment += bool(list(out_dir.rglob("*.tmp")))
            archived_after_kill.append(sum(verify_archive(out_dir, kafka_topic).values()))
            assert archived(out_dir, kafka_topic).items() <= sent.items()
            sent |= produce(kafka_bootstrap, kafka_topic, 8_000, seed=100 + round_,
                            first_ts=1_770_000_000_000 + round_ * 100_000_000)
        proc = start_archive(kafka_bootstrap, kafka_topic, out_dir, 100, log)
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, (tmp_path / "archive.log").read_text()
    assert out.decode().splitlines()[-1] == "done"
    assert killed_mid_run >= KILLS - 1, f"only {killed_mid_run} kills landed in a running archive"
    assert left_a_partial_segment >= 1, "no kill landed inside a segment"
    assert archived_after_kill == sorted(archived_after_kill)
    assert_archive_is(out_dir, kafka_topic, sent)
    assert not list(out_dir.rglob("*.tmp"))


@pytest.mark.kafka
def test_archive_command_prints_the_summary(kafka_bootstrap, kafka_topic, tmp_path):
    produce(kafka_bootstrap, kafka_topic, 300, seed=6)
    args = ["--bootstrap-servers", kafka_bootstrap, "--out", str(tmp_path), "--topic", kafka_topic,
            "--segment-records", "100"]

    as_json = CliRunner().invoke(archive_command, args + ["--format", "json"])
    as_table = CliRunner().invoke(archive_command, args)

    assert as_json.exit_code == 0, as_json.output
    summary = json.loads(as_json.output)
    assert summary["records"] == 300 and summary["topic"] == kafka_topic
    assert sum(p["records"] for p in summary["partitions"]) == 300
    assert summary["segments"] == len(list(tmp_path.rglob("*.avro")))
    assert as_table.exit_code == 0, as_table.output
    assert "total" in as_table.output and "partition" in as_table.output


def test_archive_command_help_has_an_example():
    result = CliRunner().invoke(archive_command, ["--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "--segment-records" in result.output


def test_reading_a_missing_archive_is_an_archive_error(tmp_path):
    with pytest.raises(ArchiveError, match="no archive"):
        read_archive(tmp_path, "shop-events")


@pytest.mark.kafka
def test_archiving_a_topic_that_does_not_exist_is_an_archive_error(kafka_bootstrap, tmp_path):
    with pytest.raises(ArchiveError, match="does not exist"):
        archive_topic(kafka_bootstrap, "no-such-topic-archive", tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.kafka
def test_a_second_run_while_one_writes_is_refused(kafka_bootstrap, kafka_topic, tmp_path):
    produce(kafka_bootstrap, kafka_topic, 50, seed=7)
    root = tmp_path / kafka_topic
    root.mkdir()
    with open(root / ".lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ArchiveError, match="another archive run"):
            archive_topic(kafka_bootstrap, kafka_topic, tmp_path)
    assert archive_topic(kafka_bootstrap, kafka_topic, tmp_path).records == 50


@pytest.mark.kafka
def test_records_deleted_by_retention_before_archiving_are_reported_not_invented(
        kafka_bootstrap, kafka_topic, tmp_path):
    sent = produce(kafka_bootstrap, kafka_topic, 1200, seed=8)
    first = archive_topic(kafka_bootstrap, kafka_topic, tmp_path, segment_records=100)
    sent |= produce(kafka_bootstrap, kafka_topic, 1200, seed=9, first_ts=1_780_000_000_000)
    ends = {p.partition: max(o for q, o in sent if q == p.partition) + 1 for p in first.partitions}
    deleted_before = {p.partition: (p.next_offset + ends[p.partition]) // 2 for p in first.partitions}
    with admin_client(kafka_bootstrap) as admin:
        admin.delete_records({TopicPartition(kafka_topic, p): o for p, o in deleted_before.items()})

    second = archive_topic(kafka_bootstrap, kafka_topic, tmp_path, segment_records=100)

    for part in second.partitions:
        was = next(p for p in first.partitions if p.partition == part.partition)
        assert part.unavailable == deleted_before[part.partition] - was.next_offset
        assert part.first_offset == deleted_before[part.partition]
        assert part.records == ends[part.partition] - deleted_before[part.partition]
    kept = {(p, o): v for (p, o), v in sent.items() if o < first.partitions[p].next_offset or o >= deleted_before[p]}
    assert archived(tmp_path, kafka_topic) == kept


# ---- damaged archives, written by hand -------------------------------------

def write_segment(directory, first_offset, offsets, *, partition=0, topic="t", from_offset=None):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / segment_name(first_offset)
    metadata = {META_TOPIC: topic, META_PARTITION: str(partition),
                META_FROM_OFFSET: str(first_offset if from_offset is None else from_offset)}
    records = [{"partition": partition, "offset": o, "timestamp": 1, "key": None,
                "value": b"v%d" % o, "headers": []} for o in offsets]
    with open(path, "wb") as stream:
        fastavro.writer(stream, archive_schema(), records, metadata=metadata)
    return path


def test_kafka_offset_gaps_are_not_corruption(tmp_path):
    part = tmp_path / "t" / "partition-0000"
    write_segment(part, 0, [0, 1, 5, 6])
    write_segment(part, 9, [9, 10], from_offset=7)

    assert [d["offset"] for d in iter_partition(tmp_path, "t", 0)] == [0, 1, 5, 6, 9, 10]


@pytest.mark.parametrize("offsets", [[0, 1, 1, 2], [0, 2, 1]])
def test_a_repeated_or_decreasing_offset_names_the_file(tmp_path, offsets):
    bad = write_segment(tmp_path / "t" / "partition-0000", 0, offsets)

    with pytest.raises(ArchiveError, match=bad.name):
        verify_archive(tmp_path, "t")


def test_overlapping_segments_name_the_file(tmp_path):
    part = tmp_path / "t" / "partition-0000"
    write_segment(part, 0, [0, 1, 2])
    bad = write_segment(part, 2, [2, 3], from_offset=3)

    with pytest.raises(ArchiveError, match=bad.name):
        verify_archive(tmp_path, "t")


def test_a_missing_segment_names_the_file_after_the_hole(tmp_path):
    part = tmp_path / "t" / "partition-0000"
    write_segment(part, 0, [0, 1])
    write_segment(part, 2, [2, 3], from_offset=2).unlink()
    after = write_segment(part, 4, [4, 5], from_offset=4)

    with pytest.raises(ArchiveError, match=after.name):
        verify_archive(tmp_path, "t")


def test_a_record_of_another_partition_names_the_file(tmp_path):
    bad = write_segment(tmp_path / "t" / "partition-0001", 0, [0, 1], partition=0)

    with pytest.raises(ArchiveError, match=bad.name) as refused:
        verify_archive(tmp_path, "t")
    assert str(refused.value).endswith("segment of partition 0, not 1")


def test_a_segment_of_another_topic_or_starting_before_its_promise_names_the_file(tmp_path):
    bad = write_segment(tmp_path / "t" / "partition-0000", 0, [0, 1], topic="u")
    with pytest.raises(ArchiveError) as refused:
        verify_archive(tmp_path, "t")
    assert str(refused.value) == f"{bad}: segment of topic 'u', not 't'"
    bad.unlink()
    early = write_segment(tmp_path / "t" / "partition-0000", 0, [0, 1], from_offset=1)
    with pytest.raises(ArchiveError) as refused:
        verify_archive(tmp_path, "t")
    assert str(refused.value) == (f"{early}: first record has offset 0, before 1 where the segment says it "
                                  "continues from")
    early.unlink()
    moved = write_segment(tmp_path / "t" / "partition-0000", 0, [0, 1])
    records = list(fastavro.reader(open(moved, "rb")))
    with open(moved, "wb") as stream:
        fastavro.writer(stream, archive_schema(), [records[0], {**records[1], "partition": 2}],
                        metadata={META_TOPIC: "t", META_PARTITION: "0", META_FROM_OFFSET: "0"})
    with pytest.raises(ArchiveError) as refused:
        verify_archive(tmp_path, "t")
    assert str(refused.value) == f"{moved}: offset 1 belongs to partition 2"


def test_a_segment_without_records_names_the_file(tmp_path):
    empty = write_segment(tmp_path / "t" / "partition-0000", 0, [])
    with pytest.raises(ArchiveError) as refused:
        verify_archive(tmp_path, "t")
    assert str(refused.value) == f"{empty}: segment holds no records"
    with pytest.raises(ArchiveError) as refused:
        resume_offset(empty.parent)
    assert str(refused.value) == f"{empty}: segment holds no records"


def test_temporary_files_are_not_read(tmp_path):
    part = tmp_path / "t" / "partition-0000"
    write_segment(part, 0, [0, 1])
    (part / (segment_name(2) + ".tmp")).write_bytes(b"half a segment")

    assert verify_archive(tmp_path, "t") == {0: 2}


def test_a_truncated_segment_names_the_file(tmp_path):
    part = tmp_path / "t" / "partition-0000"
    write_segment(part, 0, list(range(50)))
    bad = write_segment(part, 50, list(range(50, 100)))
    bad.write_bytes(bad.read_bytes()[:-40])

    with pytest.raises(ArchiveError, match=bad.name):
        verify_archive(tmp_path, "t")


class _Record:
    """What kafka-python hands the archiver for one message."""

    def __init__(self, partition, offset, value, key=None, headers=None):
        self.partition, self.offset, self.timestamp = partition, offset, 1_750_000_000_000 + offset
        self.key, self.value, self.headers = key, value, headers


def test_segments_written_offline_read_back_as_the_messages_kafka_gave(tmp_path):
    """The archiver's own writer, without a broker: two segments of partition 3 (the second one
    resuming after a gap), a leftover half-written segment and one discarded; the archive reads back
    every message with its position, value and time, and says where to resume."""
    root = topic_dir(tmp_path, "orders")
    directory = partition_dir(root, 3)
    directory.mkdir(parents=True)
    assert resume_offset(directory) is None
    given = [_Record(3, 0, b"first", key=b"k", headers=[("source", b"shop")]), _Record(3, 1, None),
             _Record(3, 5, b"after a gap")]
    for first, records, from_offset in ((0, given[:2], 0), (5, given[2:], 2)):
        writer = SegmentWriter(directory, "orders", 3, first, from_offset, "deflate")
        for record in records:
            writer.append(archived_record(record))
        assert writer.records == len(records)
        assert writer.publish() == writer.path.stat().st_size > 0
    abandoned = SegmentWriter(directory, "orders", 3, 6, 6, "null")
    abandoned.append(archived_record(_Record(3, 6, b"never published")))
    abandoned.discard()
    abandoned.discard()  # twice: nothing left to remove
    (directory / (segment_name(6) + ".tmp")).write_bytes(b"half a segment")
    remove_leftovers(root)
    assert sorted(p.name for p in directory.iterdir()) == [segment_name(0), segment_name(5)]
    assert resume_offset(directory) == 6
    with pytest.raises(ArchiveError, match="already exists"):
        SegmentWriter(directory, "orders", 3, 5, 5, "null")
    [datum, *_] = iter_partition(tmp_path, "orders", 3)
    assert datum["headers"] == [{"key": "source", "value": b"shop"}] and datum["key"] == b"k"
    messages = list(read_archive(tmp_path, "orders")[3])
    assert [(m.topic, m.partition, m.offset, m.value, m.timestamp, m.position) for m in messages] == [
        ("orders", 3, 0, b"first", 1_750_000_000_000, "orders:3:0"),
        ("orders", 3, 1, b"", 1_750_000_000_001, "orders:3:1"),
        ("orders", 3, 5, b"after a gap", 1_750_000_000_005, "orders:3:5")]
    assert [m.kind for m in messages] == [AVRO] * 3


@pytest.mark.parametrize("topic", ["", ".", "..", "a/b"])
def test_a_topic_that_would_escape_the_archive_directory_is_refused(tmp_path, topic):
    with pytest.raises(ArchiveError):
        topic_dir(tmp_path, topic)


def test_a_segment_whose_header_names_no_topic_is_read_as_the_directorys(tmp_path):
    """Segments record their topic in the header; one without it (written by hand, or by an older
    archiver) belongs to the topic whose directory holds it."""
    part = tmp_path / "t" / "partition-0000"
    part.mkdir(parents=True)
    with open(part / segment_name(0), "wb") as stream:
        fastavro.writer(stream, archive_schema(), [{"partition": 0, "offset": 0, "timestamp": 1, "key": None,
                                                    "value": b"v", "headers": []}], metadata={META_PARTITION: "0"})
    assert verify_archive(tmp_path, "t") == {0: 1}
