"""A fetched batch's records, read by refledger in one call, are the records kafka-python reads.

`consumers.kafka_records` replaces kafka-python's record-by-record reading of a
fetched v2 batch for `consume`, replay from Kafka and `archive`. Whatever the
batch (compressed or not, keys, headers, null values, broker-stamped times,
control and legacy batches, a fetch that starts inside a batch), the consumer
must get the same records, the same position after each `take`, and on damaged
bytes the same records before the damage and then the same error.
"""

from __future__ import annotations

import struct

import crc32c
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.record import MemoryRecords
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder

from refledger.consumers.kafka_records import BatchReadingConsumer, BatchRecords

TP = TopicPartition("shop-events", 3)
T0 = 1_796_307_701_954
CODECS = [0] + [code for code, present in ((1, has_gzip), (2, has_snappy), (3, has_lz4), (4, has_zstd)) if present()]
ATTRIBUTES_AT = 21       # a v2 batch's attributes (int16), covered by its CRC from here on
LOG_APPEND_TIME = 0x08   # attributes: the broker stamped the batch's time
CONTROL = 0x20 | 0x10    # attributes: a transaction's marker (control, transactional)


def v2_batch(base: int, records: list[tuple], codec: int = 0, attributes: int = 0) -> bytes:
    """A v2 batch of (offset delta, time delta, key, value, headers) records, as a broker stores it."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for delta, time_delta, key, value, headers in records:
        builder.append(delta, timestamp=T0 + time_delta, key=key, value=value, headers=headers)
    buf = bytearray(builder.build())
    struct.pack_into(">q", buf, 0, base)
    if attributes:
        (old,) = struct.unpack_from(">h", buf, ATTRIBUTES_AT)
        struct.pack_into(">h", buf, ATTRIBUTES_AT, old | attributes)
        struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[ATTRIBUTES_AT:])))
    return bytes(buf)


def legacy_batch(magic: int, base: int, values: list[bytes]) -> bytes:
    builder = LegacyRecordBatchBuilder(magic=magic, compression_type=0, batch_size=1 << 20)
    for i, value in enumerate(values):
        builder.append(base + i, timestamp=T0 + i if magic else None, key=b"k%d" % i, value=value)
    return bytes(builder.build())


def shop_records(n: int, every: int = 1) -> list[tuple]:
    """Events as shops send them, with the odd case of each field."""
    out = []
    for i in range(n):
        key = (b"alliance", None, b"", b"li-kids")[i % 4]
        value = (b"\x01" * 67, None, b"", b"\xc3\x01" + b"x" * 300)[i % 4]  # 302 bytes: a two-byte length
        headers = ([], [("trace", b"abc")], [("ключ", None), ("", b"")], [])[i % 4]
        out.append((i * every, i * 997_000, key, value, headers))  # times a varlong of several bytes
    return out


def read_all(cls, buf: bytes, fetch_offset: int = 0, check_crcs: bool = True, take: int = 7):
    """What a consumer gets from a fetched partition: each take's records and position after it,
    the error that ended it (if any), and the fetcher's counts."""
    part = cls(fetch_offset, TP, MemoryRecords(buf), check_crcs=check_crcs)
    takes, error = [], None
    while part:
        try:
            got = part.take(take)
        except Exception as exc:  # noqa: BLE001 (a legacy batch's damage raises what kafka-python raises)
            error = type(exc)
            break
        takes.append((got, part.next_fetch_offset))
    return takes, error, part.records_read, part.bytes_read


def same_as_kafka_python(buf: bytes, **kw):
    ours = read_all(BatchRecords, buf, **kw)
    assert ours == read_all(Fetcher.PartitionRecords, buf, **kw)
    return ours


@pytest.mark.parametrize("codec", CODECS)
def test_records_of_every_kind_read_as_kafka_python_reads_them(codec):
    batches = (v2_batch(0, shop_records(40), codec) + v2_batch(40, shop_records(25, every=70), codec)
               + v2_batch(5_000, shop_records(3), codec))
    takes, error, count, _ = same_as_kafka_python(batches)
    records = [r for got, _ in takes for r in got]
    assert error is None and count == len(records) == 68
    assert [r.offset for r in records[40:43]] == [40, 110, 180]  # offset deltas of several bytes
    assert records[1].key is None and records[1].value is None and records[2].value == b""
    assert records[2].headers == [("ключ", None), ("", b"")] and len(records[3].value) == 302
    assert takes[-1][1] == 5_003  # the position after the last batch


def test_a_fetch_from_inside_a_batch_starts_at_its_offset():
    takes, _, _, _ = same_as_kafka_python(v2_batch(100, shop_records(20)), fetch_offset=113)
    assert [r.offset for got, _ in takes for r in got] == list(range(113, 120))


def test_broker_stamped_times_control_batches_and_legacy_batches():
    stamped = v2_batch(0, shop_records(5), attributes=LOG_APPEND_TIME)
    control = v2_batch(5, [(0, 0, b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00", [])], attributes=CONTROL)
    after = v2_batch(6, shop_records(2))
    takes, error, count, _ = same_as_kafka_python(stamped + control + after)
    records = [r for got, _ in takes for r in got]
    assert error is None and count == 7 and [r.offset for r in records] == [0, 1, 2, 3, 4, 6, 7]
    assert {r.timestamp for r in records[:5]} == {T0 + 4 * 997_000} and records[0].timestamp_type == 1
    takes, _, _, _ = same_as_kafka_python(legacy_batch(0, 0, [b"a", b"b"]) + legacy_batch(1, 2, [b"c"]))
    assert [r.value for got, _ in takes for r in got] == [b"a", b"b", b"c"]


def test_every_truncation_and_every_bit_flip_gives_what_kafka_python_gives():
    batch = v2_batch(0, shop_records(4))
    errors = 0
    for end in range(len(batch)):
        errors += same_as_kafka_python(batch[:end], check_crcs=False)[1] is not None
    for at in range(len(batch)):
        for bit in range(8):
            flipped = bytearray(batch)
            flipped[at] ^= 1 << bit
            errors += same_as_kafka_python(bytes(flipped), check_crcs=False, take=1)[1] is not None
    assert errors > 100  # the damage was seen, the same way, by both
    # with the CRC checked (as every consumer does), a flip anywhere it covers is refused
    flipped = bytearray(batch)
    flipped[70] ^= 1
    assert same_as_kafka_python(bytes(flipped))[1] is CorruptRecordError


def test_the_batch_reading_consumer_reads_a_real_topic_as_kafka_python_does(kafka_bootstrap, kafka_topic):
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, compression_type="gzip", linger_ms=20)
    for i, (_d, _t, key, value, headers) in enumerate(shop_records(600)):
        producer.send(kafka_topic, key=key, value=b"" if key is None and value is None else value,
                      headers=[(k, v or b"") for k, v in headers], partition=i % 3)  # (it sends no null)
    producer.flush()
    producer.close()

    def consumed(fast: bool) -> list:
        consumer = (BatchReadingConsumer if fast else KafkaConsumer)(
            bootstrap_servers=kafka_bootstrap, group_id=None, auto_offset_reset="earliest",
            enable_auto_commit=False, max_poll_records=50)
        assert (consumer._fetcher.PartitionRecords is BatchRecords) is fast
        consumer.assign([TopicPartition(kafka_topic, p) for p in range(3)])
        got = []
        while len(got) < 600:
            for records in consumer.poll(timeout_ms=5_000).values():
                got.extend(records)
        consumer.close()
        return sorted(got, key=lambda r: (r.partition, r.offset))

    ours = consumed(True)
    assert ours == consumed(False)
    assert len(ours) == 600 and {r.partition for r in ours} == {0, 1, 2}
