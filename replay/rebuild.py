"""Rebuild a ledger from history and compare it with the live one.

A source yields each log (topic, partition) as the ordered messages it held;
`rebuild` sends them through the same `LogProcessor` and `PartitionFold` as
`consume` into a scratch DuckDB file; `compare` reads both ledgers and says
where they part.

Sources:

* ``events``: the live ledger's own stored log: the `events` table plus the
  messages quarantined before the fold (their raw bytes are kept), merged by
  offset per partition. Duplicates skipped live are not stored and not needed:
  they changed nothing.
* ``kafka``: the topic from its first retained offset to its end offsets.
* an archive directory written by `refledger archive`.

Cross-partition conflicting duplicates (one event id, two contents, in two
partitions) are decided by which copy was read first; a rebuild reads the
partitions one after the other, so a ledger with such conflicts may differ
from its rebuild there, and `compare` will say so.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from consumers.batch import AVRO, JSON, LogProcessor, Message
from ledger.balances import balances
from schemas import codec

BATCH = 5000
ENTRY_ORDER = "ORDER BY topic, partition, seq"


class ReplayError(Exception):
    """The history or the live ledger cannot be read."""


# ----------------------------------------------------------------------------- sources

Logs = dict[tuple[str, int], Iterable[Message]]


def _kind(raw: bytes) -> str:
    return AVRO if raw[:2] == codec.MAGIC else JSON


def logs_from_events(con: duckdb.DuckDBPyConnection) -> Logs:
    """The stored log of every partition: folded events and pre-fold quarantine, by offset."""
    keys = con.execute(
        """SELECT DISTINCT topic, partition FROM events
           UNION SELECT DISTINCT topic, partition FROM quarantine WHERE stage = 'decode'
           ORDER BY 1, 2""").fetchall()
    return {(topic, partition): _stored_log(con, topic, partition) for topic, partition in keys}


def _stored_log(con, topic: str, partition: int) -> Iterator[Message]:
    cur = con.cursor()
    cur.execute(
        """SELECT "offset", avro, kafka_timestamp, NULL AS position FROM events
           WHERE topic = $1 AND partition = $2
           UNION ALL
           SELECT "offset", raw, NULL, position FROM quarantine
           WHERE topic = $1 AND partition = $2 AND stage = 'decode'
           ORDER BY 1""", [topic, partition])
    while rows := cur.fetchmany(BATCH):
        for offset, raw, timestamp, position in rows:
            raw = bytes(raw)
            yield Message(topic, partition, offset, raw, _kind(raw), timestamp, position or "")


def logs_from_archive(directory: str | Path, topic: str | None = None) -> Logs:
    from replay.archive import archive_partitions, read_archive

    directory = Path(directory)
    if not directory.is_dir():
        raise ReplayError(f"no archive directory {directory}")
    topics = [topic] if topic else sorted(
        d.name for d in directory.iterdir() if d.is_dir() and archive_partitions(directory, d.name))
    if not topics:
        raise ReplayError(f"no archived topic under {directory}")
    logs: Logs = {}
    for name in topics:
        for partition, messages in read_archive(directory, name).items():
            logs[(name, partition)] = messages
    return logs


def logs_from_kafka(bootstrap_servers: str, topic: str) -> Logs:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False,
                             max_poll_records=BATCH, fetch_max_bytes=64 * 1024 * 1024,
                             max_partition_fetch_bytes=8 * 1024 * 1024)
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        consumer.close()
        raise ReplayError(f"topic {topic!r} not found on {bootstrap_servers}")
    logs: Logs = {}
    try:
        for partition in sorted(partitions):
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            end = consumer.end_offsets([tp])[tp]
            messages = []
            while consumer.position(tp) < end:
                for records in consumer.poll(timeout_ms=1000).values():
                    messages.extend(Message(r.topic, r.partition, r.offset, r.value, AVRO, r.timestamp)
                                    for r in records if r.offset < end)
            logs[(topic, partition)] = messages
    finally:
        consumer.close()
    return logs


# ----------------------------------------------------------------------------- transforms

def until(logs: Logs, cutoff_ms: int) -> Logs:
    """Each log as it stood at `cutoff_ms`: messages appended at or before it.

    A message's time is its log timestamp (Kafka's); messages without one
    (ingested files) go by their event's occurred_at, or are kept when it
    cannot be read.
    """
    def cut(messages):
        for msg in messages:
            if _message_time(msg) <= cutoff_ms:
                yield msg
    return {key: cut(messages) for key, messages in logs.items()}


def _message_time(msg: Message) -> int:
    if msg.timestamp is not None and msg.timestamp >= 0:
        return msg.timestamp
    try:
        return _decode(msg)["occurred_at"]
    except codec.CodecError:
        return -1


def _decode(msg: Message) -> dict:
    return codec.decode(msg.value) if msg.kind == AVRO else codec.record_from_json(msg.value)


def with_agreements(logs: Logs, agreements: list[dict]) -> Logs:
    """The what-if log: the given agreement versions instead of the history's.

    Every agreement event of the history whose agreement id appears in
    `agreements` is left out, and the given ones open every partition's log,
    so each order and click is priced by them from the start.
    """
    replaced = {a["agreement"]["agreement_id"] for a in agreements}
    encoded = [codec.encode(a) for a in agreements]

    def swap(topic, partition, messages):
        for i, raw in enumerate(encoded):
            yield Message(topic, partition, -len(encoded) + i, raw, AVRO, None, f"what-if agreement {i + 1}")
        for msg in messages:
            try:
                record = _decode(msg)
            except codec.CodecError:
                yield msg
                continue
            if record["type"] == "agreement" and record["agreement"]["agreement_id"] in replaced:
                continue
            yield msg
    return {(t, p): swap(t, p, messages) for (t, p), messages in logs.items()}


def read_agreements(path: str | Path) -> list[dict]:
    """Agreement events from a JSON Lines file (SPEC §2 shape); anything else is an error."""
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = codec.record_from_json(line)
        except codec.CodecError as exc:
            raise ReplayError(f"{path}:{number}: {exc}") from exc
        if record["type"] != "agreement":
            raise ReplayError(f"{path}:{number}: a {record['type']} event; only agreements may be substituted")
        records.append(record)
    if not records:
        raise ReplayError(f"{path}: no agreement events")
    return records


# ----------------------------------------------------------------------------- rebuild

@dataclass
class RebuildSummary:
    logs: int = 0
    events_read: int = 0
    entries: int = 0
    seconds: float = 0.0


def rebuild(logs: Logs, db: str | Path, *, on_progress: Callable[[int], None] | None = None) -> RebuildSummary:
    """Fold the logs into a fresh ledger at `db` with the code `consume` uses."""
    import time

    from ledger.fold import PartitionFold
    from refledger.store import LedgerStore

    started = time.perf_counter()
    store = LedgerStore(db)
    processor = LogProcessor(store, PartitionFold, source="replay")
    summary = RebuildSummary()
    try:
        for key in sorted(logs):
            summary.logs += 1
            chunk = []
            for msg in logs[key]:
                chunk.append(msg)
                if len(chunk) >= BATCH:
                    summary.events_read += _commit(processor, chunk, summary)
                    chunk = []
                    if on_progress:
                        on_progress(summary.events_read)
            if chunk:
                summary.events_read += _commit(processor, chunk, summary)
    finally:
        store.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _commit(processor: LogProcessor, chunk: list[Message], summary: RebuildSummary) -> int:
    batch = processor.process(chunk)
    processor.commit(batch)
    summary.entries += batch.entries_posted
    return batch.events_read


# ----------------------------------------------------------------------------- compare

ENTRY_COLUMNS = ("topic", "partition", "seq", "entry_id", "txn_id", "event_id", "shop_id", "account",
                 "counterparty_shop_id", "currency", "amount", "subject", "role", "agreement_id",
                 "agreement_version", "model", "rate_bp", "click_event_id", "refund_id", "reason",
                 "prev_hash", "hash")


@dataclass
class Comparison:
    identical: bool = True
    heads: dict[str, dict] = field(default_factory=dict)          # "topic:partition" → {live, rebuilt}
    first_differences: list[dict] = field(default_factory=list)   # per partition: live entry, rebuilt entry
    balance_changes: list[dict] = field(default_factory=list)     # per (shop, currency, account): live, rebuilt

    def as_dict(self) -> dict:
        return {"identical": self.identical, "heads": self.heads,
                "first_differences": self.first_differences, "balance_changes": self.balance_changes}


def entries_of(con) -> dict[tuple[str, int], list[dict]]:
    cols = ", ".join(f'"{c}"' for c in ENTRY_COLUMNS)
    out: dict[tuple[str, int], list[dict]] = {}
    for row in con.execute(f"SELECT {cols} FROM entries {ENTRY_ORDER}").fetchall():
        entry = dict(zip(ENTRY_COLUMNS, row))
        out.setdefault((entry["topic"], entry["partition"]), []).append(entry)
    return out


def balance_changes(live: list[dict], rebuilt: list[dict]) -> list[dict]:
    def flat(rows):
        out = {}
        for row in rows:
            for account, value in row.items():
                if account not in ("shop_id", "currency"):
                    out[(row["shop_id"], row["currency"], account)] = value
        return out
    a, b = flat(balances(live)), flat(balances(rebuilt))
    return [{"shop_id": s, "currency": c, "account": acct, "live": a.get(k, 0), "rebuilt": b.get(k, 0),
             "change": b.get(k, 0) - a.get(k, 0)}
            for k in sorted(set(a) | set(b)) for s, c, acct in [k] if a.get(k, 0) != b.get(k, 0)]


def compare(live_con, rebuilt_con) -> Comparison:
    live, rebuilt = entries_of(live_con), entries_of(rebuilt_con)
    result = Comparison()
    for key in sorted(set(live) | set(rebuilt)):
        ours, theirs = live.get(key, []), rebuilt.get(key, [])
        name = f"{key[0]}:{key[1]}"
        result.heads[name] = {"live": ours[-1]["hash"] if ours else None,
                              "rebuilt": theirs[-1]["hash"] if theirs else None,
                              "live_entries": len(ours), "rebuilt_entries": len(theirs)}
        for i in range(max(len(ours), len(theirs))):
            a = ours[i] if i < len(ours) else None
            b = theirs[i] if i < len(theirs) else None
            if a != b:
                result.identical = False
                result.first_differences.append({"log": name, "seq": i, "live": a, "rebuilt": b})
                break
    result.balance_changes = balance_changes([e for v in live.values() for e in v],
                                             [e for v in rebuilt.values() for e in v])
    if result.balance_changes:
        result.identical = False
    return result


def open_live(db: str | Path) -> duckdb.DuckDBPyConnection:
    if not Path(db).exists():
        raise ReplayError(f"no ledger at {db}")
    try:
        return duckdb.connect(str(db), read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise ReplayError(f"ledger {db} is held by a running consumer; stop it (SIGTERM) or replay a copy "
                              f"of the file, e.g. taken after `refledger consume --until-idle` ends") from exc
        raise ReplayError(f"cannot open ledger {db}: {exc}") from exc


class Scratch:
    """A temporary directory for the rebuilt ledger, removed afterwards unless kept."""

    def __init__(self, keep: str | Path | None = None):
        self.keep = Path(keep) if keep else None
        self.dir = None

    def __enter__(self) -> Path:
        if self.keep:
            if self.keep.exists():
                raise ReplayError(f"{self.keep} exists; the rebuilt ledger goes to a new file")
            return self.keep
        self.dir = tempfile.mkdtemp(prefix="refledger-replay-")
        return Path(self.dir) / "rebuilt.duckdb"

    def __exit__(self, *exc):
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)
