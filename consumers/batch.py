"""Source-independent batch processing: decode → dedup → fold → one transaction.

`consume` (Kafka), `ingest` (files) and replay feed `LogProcessor.process`
with `Message`s; it decides, for each one, exactly one outcome:

* stored and folded (the fold may also quarantine it for a business reason;
  it stays in the log either way, because replay must see it again),
* skipped: an identical re-delivery of an event already in the same log,
* quarantined before the fold: undecodable, schema_invalid, conflicting_duplicate.

Then it hands the store one `BatchWrite` holding the events, quarantine rows,
entries, decisions and next positions of the batch, committed together.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from hashlib import blake2b
from typing import Callable, Iterable, NamedTuple

from schemas import codec
from schemas.codec import CURRENT_FINGERPRINT
from schemas.traffic import read_traffic_fields

from consumers.ledger_rows import LedgerRows
from consumers.fold_worker import FoldWorker, fold_record, rebuilt_fold
from refledger.columns import EVENT_COLUMNS, arrow_rows
from refledger.store import BatchWrite, LedgerStore

log = logging.getLogger("refledger.batch")

AVRO = "avro"      # value holds Avro single-object bytes
JSON = "json"      # value holds one JSON Lines line (bytes)


class Message(NamedTuple):
    """One event as read from a log, before decoding (a named tuple: built by the
    hundred thousand per second, so it must be cheap to make)."""

    topic: str
    partition: int
    offset: int
    value: bytes
    kind: str = AVRO
    timestamp: int | None = None
    position: str = ""

    def where(self) -> str:
        return self.position or f"{self.topic}:{self.partition}:{self.offset}"

    def raw_bytes(self) -> bytes:
        return b"" if self.value is None else bytes(self.value)  # a Kafka record may have no value


def decode_message(msg: Message) -> dict:
    if msg.kind == AVRO:
        return codec.decode(msg.value)
    if msg.kind == JSON:
        return codec.record_from_json(msg.value)
    raise ValueError(f"unknown message kind {msg.kind!r}")


def decode_canonical(msg: Message) -> tuple[dict, bytes]:
    """The record and its canonical single-object message (what the events table stores)."""
    if msg.kind == AVRO:
        return codec.decode_canonical(msg.value)
    record = decode_message(msg)
    return record, codec.canonical_message(record)




class DedupIndex:
    """Which event ids exist, with which content, in which logs.

    A duplicate is a re-delivery of an event id into a log that already holds
    it; the same alliance event in another partition is that partition's copy
    and is stored there. Same id with other content, anywhere, conflicts.
    """

    def __init__(self):
        self._content: dict[str, bytes] = {}
        self._first_log: dict[str, tuple[str, int]] = {}   # the log an event id was first stored in
        self._more_logs: dict[str, set[tuple[str, int]]] = {}  # further logs holding the same event
        self._conflicts: dict[tuple[str, bytes], set[tuple[str, int]]] = {}

    def check(self, event_id: str, log: tuple[str, int], digest: bytes) -> str:
        """'new', 'duplicate' or 'conflict' for an event arriving in ``log`` (topic, partition);
        records the event when new.

        A conflicting event delivered again, identical, into the same log is
        a duplicate of the first conflicting delivery, so re-reading a log
        quarantines nothing twice."""
        known = self._content.get(event_id)
        if known is None:  # nearly every event: one lookup, two stores
            self._content[event_id] = digest
            self._first_log[event_id] = log
            return "new"
        if known != digest:
            seen_in = self._conflicts.setdefault((event_id, digest), set())
            if log in seen_in:
                return "duplicate"
            seen_in.add(log)
            return "conflict"
        if self._first_log[event_id] == log:
            return "duplicate"
        more = self._more_logs.setdefault(event_id, set())
        if log in more:
            return "duplicate"
        more.add(log)
        return "new"

    def __len__(self) -> int:
        return len(self._content)


COUNTERS = ("events_read", "events_stored", "duplicates_skipped", "quarantined", "entries_posted", "batches")


@dataclass
class BatchCounts:
    """What committed batches read and did, counted alike by `consume`, `ingest` and replay."""

    events_read: int = 0
    events_stored: int = 0
    duplicates_skipped: int = 0
    quarantined: int = 0
    entries_posted: int = 0
    batches: int = 0

    def add(self, batch: BatchWrite) -> None:
        self.events_read += batch.events_read
        self.events_stored += batch.events_stored
        self.duplicates_skipped += batch.duplicates_skipped
        self.quarantined += batch.quarantined
        self.entries_posted += batch.entries_posted
        self.batches += 1

    def merge(self, other: "BatchCounts") -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}


class LogProcessor:
    """Folds messages from any number of logs into one ledger store."""

    def __init__(self, store: LedgerStore, fold_factory: Callable | None = None, *, source: str = "kafka",
                 fold_worker: bool = False):
        """``fold_worker``: fold in a child process (`consumers.fold_worker`) while this one reads."""
        self.store = store
        self.use_worker = fold_worker and fold_factory is not None
        self.worker = None
        self.source = source
        self.fold_factory = fold_factory
        self.positions: dict[tuple[str, int], int] = store.positions()
        self.dedup = DedupIndex()
        for event_id, topic, partition, digest in store.dedup_index():
            self.dedup.check(event_id, (topic, partition), digest)
        for event_id, topic, partition, digest in store.conflict_index():
            self.dedup.check(event_id, (topic, partition), digest)
        self._folds: dict[tuple[str, int], object] = {}

    def close(self) -> None:
        """Stop the fold process, if there is one."""
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def position(self, topic: str, partition: int) -> int | None:
        return self.positions.get((topic, partition))

    # -- folding -------------------------------------------------------------

    def fold_for(self, topic: str, partition: int):
        key = (topic, partition)
        fold = self._folds.get(key)
        if fold is None and self.fold_factory is not None:
            stored = self._stored(topic, partition)
            fold = self._folds[key] = rebuilt_fold(self.fold_factory, stored)
        return fold

    def _stored(self, topic: str, partition: int) -> list[bytes]:
        stored = [avro for _offset, avro in self.store.partition_events(topic, partition)]
        if stored:
            log.info("rebuilding fold state of %s:%d from %d stored events", topic, partition, len(stored))
        return stored

    # -- the batch -----------------------------------------------------------

    def process(self, messages: Iterable[Message], *, kafka_records: bool = False) -> BatchWrite:
        """One batch of messages, decided and folded, ready for `commit`.

        ``kafka_records``: the messages are kafka-python ``ConsumerRecord``s (Avro values,
        positioned by topic:partition:offset), read as they are rather than copied into
        ``Message``s first.
        """
        batch = BatchWrite(source=self.source)
        rows = LedgerRows()
        add_event = batch.events.append
        positions = batch.positions
        check = self.dedup.check
        late: list[tuple] = []  # fold-stage quarantine rows of the event just folded
        jobs = [] if self.use_worker else None
        if jobs is not None:
            if self.worker is None:
                self.worker = FoldWorker(self.fold_factory)
            worker = self.worker
            batch.fold_raws = raws = []
        read = 0
        for msg in messages:
            topic, partition, offset, value = msg.topic, msg.partition, msg.offset, msg.value
            read += 1
            log_key = (topic, partition)
            positions[log_key] = offset + 1
            position = "" if kafka_records else msg.position
            # views and clicks (nine events in ten) as their fields, everything else as a record
            fields = (read_traffic_fields(value, CURRENT_FINGERPRINT) if type(value) is bytes
                      and (kafka_records or msg.kind == AVRO) else None)
            if fields is not None:
                record, canonical, event_id = None, value, fields[1]
            else:
                if kafka_records:
                    msg = Message(topic, partition, offset, value, AVRO, msg.timestamp)
                try:
                    record, canonical = decode_canonical(msg)
                except codec.CodecError as exc:
                    batch.add_quarantine(topic, partition, offset, msg.where(), _readable_event_id(msg),
                                         exc.reason, str(exc), "decode", msg.raw_bytes())
                    continue
                event_id = record["event_id"]
            digest = blake2b(canonical, digest_size=16).digest()  # the content hash of the events table
            verdict = check(event_id, log_key, digest)
            if verdict != "new":
                if verdict == "duplicate":
                    batch.duplicates_skipped += 1
                else:
                    batch.add_quarantine(topic, partition, offset, position or f"{topic}:{partition}:{offset}",
                                         event_id, "conflicting_duplicate",
                                         f"event id {event_id} was already stored with other content",
                                         "decode", bytes(value), digest)
                continue
            # The event's row (EVENT_COLUMNS), then what the fold needs besides: its position,
            # and its record, or for a view or click (no record) its referrer and placement.
            if fields is not None:  # no order, refund, amount or currency
                kind, _, occurred_at, _, shop_id, visitor_id, referrer, merchant, placement, _ = fields
                row = (topic, partition, offset, event_id, kind, occurred_at, shop_id, visitor_id, merchant,
                       None, None, None, None, msg.timestamp, digest, canonical, position, None, referrer, placement)
            else:
                kind = record["type"]
                payload = record[kind]
                row = (topic, partition, offset, event_id, kind, record["occurred_at"], record["shop_id"],
                       record.get("visitor_id"), payload.get("merchant_shop_id"), payload.get("order_id"),
                       payload.get("refund_id"), payload.get("amount_minor", payload.get("total_minor")),
                       payload.get("currency"), msg.timestamp, digest, canonical, position, record, None, None)
            add_event(row)
            if jobs is not None:  # the fold process folds it
                if not worker.knows(topic, partition):
                    worker.init_partition(topic, partition, self._stored(topic, partition))
                jobs.append(row)
                raws.append(value)
                continue
            fold = self.fold_for(topic, partition)
            if fold is not None:
                fold_record(fold, topic, partition, position or f"{topic}:{partition}:{offset}", bytes(value),
                            late, rows, row)
                for rejected in late:
                    batch.add_quarantine(*rejected)
                late.clear()
        if jobs:
            batch.fold_job = worker.submit(jobs)
        batch.events_read = read
        batch.extra_tables.update(rows.tables())
        batch.entries_posted = rows.entry_count
        return batch

    def commit(self, batch: BatchWrite) -> int:
        if batch.fold_job is not None:  # the fold process's part of the batch
            # the events' columns first: this thread would only wait for the fold meanwhile
            batch.events_table = arrow_rows(batch.events, EVENT_COLUMNS)
            folded = self.worker.result(batch.fold_job)
            raws = batch.fold_raws
            for row in folded.quarantine:
                if type(row[8]) is int:  # the fold process names the job; its bytes are here
                    row = (*row[:8], bytes(raws[row[8]]))
                batch.add_quarantine(*row)
            batch.extra_tables.update(folded.tables)
            batch.entries_posted = folded.entries_posted
            batch.fold_job = batch.fold_raws = None
        batch_id = self.store.write_batch(batch)
        self.positions.update(batch.positions)
        return batch_id


def _readable_event_id(msg: Message) -> str | None:
    """Best effort: the event id of an event that failed to decode, if it shows."""
    if msg.kind == JSON:
        try:
            value = json.loads(msg.value).get("event_id")
            return value if isinstance(value, str) else None
        except (ValueError, AttributeError):
            return None
    return None
