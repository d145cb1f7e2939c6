"""Rebuild a ledger from its history into a scratch ledger and compare it with the live one.

    live ledger ──copy as of its last committed batch──▶ live copy       (replay.snapshot)
    history: Kafka | archive | stored events ──▶ LogReads             (replay.history)
        ──▶ [--until: each log as it stood at T]                       (history.until_prefix)
        ──▶ [--agreements: what-if versions replaced or added]         (replay.whatif)
        ──▶ LogProcessor + signed_fold(), the code `consume` runs ──▶ rebuilt ledger
    live copy × rebuilt ──▶ Comparison: entries, chain heads, balances,
                            positions, quarantine                      (replay.compare)

Both scratch files live in a temporary directory removed afterwards (the
rebuilt ledger can be kept with `keep`). The live ledger is only ever
opened read-only, or read through a running consumer's socket.

Topic and partition numbers are the source's own, so entries, entry ids and
chain heads of the two ledgers can be compared row by row. Each log is read
up to the offset the live ledger had stored (see `replay.history`).

Modes and what they promise
---------------------------
* compare (default): identical entries (every column but `batch_id`), chain
  heads, balances, positions and quarantine → `identical`.
* until: the log as it stood at a time (see `history.until_prefix`); the
  rebuilt ledger's balances are the balances as of then, and its entries
  must equal the live entries caused by the same log prefix.
* what-if: the log with agreement versions replaced or added (see
  `replay.whatif`); the balance changes against the live ledger are the
  answer, nothing is expected to be identical.
* from a snapshot (`from_snapshot`): each log's fold starts from the live
  ledger's latest snapshot whose bytes match its checkpoint, and only the
  history after it is folded, exactly as a restarted consumer does; the
  entries, chain heads, quarantine and positions from there on must equal
  the live ledger's (SPEC §12.8). A log without a snapshot is folded from
  its start.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

import duckdb

from refledger.consumers.batch import MAX_IN_FLIGHT, MAX_POLL_RECORDS, BatchCounts, LogProcessor
from refledger.consumers.folding import folding_collector
from refledger.consumers.ingest import INGEST_TOPIC
from refledger.replay.compare import Comparison, compare
from refledger.replay.history import (
    LogRead, ReplayError, archive_history, archive_topics, kafka_history, stored_history, until_prefix)
from refledger.replay.snapshot import SnapshotInfo, first_offsets, take_snapshot
from refledger.schemas.kafka_client import KafkaLogin
from refledger.replay.whatif import WhatIf, read_agreements
from refledger.store.lake import is_lake

EVENTS, KAFKA = "events", "kafka"
BATCH_SIZE = MAX_POLL_RECORDS  # the batches `consume` folds and writes (20,000: what a batch costs is paid once)
# A history at least this long (messages up to the live ledger's positions) is folded in a child
# process while the next batch is read, as `consume` folds; a shorter one in this process, where
# starting a process (half a second) would cost more than it saves.
FOLD_PROCESS_FROM = 100_000


@dataclass(frozen=True)
class ReplayReport:
    """What a replay read, folded and found."""

    ledger: str
    source: str                              # "events", "kafka" or the archive directory
    topics: tuple[str, ...]
    snapshot: SnapshotInfo
    until_ms: int | None
    what_if: tuple[dict, ...]                # one per what-if agreement: where it went
    what_if_quarantined: tuple[dict, ...]    # what-if events the fold quarantined
    counts: BatchCounts                      # what the rebuild read and did, as `consume` counts it
    positions: tuple[tuple[str, int, int], ...]   # next offset per log the rebuild reached
    fold_seconds: float
    seconds: float
    comparison: Comparison
    balances: tuple[dict, ...]               # the rebuilt ledger's balances (SPEC §11 shape)
    kept: str | None = None
    started_from: tuple[tuple[str, int, int], ...] = ()  # (topic, partition, offset) of each snapshot started from

    @property
    def mode(self) -> str:
        return "what-if" if self.what_if else "until" if self.until_ms is not None else "compare"

    @property
    def identical(self) -> bool:
        return self.comparison.identical

    @property
    def exit_code(self) -> int:
        """0 identical (or a what-if, which answers a question rather than checks), 1 different."""
        return 0 if self.mode == "what-if" or self.identical else 1

    @property
    def events_per_second(self) -> int:
        return int(self.counts.events_read / self.fold_seconds) if self.fold_seconds > 0 else 0

    def as_dict(self) -> dict:
        from refledger.schemas import codec

        return {
            "ledger": self.ledger, "mode": self.mode, "source": self.source, "topics": list(self.topics),
            "until": codec.format_time(self.until_ms) if self.until_ms is not None else None,
            "identical": self.identical,
            "snapshot": {**asdict(self.snapshot), "positions": [list(p) for p in self.snapshot.positions],
                         "seconds": round(self.snapshot.seconds, 3)},
            **asdict(self.counts),
            "positions": [list(p) for p in self.positions],
            "fold_seconds": round(self.fold_seconds, 3), "seconds": round(self.seconds, 3),
            "events_per_second": self.events_per_second,
            "what_if": list(self.what_if), "what_if_quarantined": list(self.what_if_quarantined),
            "comparison": self.comparison.as_dict(),
            "balances": list(self.balances),
            "kept": self.kept,
            "started_from_snapshots": [list(s) for s in self.started_from],
        }


def parse_until(text: str) -> int:
    """Epoch milliseconds of --until: ISO 8601 (a time without offset is UTC), a date (its 00:00 UTC),
    or epoch milliseconds."""
    text = text.strip()
    if re.fullmatch(r"\d{10,}", text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReplayError(f"--until: not an ISO 8601 time: {text!r} (e.g. 2026-11-15T00:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def rebuild(db: str | Path, source: str = EVENTS, *, bootstrap_servers: str | None = None,
            topic: str | None = None, until_ms: int | None = None, agreements: str | Path | None = None,
            keep: str | Path | None = None, batch_size: int = BATCH_SIZE,
            on_progress: Callable[[int], None] | None = None, wait: float = 30.0,
            from_snapshot: bool = False, login: KafkaLogin | None = None) -> ReplayReport:
    """Rebuild the ledger at `db` from `source` into a scratch ledger and compare.

    `source`: "events" (the ledger's stored log), "kafka" (needs
    `bootstrap_servers`, and `login` for a broker that asks) or an archive directory. Raises ReplayError when the
    history or the ledger cannot be read; differences are in the report.
    """
    started = time.monotonic()
    what_if_agreements = read_agreements(agreements) if agreements is not None else None
    keep_path = _check_keep(db, keep)
    with tempfile.TemporaryDirectory(prefix="refledger-replay-") as scratch:
        con = duckdb.connect(str(Path(scratch) / "live-copy.duckdb"))
        try:
            snapshot = take_snapshot(db, con, with_values=source == EVENTS, wait=wait)
            topics, reads = _history(con, snapshot, source, bootstrap_servers, topic, login)
            starts = _fold_snapshots(db, wait) if from_snapshot else {}
            if starts:
                reads = (r for r in reads if r.message.offset > starts.get((r.message.topic, r.message.partition),
                                                                             (-1,))[0])
            if until_ms is not None:
                reads = until_prefix(reads, until_ms)
            what_if = None
            if what_if_agreements is not None:
                what_if = WhatIf(what_if_agreements, _stored_agreements(con))
                reads = what_if.apply(reads)
            rebuilt = keep_path or Path(scratch) / "rebuilt.duckdb"
            fold_started = time.monotonic()
            counts, positions = fold_history(reads, rebuilt, batch_size=batch_size, on_progress=on_progress,
                                             starts={log: state for log, (_o, _n, state) in starts.items()},
                                             fold_process=_long(snapshot), keep_events=keep_path is not None)
            fold_seconds = time.monotonic() - fold_started
            balances, quarantined = _read_rebuilt(rebuilt, what_if.positions() if what_if else set())
            comparison = compare(con, rebuilt, topics, cut=until_ms is not None,
                                 start={log: (offset, entries) for log, (offset, entries, _s) in starts.items()})
        except duckdb.Error as exc:
            raise ReplayError(f"replay failed in its scratch ledger: {exc}") from exc
        finally:
            con.close()
    return ReplayReport(
        ledger=str(db), source=source, topics=tuple(topics), snapshot=snapshot, until_ms=until_ms,
        what_if=tuple(u.as_dict() for u in what_if.uses) if what_if else (),
        what_if_quarantined=quarantined, counts=counts, positions=positions, fold_seconds=fold_seconds,
        seconds=time.monotonic() - started, comparison=comparison, balances=balances,
        kept=str(keep_path) if keep_path else None,
        started_from=tuple((t, p, offset) for (t, p), (offset, _n, _s) in sorted(starts.items())))


def fold_history(reads: Iterable[LogRead], path: str | Path, *, batch_size: int = BATCH_SIZE,
                 on_progress: Callable[[int], None] | None = None, starts: dict | None = None,
                 fold_process: bool = False, keep_events: bool = True
                 ) -> tuple[BatchCounts, tuple[tuple[str, int, int], ...]]:
    """Fold the reads into a new ledger at `path` with `consume`'s batch code, one transaction per batch;
    ``starts``: per log, a snapshot to start that log's fold from; ``fold_process``: fold in a child
    process, as `consume` does, while this one reads the next batch and writes the last (the same
    code folds either way, so the ledger is the same); ``keep_events`` False: the new ledger stores no
    copy of the events (a scratch rebuild: only its entries, quarantine and positions are compared;
    3–4 % faster on 1M events).

    Returns the counters (as `consume` and `ingest` report them) and the next offset reached per log."""
    from refledger.consumers.fold_worker import FoldWorkerError
    from refledger.consumers.verification import signed_fold
    from refledger.store.ledger_file import LedgerStore, StoreError

    try:
        store = LedgerStore(path, keeps_events=keep_events)
    except StoreError as exc:
        raise ReplayError(str(exc)) from exc
    counts = BatchCounts()
    processor = None
    try:
        processor = LogProcessor(store, signed_fold, source="replay", fold_worker=fold_process)
        for (topic, partition), state in (starts or {}).items():
            processor.folds.load(topic, partition, [], state)

        def written(commit: Future, batch) -> None:
            commit.result()
            counts.add(batch.write)
            if on_progress:
                on_progress(counts.events_read)

        # With a fold process, as in `consume`: a writer thread takes each batch's answer from it and
        # writes the batch, while this thread reads the next one and hands it on; two batches in flight
        # behind the one read, as `consume` keeps (one in flight: 28.9k–30.9k events/s against 33.4k–34.3k).
        with folding_collector() as settle, ThreadPoolExecutor(1, thread_name_prefix="replay-writer") as writer:
            in_flight: deque[tuple[Future, object]] = deque()
            for chunk in _chunks((read.message for read in reads), batch_size):
                batch = processor.process(chunk)
                in_flight.append((writer.submit(processor.commit, batch), batch))
                while len(in_flight) > (MAX_IN_FLIGHT - 1 if fold_process else 0):
                    written(*in_flight.popleft())
                if not fold_process:
                    settle()
            while in_flight:
                written(*in_flight.popleft())
        positions = tuple((t, p, o) for (t, p), o in sorted(processor.positions.items()))
    except (StoreError, FoldWorkerError) as exc:
        raise ReplayError(str(exc)) from exc
    finally:
        if processor is not None:
            processor.close()
        store.close()
    return counts, positions


def _fold_snapshots(db, wait: float) -> dict[tuple[str, int], tuple[int, int, bytes]]:
    """Per log, the live ledger's latest sound snapshot: (offset, entries, state). A log whose latest
    snapshot this version cannot read (written by another version) is folded from its start, as a
    restarted consumer would."""
    from refledger.consumers.folding import snapshot_loads
    from refledger.store.queries import latest_snapshots
    from refledger.store.readside import ReadError, query

    try:
        rows = query(db, latest_snapshots, wait=wait)
    except ReadError as exc:
        raise ReplayError(str(exc)) from exc
    states = {(r["topic"], r["partition"]): (r["offset"], r["entries"], bytes.fromhex(r["state"])) for r in rows}
    return {log: start for log, start in states.items() if snapshot_loads(start[2])}


def _long(snapshot: SnapshotInfo) -> bool:
    return sum(offset for _t, _p, offset in snapshot.positions) >= FOLD_PROCESS_FROM


def _chunks(messages: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for msg in messages:
        chunk.append(msg)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _check_keep(db, keep) -> Path | None:
    if keep is None:
        return None
    keep = Path(keep)
    if keep.exists():
        raise ReplayError(f"{keep} exists; the rebuilt ledger is kept in a new file")
    if not is_lake(db) and keep.resolve() == Path(db).resolve():
        raise ReplayError("the rebuilt ledger cannot be kept in the live ledger's file")
    return keep


def _history(con, snapshot: SnapshotInfo, source: str, bootstrap_servers: str | None,
             topic: str | None, login: KafkaLogin | None) -> tuple[list[str], Iterator[LogRead]]:
    """The topics a replay from `source` covers, and their log reads."""
    upto = snapshot.upto()
    if source == EVENTS:
        topics = [t for t in snapshot.topics() if topic is None or t == topic]
        if topic is not None and not topics:
            raise ReplayError(f"the ledger holds no log of topic {topic!r}")
        return topics, stored_history(con, topics) if topics else iter(())
    first = first_offsets(con)
    if source == KAFKA:
        if not bootstrap_servers:
            raise ReplayError("--source kafka needs --bootstrap-servers (or $KAFKA_BOOTSTRAP_SERVERS)")
        name = topic or _ledger_topic(snapshot.topics(), "Kafka")
        return [name], kafka_history(bootstrap_servers, name, upto, first, login=login)
    if not Path(source).is_dir():
        raise ReplayError(f"--source is 'events', 'kafka' or an archive directory; {source} is none of these")
    found = archive_topics(source, topic)
    if len(found) > 1:
        found = [(root, name) for root, name in found if name in snapshot.topics()]
    if len(found) != 1:
        raise ReplayError(f"{source} holds archives of several topics; name one with --topic")
    root, name = found[0]
    return [name], archive_history(root, name, upto, first)


def _ledger_topic(topics: list[str], where: str) -> str:
    candidates = [t for t in topics if t != INGEST_TOPIC]
    if len(candidates) != 1:
        held = ", ".join(candidates) or "none"
        raise ReplayError(f"the ledger holds {len(candidates)} {where} topics ({held}); name one with --topic")
    return candidates[0]


def _stored_agreements(con) -> list[dict]:
    from refledger.schemas import codec

    rows = con.execute("SELECT DISTINCT avro FROM live_events WHERE type = 'agreement'").fetchall()
    return [codec.decode(avro) for (avro,) in rows]


def _read_rebuilt(path: Path, what_if_positions: set[str]) -> tuple[tuple[dict, ...], tuple[dict, ...]]:
    """The rebuilt ledger's balances, and the what-if events its fold quarantined."""
    from refledger.store.queries import balances

    rebuilt = duckdb.connect(str(path), read_only=True)
    try:
        rows = balances(rebuilt.cursor())
        quarantined = rebuilt.execute(
            """SELECT position, event_id, reason, detail, topic, partition FROM quarantine
               WHERE list_contains(?, position) ORDER BY position, topic, partition""",
            [sorted(what_if_positions)]).fetchall()
    finally:
        rebuilt.close()
    seen: dict[tuple[str, str], dict] = {}
    for position, event_id, reason, detail, _topic, _partition in quarantined:
        row = seen.setdefault((position, reason), {"position": position, "event_id": event_id, "reason": reason,
                                                   "detail": detail, "logs": 0})
        row["logs"] += 1
    return tuple(rows), tuple(seen.values())
