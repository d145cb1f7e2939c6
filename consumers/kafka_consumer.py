"""A consumer group member that folds a topic into a DuckDB ledger, exactly once.

The commit protocol, per poll:

1. On (re)assignment, seek every assigned partition to the next offset stored
   in DuckDB (or to the beginning when the ledger has none for it). Kafka's
   committed offsets are never used to decide where to read.
2. Poll a batch and turn it into one `BatchWrite` (decode, dedup, fold).
3. Commit the batch to DuckDB in one transaction: events, quarantine rows,
   entries, decisions, next positions and the batch counters. The commit
   runs on a writer thread (DuckDB works outside the GIL) while the next
   batches are polled and folded; at most three commits are in flight, in
   order, all awaited before any rebalance, when a poll comes back empty and
   before exit.
4. Only then commit the same offsets to Kafka, so lag tools see progress.
   A failure here is harmless: DuckDB already holds the truth.
5. On SIGINT/SIGTERM, finish the current batch, commit it, and exit 0.

A crash before step 3 loses only work that will be read again; a crash
after it re-reads nothing, because step 1 starts from DuckDB.

When several consumers write one ledger (a DuckLake, `store.lake`), step 1
first claims the assigned partitions in the ledger and rebuilds their folds
from it (another member may have written them meanwhile). A consumer that
lost a partition without knowing it (paused past its session timeout while
another member took over) has its next batch refused by the ledger
(`FencedOut`); that batch and every later one in flight are not written, the
lost partitions are paused until the group assigns them again, and the
others are read again from the ledger's positions.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from typing import Callable

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from refledger.consumers.batch import MAX_IN_FLIGHT, MAX_POLL_RECORDS, BatchCounts, LogProcessor, NotWritten
from refledger.consumers.folding import COLLECTOR_THRESHOLD
from refledger.consumers.heap import keep_large_blocks_apart
from refledger.consumers.kafka_records import BatchReadingConsumer
from refledger.schemas.kafka_client import KafkaLogin, connect
from refledger.schemas.messages import DEFAULT_GROUP, DEFAULT_TOPIC
from refledger.store.lake import FencedOut

log = logging.getLogger("refledger.consume")

# Fetch sizing, shared with the benchmark's bare loop so both read alike.
FETCH_CONFIG = {"fetch_max_bytes": 64 * 1024 * 1024, "max_partition_fetch_bytes": 8 * 1024 * 1024}
TOPIC_WAIT_S = 10.0  # how long a new member waits for the topic's partitions before it joins anyway


@dataclass
class ConsumeSummary(BatchCounts):
    seconds: float = 0.0
    stopped_by: str = "idle"
    assigned: set = field(default_factory=set)

    def as_dict(self) -> dict:
        rate = self.events_read / self.seconds if self.seconds > 0 else 0.0
        return {
            **self.counts(),
            "seconds": round(self.seconds, 3),
            "events_per_second": int(rate),
            "stopped_by": self.stopped_by,
        }


class _SeekToStoredPositions(ConsumerRebalanceListener):
    def __init__(self, member: "LedgerConsumer"):
        self.member = member

    # Listeners run on kafka-python's IO thread, which must not call blocking
    # consumer APIs: they only wait for the ledger; Kafka hears of it later.
    # A batch the ledger could not take (a full disk) is the poll loop's to
    # report: raised here, it would only come back as kafka-python's
    # "rebalance callback" error, hiding what went wrong.

    def on_partitions_revoked(self, revoked):
        # the batch in flight is in DuckDB before its partitions can move
        self.member.await_ledger(failed_ok=True)
        self.member.assigned.difference_update(revoked)
        self.member.taking_over.difference_update(revoked)

    def on_partitions_assigned(self, assigned):
        self.member.await_ledger(failed_ok=True)
        self.member.hand_over(assigned)


class LedgerConsumer:
    """One member of a consumer group, folding into a shared `LogProcessor`."""

    def __init__(
        self,
        bootstrap_servers: str,
        processor: LogProcessor,
        *,
        topic: str = DEFAULT_TOPIC,
        group: str = DEFAULT_GROUP,
        until_idle: float | None = None,
        max_records: int = MAX_POLL_RECORDS,
        lock: threading.Lock | None = None,
        on_batch: Callable[[ConsumeSummary], None] | None = None,
        client_id: str = "refledger-consume",
        instance_id: str | None = None,
        login: KafkaLogin | None = None,
    ):
        self.processor = processor
        self.topic = topic
        self.until_idle = until_idle
        self.max_records = max_records
        self.lock = lock or threading.Lock()
        self.on_batch = on_batch
        self.assigned: set[TopicPartition] = set()
        self.summary = ConsumeSummary()
        self._stop = threading.Event()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")
        self._pending: deque[tuple[Future, object]] = deque()  # commits in flight, oldest first
        self._pending_lock = threading.Lock()
        self._committed: list = []  # in DuckDB, not yet told to Kafka
        self._refused: FencedOut | None = None  # the ledger refused a batch: none after it is written
        self._dropped: list = []  # batches not written since
        self.taking_over: set[TopicPartition] = set()  # assigned, paused until claimed in a shared ledger
        self._unchecked_batches = 0  # committed since the last idle checkpoint
        self.consumer = connect(
            BatchReadingConsumer, bootstrap_servers, login,  # each fetched batch's records read in one call
            group_id=group,
            group_instance_id=instance_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_records,
            **FETCH_CONFIG,
            fetch_min_bytes=1,
            fetch_max_wait_ms=200,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
            max_poll_interval_ms=300_000,
        )
        # A topic created a moment ago may not be in the client's metadata yet; joining the group then
        # would get no partitions until the next metadata refresh (minutes). Learn its partitions first,
        # once subscribed: asked before, the metadata of every topic comes first, the group is formed on
        # it, and the topic's own metadata arriving next makes the member rejoin at once, a rebalance that
        # kafka-python does not always come back from (tests/test_group_join.py).
        self.consumer.subscribe([topic], listener=_SeekToStoredPositions(self))
        deadline = time.monotonic() + TOPIC_WAIT_S
        while not self.consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self, *_args) -> None:
        """Ask the loop to finish its batch, commit, and return."""
        self._stop.set()

    def hand_over(self, assigned) -> None:
        """Partitions the group gave this member (on kafka-python's IO thread). A ledger of this
        process alone: read on from its positions. A shared one: paused until the main thread has
        claimed them (`take_over`), since a claim may wait for the catalog and the IO thread must go
        on heartbeating meanwhile."""
        self.assigned.update(assigned)
        if self.processor.store.single_writer:
            self.seek_assigned(assigned)
        elif assigned:
            self.consumer.pause(*assigned)
            with self._pending_lock:
                self.taking_over.update(assigned)

    def take_over(self) -> None:
        """Claim the partitions handed over in the ledger, rebuild their folds from it, and read on from
        its positions (main thread)."""
        self.await_ledger()  # the batch in hand during the rebalance, submitted since: in the ledger (or not) first
        with self._pending_lock:
            claimed, self.taking_over = set(self.taking_over), set()
            self._refused, self._dropped = None, []
        if not claimed:
            return
        with self.lock:
            self.processor.assign((tp.topic, tp.partition) for tp in claimed)
        self.seek_assigned(claimed)
        self.consumer.resume(*claimed)

    def seek_assigned(self, partitions) -> None:
        for tp in partitions:
            stored = self.processor.position(tp.topic, tp.partition)
            if stored is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, stored)

    def run(self) -> ConsumeSummary:
        started = time.monotonic()
        last_event = started
        last_report = started
        try:
            while not self._stop.is_set():
                if self.taking_over:
                    self.take_over()
                polled = self.consumer.poll(timeout_ms=300, max_records=self.max_records)
                if not polled:
                    busy = bool(self._pending)
                    self.finish_pending()  # nothing to fold meanwhile: settle the batch in flight now
                    if busy:  # time spent finishing work is not time without events
                        last_event = time.monotonic()
                    self._checkpoint_when_idle()
                    if (self.until_idle is not None and time.monotonic() - last_event >= self.until_idle
                            and not self.lag()):  # caught up: nothing waits on the broker either
                        self.summary.stopped_by = "idle"
                        break
                    continue
                self._fold_and_submit(polled)
                now = last_event = time.monotonic()  # idle time counts from when the work was handed on
                if now - last_report >= 5:
                    self._report(now - started)
                    last_report = now
            else:
                self.summary.stopped_by = "signal"
            self.finish_pending()
        finally:
            self.summary.seconds = time.monotonic() - started
            self._writer.shutdown(wait=True)
            self.consumer.close(autocommit=False)
        return self.summary

    def _fold_and_submit(self, polled) -> None:
        with self.lock:
            batch = self.processor.process(chain.from_iterable(polled.values()), kafka_records=True)
        self.finish_pending(keep=MAX_IN_FLIGHT - 1)
        self._pending.append((self._writer.submit(self._commit, batch), batch))
        self._unchecked_batches += 1

    def _checkpoint_when_idle(self) -> None:
        """Nothing came: a good moment to fold DuckDB's write-ahead log into the file (on the
        writer thread, so the loop keeps polling; a batch arriving meanwhile queues behind it)."""
        if self._unchecked_batches:
            self._unchecked_batches = 0
            self._writer.submit(self.processor.store.checkpoint)

    def _commit(self, batch) -> int:
        """On the writer thread: the batch into the ledger (none read after one of the same logs that
        could not be written, until `_recover` has read those logs again: `LogProcessor.commit`)."""
        try:
            return self.processor.commit(batch)
        except FencedOut as exc:
            self._refused = exc
            raise

    def await_ledger(self, keep: int = 0, failed_ok: bool = False) -> None:
        """Wait until all but ``keep`` batches in flight are in DuckDB, oldest first.
        Raises what a commit raised; with ``failed_ok``, stops at a failed commit, which stays
        first in line for the poll loop to raise. A batch a shared ledger refused (another member
        claimed one of its partitions) is no failure: it is set aside (see `_recover`)."""
        with self._pending_lock:
            while len(self._pending) > keep:
                future, batch = self._pending[0]
                failure = future.exception()
                if isinstance(failure, FencedOut) or isinstance(failure, NotWritten) and failure.recoverable:
                    self._dropped.append(batch)
                elif failure is not None:
                    if failed_ok:
                        return
                    raise failure
                else:
                    self._committed.append(batch)
                self._pending.popleft()

    def _recover(self) -> None:
        """After the ledger refused a batch (main thread): the partitions another member claimed
        are paused until the group assigns them again; the others are read again from the
        ledger's positions, with their folds rebuilt from it."""
        with self._pending_lock:
            dropped, self._dropped = self._dropped, []
            refused, self._refused = self._refused, None
        if not dropped:
            return
        mine = {key for batch in dropped for key in batch.readings}
        with self.lock:
            logs = self.processor.logs_to_reread() & mine
            self.processor.reread(logs)
        lost = (set(refused.logs) & logs) if refused is not None else set()
        log.warning("%s; %d batch(es) not written: %s read again from the ledger",
                    refused or "a batch before them was not written", len(dropped),
                    ", ".join(f"{t}:{p}" for t, p in sorted(logs - lost)) or "nothing")
        for tp in list(self.assigned):
            key = (tp.topic, tp.partition)
            if key in lost:
                self.consumer.pause(tp)
            elif key in logs:
                self.seek_assigned([tp])

    def finish_pending(self, keep: int = 0) -> None:
        """Wait for the batches in flight (all but ``keep``) to be in DuckDB, then tell Kafka
        (main thread only)."""
        self.await_ledger(keep)
        if self._dropped:
            # every batch read before the refusal let go first: their logs are read again only once
            self.await_ledger()
            self._recover()
        committed, self._committed = self._committed, []
        for batch in committed:
            self.summary.add(batch.write)
        offsets = {
            TopicPartition(topic, partition): OffsetAndMetadata(next_offset, "", -1)
            for batch in committed
            for (topic, partition), next_offset in batch.positions.items()
            if TopicPartition(topic, partition) in self.assigned
        }
        if offsets:
            try:
                self.consumer.commit(offsets)
            except KafkaError as exc:  # DuckDB holds the position; Kafka's copy is advisory
                log.warning("Kafka offset commit failed after the ledger committed: %s", exc)
        if committed and self.on_batch:
            self.on_batch(self.summary)

    def lag(self) -> int | None:
        total = 0
        for tp in list(self.assigned):
            high = self.consumer.highwater(tp)
            if high is None:
                return None
            total += max(0, high - self.consumer.position(tp))
        return total

    def _report(self, elapsed: float) -> None:
        rate = self.summary.events_read / elapsed if elapsed > 0 else 0
        log.info("%d events read, %.0f events/s, lag %s", self.summary.events_read, rate, self.lag())


def install_signal_handlers(members) -> None:
    """SIGINT/SIGTERM: every member finishes its batch, commits and returns."""

    def handler(signum, _frame):
        log.info("signal %d: finishing the current batch", signum)
        for member in members:
            member.stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def consume(
    bootstrap_servers: str,
    processor: LogProcessor,
    *,
    topic: str = DEFAULT_TOPIC,
    group: str = DEFAULT_GROUP,
    until_idle: float | None = None,
    members: int = 1,
    max_records: int | None = None,
    handle_signals: bool = True,
    instance_id: str | None = None,
    on_batch: Callable[[ConsumeSummary], None] | None = None,
    login: KafkaLogin | None = None,
) -> ConsumeSummary:
    """Run `members` group members in this process, sharing one ledger. ``max_records``: records per
    poll and batch (default `MAX_POLL_RECORDS`)."""
    if max_records is None:
        max_records = MAX_POLL_RECORDS
    # Three threads share the GIL here: the poll loop, kafka-python's IO thread
    # and the ledger writer. A shorter switch interval hands the GIL back to the
    # writer and the IO thread within a millisecond instead of five, which
    # keeps DuckDB and the fetches going while the loop folds.
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    previous_threshold = gc.get_threshold()
    gc.set_threshold(*COLLECTOR_THRESHOLD)
    keep_large_blocks_apart()  # for the life of the process: no batch's fetches and jobs grow the heap (consumers.heap)
    try:
        return _consume(bootstrap_servers, processor, topic=topic, group=group, until_idle=until_idle,
                        members=members, max_records=max_records, handle_signals=handle_signals,
                        instance_id=instance_id, on_batch=on_batch, login=login)
    finally:
        sys.setswitchinterval(previous_interval)
        gc.set_threshold(*previous_threshold)


def _consume(bootstrap_servers, processor, *, topic, group, until_idle, members, max_records, handle_signals,
             instance_id, on_batch, login) -> ConsumeSummary:
    lock = threading.Lock()
    group_members = [
        LedgerConsumer(bootstrap_servers, processor, topic=topic, group=group, until_idle=until_idle,
                       max_records=max_records, lock=lock, on_batch=on_batch,
                       client_id=f"refledger-consume-{i}",
                       instance_id=f"{instance_id}-{i}" if instance_id else None, login=login)
        for i in range(members)
    ]
    if handle_signals:
        install_signal_handlers(group_members)
    if members == 1:
        return group_members[0].run()
    summaries: list[ConsumeSummary] = []
    failures: list[BaseException] = []

    def run(member: LedgerConsumer) -> None:
        try:
            summaries.append(member.run())
        except BaseException as exc:  # the members stop with it, and `consume` raises it
            failures.append(exc)
            for other in group_members:
                other.stop()

    threads = [threading.Thread(target=run, args=(m,)) for m in group_members]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:  # the failure itself, rather than a member's batch let go behind it
        raise next((f for f in failures if not isinstance(f, NotWritten)), failures[0])
    total = ConsumeSummary(stopped_by=summaries[0].stopped_by if summaries else "idle")
    for s in summaries:
        total.merge(s)
        total.seconds = max(total.seconds, s.seconds)
    return total
