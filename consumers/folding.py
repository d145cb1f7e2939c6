"""Folding a batch's stored events: what the fold takes, what it gives back, and where it runs.

The batch processor (`consumers.batch`) decodes and deduplicates a batch,
then hands the events to store to a `FoldBackend` as `FoldItem`s and later
collects a `FoldResult`: the quarantine rows the fold decided and the Arrow
tables of entries, decisions and checkpoints. Two backends implement it:

* `InProcessFolds` folds right away, in this process (`ingest`, `replay`);
* `ChildProcessFolds` (`consumers.fold_worker`) folds in a child process
  while this one reads the next batch (`consume`).

Both call `fold_items`, so the ledger is the same entry for entry; a test
holds them to it. A backend keeps one fold per log (topic, partition),
built with `load` the first time the log is met: from the log's latest
snapshot and the stored events after it, or from all its stored events when
it has none (their entries are in the ledger already, so only the state is
rebuilt).

Snapshots (SPEC §12.8): `fold_items` snapshots a log's fold right after a
close moves its books forward, and after ``SNAPSHOT_EVERY`` events folded
since the last one, and hands them to the store with the batch (same
transaction), each with its digest in the log's checkpoint row.
"""

from __future__ import annotations

import gc
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple, Protocol

import pyarrow as pa

from refledger.consumers.ledger_rows import LedgerRows
from refledger.ledger.events import Event, traffic_event
from refledger.ledger.fold import NOTHING
from refledger.ledger.signers import Signature
from refledger.ledger.snapshot import FORMAT as SNAPSHOT_FORMAT, export_state, restore_state
from refledger.schemas import codec
from refledger.schemas.codec import CURRENT_FINGERPRINT
from refledger.schemas.traffic import read_traffic_fields
from refledger.store.snapshots import SnapshotFileError, decode_snapshot, digest, encode_snapshot

log = logging.getLogger("refledger.rebuild")

# A log's fold is snapshotted after this many events since its last snapshot (and at every close):
# a restart folds at most this many events per log on top of the latest snapshot.
SNAPSHOT_EVERY = 250_000

# The garbage collector's thresholds while folding batch after batch (consume, in both of its
# processes; ingest; replay). Batches in flight hold hundreds of thousands of young objects
# (records, rows, jobs) that live for a few batches and die by reference counting; at the
# default (a collection every 700 allocations) the collector walked them over and over, a fifth
# of the consumer's time by the millionth event. The collector counts allocations less
# deallocations since its last collection, never below zero, and walks every young object still
# alive when the count passes the threshold: at 100,000, the main process of `consume` collected
# some thirty times in a million events, each walk a few batches' worth of objects (150 ms each,
# 4 s in all, a twentieth of its work). At 1,000,000 a batch's objects die, by reference counting,
# about as fast as the next batch's are made, and the count seldom gets there (once in a million
# events); the few cycles are freed all the same, later.
COLLECTOR_THRESHOLD = (1_000_000, 20, 10)
NEVER = 1 << 62  # an item index no job reaches


class FoldItem(NamedTuple):
    """One stored event as the fold takes it: where it was read, and either its event (a view or
    click, built from the fields the reader found) or its decoded record (anything else); and its
    signature, when it carries one, with the bytes it covers, the key expected and the verdict
    reached ahead, if it was tried (`consumers.verification`)."""

    topic: str
    partition: int
    offset: int
    position: str            # where it was read; "" means topic:partition:offset
    event: Event | None
    record: dict | None
    content: bytes | None    # a digest of the event's canonical content without its signature
    signed: Signature | None = None

    def where(self) -> str:
        return self.position or f"{self.topic}:{self.partition}:{self.offset}"


class FoldRejection(NamedTuple):
    """An event the fold quarantined. ``item`` is its index in the job, for the raw bytes the
    caller keeps; a parked refund rejected when its order arrives (``late``) is named by its own
    event id at the position of the order that rejected it, and its bytes are stored already."""

    item: int
    event_id: str
    reason: str
    detail: str
    late: bool


@dataclass
class FoldResult:
    rejections: list[FoldRejection]
    skipped: list[int]           # the items that were identical re-deliveries (not stored)
    tables: dict[str, pa.Table]  # entries, decisions, checkpoints, fold_state
    entries_posted: int


@dataclass
class LogFold:
    """One log's fold, and how many events it folded since its last snapshot."""

    fold: object
    since_snapshot: int = 0


StoredEvent = tuple[int, str, bytes]  # (offset, event id, the stored single-object message)


def rebuilt_fold(fold_factory: Callable, stored: Iterable[StoredEvent], log_name: str,
                 snapshot: bytes | None = None) -> LogFold:
    """A log's fold state, from its latest snapshot (if any) and the stored events after it (their
    entries are in the ledger already).

    The stored bytes are read as the consumer's decode step read them (unsigned views and clicks by
    the fixed-layout reader, the rest by ``decode_canonical``, so that the fold checks a signature
    from its record), and what was folded reads back the same.
    A stored event that cannot be read now (stored under rules that have since become stricter, or
    its bytes damaged on disk) never stops the rebuild: it is logged with its position and left
    out of the state, as a replay of the stored events leaves it out, and `refledger verify`
    reports it (check ``stored``).
    """
    fold = fold_factory()
    if snapshot is not None:
        restore_state(fold, decode_snapshot(snapshot))
    folded = 0
    for offset, event_id, avro in stored:
        folded += 1  # counted as the live fold counted it, for the next snapshot
        fields = read_traffic_fields(avro, CURRENT_FINGERPRINT) if type(avro) is bytes else None
        if fields is not None and fields[-1] is None:  # an unsigned view or click (a signed one: its record)
            kind, read_id, occurred_at, _, shop_id, visitor_id, referrer, merchant, placement, _ = fields
            fold.apply_event(traffic_event(kind, read_id, occurred_at, shop_id, visitor_id, referrer, merchant,
                                           placement), codec.content_digest(avro, None))
            continue
        try:
            record = codec.decode_canonical(avro)[0]
        except codec.CodecError as error:
            log.error("stored event at %s offset %d event %s can no longer be read (%s: %s): left out of the "
                      "fold's rebuilt state; `refledger verify` reports it", log_name, offset, event_id,
                      error.reason, error)
            continue
        fold.apply(record, codec.content_digest(avro, record.get("signature")))
    return LogFold(fold, folded)


def snapshot_rows(blob: bytes) -> dict[str, list[tuple]] | None:
    """The snapshot's rows, if this version can start a fold from them (its container and its
    layout); None for a snapshot another version wrote."""
    try:
        rows = decode_snapshot(blob)
    except SnapshotFileError:
        return None
    return rows if len(rows.get("fold", ())) == 1 and rows["fold"][0][0] == SNAPSHOT_FORMAT else None


def snapshot_loads(blob: bytes) -> bool:
    """Whether this version can start a fold from the snapshot."""
    return snapshot_rows(blob) is not None


# Events after which a log's chain head is recorded (SPEC §9 settlements, §9a closes).
CHECKPOINTED = {"settlement": ("settlement", "period_end"), "close": ("close", "closed_through")}


def _snapshot(rows: LedgerRows, log: LogFold, item: FoldItem, kind: str, at: int) -> str:
    """Snapshot a log's fold after ``item``; returns the snapshot's digest."""
    fold = log.fold
    blob = encode_snapshot(export_state(fold))
    snapshot_digest = digest(blob)
    rows.snapshot(item.topic, item.partition, item.offset, kind, fold.journal.seq, fold.chain_head, snapshot_digest,
                  blob)
    if kind != "close":  # a close's own checkpoint row carries its snapshot's digest
        rows.checkpoint(item.topic, item.partition, "", "snapshot", at, fold.journal.seq, fold.chain_head,
                        snapshot_digest)
    log.since_snapshot = 0
    return snapshot_digest


def fold_items(logs: dict, items: list[FoldItem], snapshot_every: int = SNAPSHOT_EVERY,
               verdicts=None) -> FoldResult:
    """Fold a job's items, each with its log's fold, and collect what they write. ``verdicts``:
    a ``consumers.verification.VerdictsInFold`` verifying the items' signatures meanwhile."""
    rejections: list[FoldRejection] = []
    skipped: list[int] = []
    rows = LedgerRows()
    last: dict[tuple[str, int], int] = {}
    waits_from = NEVER if verdicts is None else verdicts.waits_from
    for index, item in enumerate(items):
        if index >= waits_from:
            verdicts.settle(index)
            waits_from = verdicts.waits_from
        topic, partition = item.topic, item.partition
        log = logs[(topic, partition)]
        fold = log.fold
        log.since_snapshot += 1
        last[(topic, partition)] = index
        record = item.record
        closed_before = fold.closed_through
        if record is None:
            event = item.event
            outcome, kind, event_id = fold.apply_event(event, item.content, item.signed), event.type, event.event_id
        else:
            outcome, kind, event_id = fold.apply(record, item.content, item.signed), record["type"], record["event_id"]
        if outcome is NOTHING and kind not in CHECKPOINTED:
            continue  # most views and many clicks: nothing to write
        if outcome.skipped:
            skipped.append(index)
            continue
        if outcome.quarantine is not None:
            rejections.append(FoldRejection(index, event_id, outcome.quarantine,
                                            outcome.detail or outcome.quarantine, False))
        rows.add(topic, partition, item.offset, outcome)
        if kind in CHECKPOINTED and outcome.quarantine is None:
            payload, at = CHECKPOINTED[kind]
            moved = kind == "close" and fold.closed_through != closed_before
            snapshot_digest = _snapshot(rows, log, item, "close", record[payload][at]) if moved else None
            rows.checkpoint(topic, partition, event_id, kind, record[payload][at], fold.journal.seq,
                            fold.chain_head, snapshot_digest)
        for late_id, reason in outcome.late_quarantines:
            rejections.append(FoldRejection(index, late_id, reason,
                                            f"event {late_id}, folded earlier, rejected when {event_id} arrived",
                                            True))
    for key, index in last.items():
        log = logs[key]
        if log.since_snapshot >= snapshot_every:
            item = items[index]
            at = item.event.occurred_at if item.record is None else item.record["occurred_at"]
            _snapshot(rows, log, item, "periodic", at)
        rows.state(key[0], key[1], log.fold.state_size())
    return FoldResult(rejections, skipped, rows.tables(), rows.entry_count)


class FoldBackend(Protocol):
    """Where a batch processor's folds live and run."""

    def knows(self, topic: str, partition: int) -> bool:
        """Whether the log's fold is built."""

    def load(self, topic: str, partition: int, stored: list[StoredEvent], snapshot: bytes | None = None) -> None:
        """Build the log's fold from its latest snapshot (if any) and the stored events after it
        (before any job names the log)."""

    def submit(self, items: list[FoldItem]) -> object:
        """Start folding a job; returns a ticket for `result`."""

    def result(self, ticket: object) -> FoldResult:
        """The job's result, once folded (raises what the fold raised)."""

    def close(self) -> None:
        """Let go of the folds (and of any process holding them)."""


class InProcessFolds:
    """Folds in this process: a job is folded when it is submitted."""

    def __init__(self, fold_factory: Callable, snapshot_every: int = SNAPSHOT_EVERY):
        self.fold_factory = fold_factory
        self.snapshot_every = snapshot_every
        self.folds: dict[tuple[str, int], LogFold] = {}

    def knows(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self.folds

    def load(self, topic: str, partition: int, stored: list[StoredEvent], snapshot: bytes | None = None) -> None:
        self.folds[(topic, partition)] = rebuilt_fold(self.fold_factory, stored, f"{topic}:{partition}", snapshot)

    def submit(self, items: list[FoldItem]) -> FoldResult:
        return fold_items(self.folds, items, self.snapshot_every)

    def result(self, ticket: FoldResult) -> FoldResult:
        return ticket

    def close(self) -> None:
        self.folds.clear()


@contextmanager
def folding_collector():
    """For folding batch after batch in this process (`ingest`, `replay`): the collector's
    thresholds of `consume`, and a ``settle()`` to call after each batch that freezes what is
    alive (the folds' state, which only grows) out of later collections, as the fold process
    does after each job. On leaving, everything frozen goes back to the collector."""
    previous = gc.get_threshold()
    gc.set_threshold(*COLLECTOR_THRESHOLD)
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()
        gc.set_threshold(*previous)
