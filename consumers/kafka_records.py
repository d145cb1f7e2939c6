# cython: annotation_typing=True
"""A fetched record batch read into consumer records in one call, not record by record.

kafka-python (3.x) reads each record of a fetched batch with a dozen Python
calls (a varint at a time, a record object, then a consumer record): 10 to
15 µs of CPU a record on our machines, about as much as `consume`'s main
thread then spends decoding the event. ``fast_fetch(consumer)`` makes one
consumer's fetcher read the records of each v2 batch (what every broker
since Kafka 0.11 writes, and all Kafka 4 writes) with ``read_records``,
compiled (`refledger/compiled.py`), into the very ``ConsumerRecord``s
kafka-python makes, read the way it reads them (its own varint reader for
any varint longer than a byte): same fields, same values, and on damaged
bytes the same records before the damage, then ``CorruptRecordError``.
`tests/test_kafka_records.py` holds the two readers to that on batches of
every compression this machine has, with keys, headers, null values, log
append times, control and legacy batches, and on every truncation and
every single-bit flip of a batch's records.

What a batch is stays kafka-python's: its CRC check, its decompression,
skipping control batches, legacy (v0/v1) batches, and read_committed's
aborted transactions (a consumer reading committed records only, or one
with deserializers, reads as kafka-python does). Only the consumers given
to ``fast_fetch`` read this way, which every ``BatchReadingConsumer`` is:
`consume`, replay from Kafka and `archive`; the bench's bare loop (`bench/pipeline.py`) keeps kafka-python's.

A record (v2): length (varint), attributes (int8, unused: kafka-python
reads a varint), timestamp delta (varlong), offset delta (varint), key and
value (varint length, -1 for null, then the bytes), header count (varint),
and per header a key (varint length, UTF-8) and a value (varint length, -1
for null). Kafka's varints are zig-zag, as Avro's.
"""

from __future__ import annotations

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord, Fetcher
from kafka.errors import CorruptRecordError
from kafka.protocol.consumer import IsolationLevel
from kafka.record.util import decode_varint

_new = tuple.__new__


def read_records(data: bytes, pos: int, count: int, topic: str, partition: int, leader_epoch: int,
                 base_offset: int, first_timestamp: int, append_time: object, timestamp_type: int) -> tuple:
    """The ``count`` records of a v2 batch whose (uncompressed) records start at ``data[pos]``, as
    ``ConsumerRecord``s; their total size as kafka-python counts it (the records' lengths); and
    the ``CorruptRecordError`` that ended the batch early, else None: the records before it are
    read, as kafka-python hands them out before it raises. It raises where kafka-python does: a
    record that runs past its length or the batch, a negative header count or header key length,
    bytes left after the last record. ``append_time``: the batch's time when the broker stamped
    it (LogAppendTime), else None."""
    records = []
    size = 0
    end = len(data)
    try:
        for _ in range(count):
            # each varint read inline when it is one byte (nearly all are), else by read_long
            x = data[pos]
            if x < 0x80:
                length, pos = (x >> 1) ^ -(x & 1), pos + 1
            else:
                length, pos = decode_varint(data, pos)
            start = pos
            x = data[pos]  # the record's attributes (unused by Kafka: 0), as kafka-python reads them
            pos = pos + 1 if x < 0x80 else decode_varint(data, pos)[1]
            delta, pos = decode_varint(data, pos)
            x = data[pos]
            if x < 0x80:
                offset_delta, pos = (x >> 1) ^ -(x & 1), pos + 1
            else:
                offset_delta, pos = decode_varint(data, pos)
            x = data[pos]
            if x < 0x80:
                n, pos = (x >> 1) ^ -(x & 1), pos + 1
            else:
                n, pos = decode_varint(data, pos)
            if n >= 0:
                key = data[pos:pos + n]
                pos += n
                key_size = n
            else:
                key, key_size = None, -1
            x = data[pos]
            if x < 0x80:
                n, pos = (x >> 1) ^ -(x & 1), pos + 1
            else:
                n, pos = decode_varint(data, pos)
            if n >= 0:
                value = data[pos:pos + n]
                pos += n
                value_size = n
            else:
                value, value_size = None, -1
            x = data[pos]
            if x < 0x80:
                n, pos = (x >> 1) ^ -(x & 1), pos + 1
            else:
                n, pos = decode_varint(data, pos)
            if n < 0:
                raise CorruptRecordError(f"Found invalid number of record headers {n}")
            headers = []
            header_size = -1
            if n:
                header_size = 0
                for _h in range(n):
                    k, pos = decode_varint(data, pos)
                    if k < 0:
                        raise CorruptRecordError(f"Invalid negative header key size {k}")
                    h_key = data[pos:pos + k].decode("utf-8")
                    header_size += k
                    pos += k
                    k, pos = decode_varint(data, pos)
                    if k >= 0:
                        h_value = data[pos:pos + k]
                        header_size += len(h_value)
                        pos += k
                    else:
                        h_value = None
                    headers.append((h_key, h_value))
            if pos - start != length:
                raise CorruptRecordError(f"Invalid record size: expected to read {length} bytes in record "
                                         f"payload, but instead read {pos - start}")
            size += length
            records.append(_new(ConsumerRecord, (
                topic, partition, leader_epoch, base_offset + offset_delta,
                first_timestamp + delta if append_time is None else append_time, timestamp_type,
                key, value, headers, None, key_size, value_size, header_size)))
    except (ValueError, IndexError) as err:
        return records, size, CorruptRecordError(f"Found invalid record structure: {err!r}")
    except CorruptRecordError as err:
        return records, size, err
    if pos != end:
        return records, size, CorruptRecordError(f"{end - pos} unconsumed bytes after all records consumed")
    return records, size, None


class BatchRecords(Fetcher.PartitionRecords):
    """kafka-python's records of one fetched partition, each v2 batch read by ``read_records``."""

    def _unpack_records(self, tp, records, key_deserializer, value_deserializer):
        if (key_deserializer is not None or value_deserializer is not None
                or self.isolation_level != IsolationLevel.READ_UNCOMMITTED):
            yield from super()._unpack_records(tp, records, key_deserializer, value_deserializer)
            return
        batch = records.next_batch()
        last_batch = None
        while batch is not None:
            last_batch = batch
            if self.check_crcs and not batch.validate_crc():
                raise CorruptRecordError(f"Record batch for partition {self.topic_partition} at offset "
                                         f"{batch.base_offset} failed crc check")
            if batch.magic != 2:
                yield from self._legacy(tp, batch)
            elif batch.is_control_batch:  # a transaction's marker, never returned to the consumer
                self.leader_epoch = batch.leader_epoch
                self.next_fetch_offset = batch.next_offset
            else:
                self.leader_epoch = batch.leader_epoch
                iter(batch)  # decompresses the records, when compressed
                read, size, damage = read_records(
                    bytes(batch._buffer), batch._pos, batch.records_count, tp.topic, tp.partition,
                    self.leader_epoch, batch.base_offset, batch.first_timestamp,
                    batch.max_timestamp if batch.timestamp_type == 1 else None, batch.timestamp_type)
                self.records_read += len(read)
                self.bytes_read += size
                for record in read:
                    self.next_fetch_offset = record[3] + 1
                    yield record
                if damage is not None:
                    raise damage
            batch = records.next_batch()
        # a v2 batch keeps its last offset even when compaction removed its last record
        if last_batch is not None and last_batch.magic == 2:
            self.next_fetch_offset = last_batch.next_offset
        self.drain()

    def _legacy(self, tp, batch):
        """A batch of another version (v0/v1: brokers before Kafka 4), record by record as
        kafka-python reads it."""
        for record in batch:
            if self.check_crcs and not record.validate_crc():
                raise CorruptRecordError(f"Record for partition {self.topic_partition} at offset "
                                         f"{record.offset} failed crc check")
            key, value, headers = record.key, record.value, record.headers
            self.records_read += 1
            self.bytes_read += record.size_in_bytes
            self.next_fetch_offset = record.offset + 1
            yield ConsumerRecord(
                tp.topic, tp.partition, self.leader_epoch, record.offset, record.timestamp, record.timestamp_type,
                key, value, headers, record.checksum, len(key) if key is not None else -1,
                len(value) if value is not None else -1,
                sum(len(k.encode("utf-8")) + (len(v) if v is not None else 0) for k, v in headers) if headers else -1)


def fast_fetch(consumer) -> None:
    """Make a kafka-python ``KafkaConsumer`` read its fetched batches with ``read_records``."""
    consumer._fetcher.PartitionRecords = BatchRecords


class BatchReadingConsumer(KafkaConsumer):
    """A kafka-python ``KafkaConsumer`` that reads its fetched batches with ``read_records``: the
    client `consume`, replay from Kafka and `archive` ask ``connect`` for."""

    def __init__(self, *topics, **configs):
        super().__init__(*topics, **configs)
        fast_fetch(self)
