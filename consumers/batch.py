"""Source-independent batch processing: decode and dedup, fold, one transaction.

`consume` (Kafka), `ingest` (files) and replay feed `LogProcessor.process`
with `Message`s (or Kafka's own records); it decides, for each one, exactly
one outcome:

* quarantined before the fold: undecodable, schema_invalid (never stored as
  an event: there is none to store; the raw bytes are kept with the reason);
* stored in the partition's log (`events`) and folded: the fold may quarantine
  it (period_closed, conflicting_duplicate, unknown_shop, …), and it stays in
  the log either way, because replay must see it again;
* skipped: an identical re-delivery of an event already in the partition's
  log (the fold decides, SPEC §4: after the period_closed check); not stored.

A batch goes through three steps:

1. `LogProcessor.decode_messages`: each message is decoded (views, clicks, orders and refunds of
   the current schema by the fixed-layout readers) and becomes an
   `EventRow` for the `events` table and a `FoldItem` for the fold;
2. the items go to a `FoldBackend` (`consumers.folding`): folded at once in
   this process, or in a child process while this one reads the next batch;
3. `commit` collects the fold's result (entries, decisions, checkpoints,
   its quarantine rows, the items it skipped as duplicates) and hands the
   store one `BatchWrite` holding the events, quarantine rows, entries,
   decisions and next positions of the batch, committed together.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import pyarrow as pa
from typing import Callable, Iterable

from refledger.schemas import codec
from refledger.schemas.codec import CURRENT_FINGERPRINT, content_digest
from refledger.schemas.messages import AVRO, JSON, PERSONAL, Message, decode_canonical
from refledger.schemas.personal_data import checked_fields, may_hold, personal_fields, redacted
from refledger.schemas.traffic import read_traffic_fields

from refledger.consumers.folding import SNAPSHOT_EVERY, FoldBackend, FoldItem, InProcessFolds, snapshot_loads
from refledger.consumers.heap import give_back_freed_memory
from refledger.consumers.verification import SignaturesAhead
from refledger.ledger.events import PERSONAL_DATA, traffic_event
from refledger.store.columns import EVENT_COLUMNS, EventRow, arrow_rows
from refledger.store.lake import FencedOut
from refledger.store.ledger_file import BatchWrite
from refledger.store.storage import LedgerStorage
from refledger.store.snapshots import digest

log = logging.getLogger("refledger.batch")

# Batches committed on the writer thread while the next ones are read: the fold process works on
# one while DuckDB writes another and the main thread reads the next; a third evens out batches
# that take longer to fold (a settlement).
MAX_IN_FLIGHT = 3
# Records per poll of `consume`, and so per batch and per transaction (`replay` folds the same
# batches). What a batch costs whatever its size (a dozen statements, each waiting for the
# interpreter lock back from the poll loop; a commit; the fold's job and answer) is paid once for
# 20,000 events: against 5,000, `consume` ran about a quarter faster, signed or not
# (docs/architecture.md, "Writing while folding"). A DuckLake's commit costs some 75 ms of catalog
# round trips whatever its size too.
MAX_POLL_RECORDS = 20_000

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


class NotWritten(Exception):
    """A batch let go unwritten, behind one that could not be written (see `LogProcessor.commit`).
    ``recoverable``: the batches before were refused by a shared ledger, and reading the logs
    `LogProcessor.logs_to_reread` names again from the ledger's positions goes on; else the
    processor stopped writing for good on a failure (its cause)."""

    def __init__(self, message: str, recoverable: bool):
        super().__init__(message)
        self.recoverable = recoverable


@dataclass
class PendingBatch:
    """A batch between `process` and `commit`: what it writes, and the fold's part still to come."""

    write: BatchWrite
    readings: dict = field(default_factory=dict)  # each log's reading when it was processed (LogProcessor.commit)
    ticket: object = None                      # the fold backend's ticket for the batch's items
    items: list = field(default_factory=list)  # the FoldItems handed to the fold
    raws: list = field(default_factory=list)   # each item's event as received, for quarantine rows

    @property
    def positions(self) -> dict[tuple[str, int], int]:
        return self.write.positions


_new = tuple.__new__


class LogProcessor:
    """Folds messages from any number of logs into one ledger store."""

    def __init__(self, store: LedgerStorage, fold_factory: Callable, *, source: str = "kafka",
                 fold_worker: bool = False, snapshot_every: int = SNAPSHOT_EVERY):
        """``fold_factory`` makes one log's fold; ``fold_worker``: fold in a child process
        (`consumers.fold_worker`) while this one reads; ``snapshot_every``: events between two
        snapshots of a log's fold (besides one at every close)."""
        self.store = store
        self.source = source
        if fold_worker:
            from refledger.consumers.fold_worker import ChildProcessFolds

            self.folds: FoldBackend | None = ChildProcessFolds(fold_factory, snapshot_every)
        else:
            self.folds = InProcessFolds(fold_factory, snapshot_every)
        self.positions: dict[tuple[str, int], int] = store.positions()
        self._stale: set[tuple[str, int]] = set()  # logs whose fold is rebuilt from the store before next use
        self.redaction_key = store.redaction_key()
        self.signatures = SignaturesAhead(fold_verifies=fold_worker)
        # Each log's reading (moved on by `reread`) and, for a log with a batch not written, the reading
        # that batch was of; a failure other than a refusal stops all writing (`commit`).
        self._reading: dict[tuple[str, int], int] = {}
        self._unwritten: dict[tuple[str, int], int] = {}
        self._marks = threading.Lock()  # members' writer threads mark logs while a main thread reads them
        self._stopped_by: BaseException | None = None

    def close(self) -> None:
        """Let go of the folds (and stop the fold process, if there is one)."""
        self.signatures.close()
        if self.folds is not None:
            self.folds.close()
            self.folds = None

    def position(self, topic: str, partition: int) -> int | None:
        return self.positions.get((topic, partition))

    def assign(self, logs) -> None:
        """The logs this processor writes from now on (a consumer's assignment). A store that other
        processes write too is claimed for them first, which fences off any writer that held them
        before; then their positions are read back and their folds rebuilt from the store before
        their next batch, since another writer may have moved them on meanwhile."""
        if self.store.single_writer:
            return
        logs = set(logs)
        if not logs:
            return
        self.store.claim(logs)
        # a batch of these logs read before the claim (by another member of this process) holds events
        # another writer may have written since: none is written
        self._mark({key: self._reading.get(key, 0) for key in logs})
        self.reread(logs)

    def reread(self, logs) -> None:
        """Forget what this processor knows of ``logs`` (their positions and folds) and take it from
        the store again: after a batch the store refused, or a claim."""
        stored = self.store.positions()
        for key in logs:
            self._reading[key] = self._reading.get(key, 0) + 1
            if key in stored:
                self.positions[key] = stored[key]
            else:
                self.positions.pop(key, None)
            self._stale.add(key)

    def _load(self, topic: str, partition: int) -> None:
        """Build a log's fold from its latest sound snapshot and the stored events after it. A snapshot
        whose bytes do not match the digest its checkpoint recorded, or that this version cannot
        read, is never used: the next older one is tried, and in the end the fold is rebuilt from
        all the log's events."""
        snapshot, after = None, -1
        for offset, snapshot_digest, recorded, state in self.store.snapshots(topic, partition):
            if state is None:
                log.warning("snapshot of %s:%d after offset %d: its state is missing from the ledger: not used",
                            topic, partition, offset)
            elif recorded != snapshot_digest or snapshot_digest != digest(state):
                log.warning("snapshot of %s:%d after offset %d does not match its checkpoint's digest: not used",
                            topic, partition, offset)
            elif not snapshot_loads(state):
                log.warning("snapshot of %s:%d after offset %d cannot be read by this version (another layout): "
                            "not used", topic, partition, offset)
            else:
                snapshot, after = state, offset
                break
        stored = list(self.store.partition_events(topic, partition, after))
        for _offset, _event_id, avro in self.store.partition_events(topic, partition, types=("member", "policy")):
            try:
                self.signatures.learn(codec.decode(avro))  # the keys the fold will likely ask for
            except codec.CodecError:
                continue  # an event that no longer reads: the rebuild names it
        if stored or snapshot is not None:
            log.info("rebuilding fold state of %s:%d from %s and %d stored events", topic, partition,
                     f"its snapshot after offset {after}" if snapshot is not None else "the start", len(stored))
        self.folds.load(topic, partition, stored, snapshot)

    # -- the batch -----------------------------------------------------------

    def process(self, messages: Iterable[Message], *, kafka_records: bool = False) -> PendingBatch:
        """One batch of messages, decided and handed to the fold, ready for `commit`.

        ``kafka_records``: the messages are kafka-python ``ConsumerRecord``s (Avro values,
        positioned by topic:partition:offset), read as they are rather than copied into
        ``Message``s first.
        """
        pending = PendingBatch(BatchWrite(source=self.source))
        pending.items = items = self.decode_messages(messages, pending, kafka_records)
        self.signatures.verify()
        folds = self.folds
        if items:
            logs = {(item.topic, item.partition) for item in items}
            self.assign(key for key in logs if not folds.knows(*key) and key not in self._stale)
            for topic, partition in logs:
                if not folds.knows(topic, partition) or (topic, partition) in self._stale:
                    self._stale.discard((topic, partition))
                    self._load(topic, partition)
            pending.ticket = folds.submit(items)
        reading = self._reading  # after `assign`, which may read a log again
        pending.readings = {key: reading.get(key, 0) for key in pending.positions}
        return pending

    def decode_messages(self, messages: Iterable[Message], pending: PendingBatch,
                        kafka_records: bool) -> list[FoldItem]:
        """Step 1 of a batch (`process` calls it): every message decoded; an `EventRow` and a
        `FoldItem` for each event (its raw bytes in ``pending.raws``), a quarantine row for what
        cannot be read. The one decode step of `consume`, `ingest` and replay; ``kafka_records``:
        the messages are kafka-python ``ConsumerRecord``s."""
        batch = pending.write
        add_event = batch.events.append
        raws = pending.raws
        positions = batch.positions
        items: list[FoldItem] = []
        add_item = items.append
        signatures = self.signatures
        read = 0
        for msg in messages:
            topic, partition, offset, value = msg.topic, msg.partition, msg.offset, msg.value
            read += 1
            positions[(topic, partition)] = offset + 1
            position = "" if kafka_records else msg.position
            # views and clicks (nine events in ten) as their fields, everything else as a record; a view or click
            # whose text might hold personal data takes the general path, which looks closely
            fields = (read_traffic_fields(value, CURRENT_FINGERPRINT) if type(value) is bytes
                      and (kafka_records or msg.kind == AVRO) else None)
            if fields is not None and may_hold(fields[5], fields[8]):
                fields = None
            if fields is not None:  # a view or click: no order, refund, amount or currency
                kind, event_id, occurred_at, _, shop_id, visitor_id, referrer, merchant, placement, signature = fields
                add_event(_new(EventRow, (topic, partition, offset, event_id, kind, occurred_at, shop_id, visitor_id,
                                          merchant, referrer, None, None, None, None, msg.timestamp, value)))
                event = traffic_event(kind, event_id, occurred_at, shop_id, visitor_id, referrer, merchant,
                                      placement)
                signed = None if signature is None else signatures.of_traffic(fields)
                add_item(_new(FoldItem, (topic, partition, offset, position, event, None,
                                         content_digest(value, signature), signed)))
            else:
                if kafka_records:
                    msg = Message(topic, partition, offset, value, AVRO, msg.timestamp)
                elif msg.kind == PERSONAL:  # quarantined for personal data when first read, kept redacted
                    batch.add_quarantine(topic, partition, offset, msg.where(), _stored_event_id(value),
                                         PERSONAL_DATA, "personal data (kept redacted)", "decode", msg.raw_bytes())
                    continue
                try:
                    record, canonical = decode_canonical(msg)
                except codec.CodecError as exc:
                    batch.add_quarantine(topic, partition, offset, msg.where(), _readable_event_id(msg),
                                         exc.reason, str(exc), "decode", msg.raw_bytes())
                    continue
                found = personal_fields(record) if may_hold(*(v for _p, v, _s in checked_fields(record))) else ()
                if found:  # SPEC §4b: quarantined, and the ledger keeps only the redacted form
                    batch.add_quarantine(topic, partition, offset, msg.where(), record["event_id"], PERSONAL_DATA,
                                         f"personal data in {', '.join(found)} (kept redacted)", "decode",
                                         codec.canonical_message(redacted(record, self.redaction_key)))
                    continue
                kind = record["type"]
                payload = record[kind]
                add_event(_new(EventRow, (
                    topic, partition, offset, record["event_id"], kind, record["occurred_at"], record["shop_id"],
                    record.get("visitor_id"), payload.get("merchant_shop_id"), payload.get("referrer_shop_id"),
                    payload.get("order_id"), payload.get("refund_id"),
                    payload.get("amount_minor", payload.get("total_minor")), payload.get("currency"),
                    msg.timestamp, canonical)))
                signed = signatures.of_record(record)
                add_item(_new(FoldItem, (topic, partition, offset, position, None, record,
                                         content_digest(canonical, record.get("signature")), signed)))
            raws.append(value)
        batch.events_read = read
        return items

    def drop(self, pending: PendingBatch) -> None:
        """A batch that will not be written (the store refused one before it): the fold's answer is
        collected all the same, and let go; its logs are `reread` before they are folded again."""
        if pending.ticket is not None:
            self.folds.result(pending.ticket)
            pending.ticket = pending.items = pending.raws = None

    def commit(self, pending: PendingBatch) -> int:
        """Step 3: the fold's part of the batch collected, the batch written in one transaction.

        A batch not written leaves a gap in each of its logs: a batch read after it from the same
        reading of one of those logs holds later events, and written without it, it would leave the
        first one's events out of the ledger and a gap in that log's chain. So it is let go too
        (`NotWritten`), and so on, until the caller has read the log again from the ledger's position
        (`logs_to_reread`, `reread`). That is how a shared ledger's refusal (`FencedOut`: another
        writer claimed a log) is recovered from; any other failure (a full disk) stops all writing:
        no batch after it is written."""
        if self._stopped_by is not None:
            self.drop(pending)
            raise NotWritten(f"not written after an earlier batch failed: {self._stopped_by}", False)
        unwritten = self._unwritten
        if any(unwritten.get(key, -1) >= reading for key, reading in pending.readings.items()):
            self._set_aside(pending)
            raise NotWritten("read after a batch of the same logs that was not written", True)
        try:
            return self._write(pending)
        except FencedOut:
            self._set_aside(pending)
            raise
        except BaseException as exc:
            self._stopped_by = exc
            raise

    def _set_aside(self, pending: PendingBatch) -> None:
        self._mark(pending.readings)
        self.drop(pending)

    def _mark(self, readings: dict[tuple[str, int], int]) -> None:
        """No batch of these logs' readings (or earlier ones) is written: see `commit`."""
        with self._marks:
            for key, reading in readings.items():
                self._unwritten[key] = max(reading, self._unwritten.get(key, -1))

    def logs_to_reread(self) -> set[tuple[str, int]]:
        """The logs a batch not written left a gap in, and not read again since (`reread`): what is
        read of them from here on is not written until they are."""
        reading = self._reading
        with self._marks:
            return {key for key, unwritten in self._unwritten.items() if unwritten >= reading.get(key, 0)}

    def _write(self, pending: PendingBatch) -> int:
        batch = pending.write
        if pending.ticket is not None:
            # the events' columns first: this thread would only wait for the fold meanwhile
            events = arrow_rows(batch.events, EVENT_COLUMNS)
            folded = self.folds.result(pending.ticket)
            items, raws = pending.items, pending.raws
            for rejected in folded.rejections:
                item = items[rejected.item]
                raw = b"" if rejected.late else bytes(raws[rejected.item])
                batch.add_quarantine(item.topic, item.partition, item.offset, item.where(), rejected.event_id,
                                     rejected.reason, rejected.detail, "fold", raw, rejected.late)
            if folded.skipped:  # identical re-deliveries: counted, not stored
                keep = [True] * len(items)
                for index in folded.skipped:
                    keep[index] = False
                events = events.filter(pa.array(keep))
                batch.duplicates_skipped = len(folded.skipped)
            batch.events_table = events
            batch.extra_tables.update(folded.tables)
            batch.entries_posted = folded.entries_posted
            pending.ticket = pending.items = pending.raws = None
        batch_id = self.store.write_batch(batch)
        self.positions.update(batch.positions)
        give_back_freed_memory()  # what the batches and their transactions freed (consumers.heap)
        return batch_id


def _stored_event_id(avro: bytes) -> str | None:
    """The event id of bytes the ledger stored, if they still read (no stored bytes stop a replay)."""
    try:
        return codec.decode(avro)["event_id"]
    except codec.CodecError:
        return None


def _readable_event_id(msg: Message) -> str | None:
    """Best effort: the event id of an event that failed to decode, if it shows (JSON read by the
    codec's own JSON reader, so no line can break this either)."""
    if msg.kind == JSON:
        try:
            value = codec.parse_json(msg.value)
        except codec.CodecError:
            return None
        event_id = value.get("event_id") if isinstance(value, dict) else None
        return event_id if isinstance(event_id, str) else None
    return None
