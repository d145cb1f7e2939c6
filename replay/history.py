"""Where a replay reads the log from: Kafka, an archive, or the ledger's stored events.

Every source yields `LogRead`s: a `consumers.batch.Message` exactly as the
batch processor would have received it live (same topic, partition, offset
and bytes) and the message's log time, for `--until`. Partitions are read
one after the other in ascending order, each in offset order; the stored
events come in the order the live ledger committed them (see
`stored_history`).

Each source stops a partition at `upto[(topic, partition)]`, the next offset
the live ledger had stored when it was copied, so the rebuilt ledger folds
exactly the log the live one says it folded. Partitions the live ledger has
never read are read to their end.

A log's time
------------
Kafka appends to a partition in offset order and stamps every record; a
record cannot be appended before it was created, so the first record
stamped after T marks where the log ended at T. `until_prefix` keeps, per
partition, the messages before that record: the longest prefix stamped at
or before T. Messages without a Kafka timestamp (files folded by
`refledger ingest`) go by their event's `occurred_at`; messages with no
readable time at all (undecodable lines) never end a prefix.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from refledger.schemas.kafka_client import KafkaLogin
from refledger.schemas.messages import AVRO, JSON, PERSONAL, Message

POLL_MAX_RECORDS = 5000
IDLE_TIMEOUT_S = 60.0
_FILE_LINE = re.compile(r"\.(jsonl|json|ndjson):\d+$")  # position of a JSON Lines event (producers.files)


class ReplayError(Exception):
    """The history or the live ledger cannot be read, or the options do not fit together."""


class LogRead(NamedTuple):
    """One message of a log and its log time (epoch ms; None when it has none). A named tuple: made
    once per event replayed, and a frozen dataclass costs two attribute writes more each time."""

    message: Message
    log_time: int | None


Upto = dict[tuple[str, int], int]


# ---- archives ----------------------------------------------------------------

def archive_topics(path: str | Path, topic: str | None = None) -> list[tuple[Path, str]]:
    """The (archive directory, topic) pairs under `path`: the `--out` directory of
    `refledger archive` (one sub-directory per topic) or one topic's directory."""
    from refledger.schemas.archive import archive_partitions

    path = Path(path)
    if not path.is_dir():
        raise ReplayError(f"no archive directory {path}")
    if archive_partitions(path.parent, path.name):
        found = [(path.parent, path.name)]
    else:
        found = [(path, d.name) for d in sorted(path.iterdir()) if d.is_dir() and archive_partitions(path, d.name)]
    if topic is not None:
        found = [(root, name) for root, name in found if name == topic]
    if not found:
        raise ReplayError(f"no archive of {'topic ' + repr(topic) if topic else 'any topic'} in {path}")
    return found


def archive_history(out_dir: Path, topic: str, upto: Upto, first: Upto) -> Iterator[LogRead]:
    """Every archived partition of `topic`, ascending, each up to its `upto` offset."""
    from refledger.schemas.archive import ArchiveError, archive_partitions, read_partition

    try:
        for partition in archive_partitions(out_dir, topic):
            stop = upto.get((topic, partition))
            start = None
            for msg in read_partition(out_dir, topic, partition):
                if start is None:
                    start = msg.offset
                    _check_start(f"the archive of {topic}:{partition}", start, first.get((topic, partition)))
                if stop is not None and msg.offset >= stop:
                    break
                yield LogRead(msg, msg.timestamp)
    except ArchiveError as exc:
        raise ReplayError(str(exc)) from exc


def _check_start(what: str, start: int, needed: int | None) -> None:
    if needed is not None and start > needed:
        raise ReplayError(f"{what} starts at offset {start}, but the ledger holds offset {needed}: "
                          "the start of the log is gone (retention?); replay from the stored events "
                          "(--source events) or from an archive that reaches back further")


# ---- Kafka ---------------------------------------------------------------------

def kafka_history(bootstrap_servers: str, topic: str, upto: Upto, first: Upto, *,
                  idle_timeout_s: float = IDLE_TIMEOUT_S, login: KafkaLogin | None = None) -> Iterator[LogRead]:
    """The topic from offset 0, partition by partition, with a plain consumer (assign, no group,
    no commits), each partition up to `upto` or, for partitions the ledger never read, its end."""
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    from refledger.consumers.kafka_records import BatchReadingConsumer
    from refledger.schemas.kafka_client import connect

    try:
        consumer = connect(
            BatchReadingConsumer, bootstrap_servers, login, group_id=None, client_id="refledger-replay",
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=POLL_MAX_RECORDS,
            fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_wait_ms=200)
    except KafkaError as exc:
        raise ReplayError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ReplayError(f"topic {topic!r} does not exist on {bootstrap_servers}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        begin, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        for tp in tps:
            _check_start(f"Kafka's partition {topic}:{tp.partition}", begin[tp], first.get((topic, tp.partition)))
            stop = min(upto.get((topic, tp.partition), end[tp]), end[tp])
            if stop > begin[tp]:
                yield from _read_partition(consumer, tp, begin[tp], stop, idle_timeout_s)
    except KafkaError as exc:
        raise ReplayError(f"reading {topic} from Kafka at {bootstrap_servers} failed: {exc}") from exc
    finally:
        consumer.close(autocommit=False)


def _read_partition(consumer, tp, start: int, stop: int, idle_timeout_s: float) -> Iterator[LogRead]:
    consumer.assign([tp])
    consumer.seek(tp, start)
    moved = time.monotonic()
    while consumer.position(tp) < stop:
        records = consumer.poll(timeout_ms=500, max_records=POLL_MAX_RECORDS).get(tp, ())
        for r in records:
            if r.offset >= stop:
                return
            yield LogRead(Message(r.topic, r.partition, r.offset, r.value, AVRO, r.timestamp), r.timestamp)
        if records:
            moved = time.monotonic()
        elif time.monotonic() - moved > idle_timeout_s:
            raise ReplayError(f"no data from Kafka for {idle_timeout_s:.0f}s reading {tp.topic}:{tp.partition} "
                              f"at offset {consumer.position(tp)} (reading up to {stop})")


# ---- the ledger's stored events -------------------------------------------------------

def stored_history(snapshot_con, topics: Iterable[str] | None = None, fetch: int = 10_000) -> Iterator[LogRead]:
    """The live ledger's own log, from its copy (see `replay.snapshot`).

    Each log is its stored events (canonical Avro, as folded) merged by offset
    with the messages quarantined before the fold (raw bytes as received:
    undecodable, schema_invalid, conflicting duplicates), so positions and
    the dedup index see the same log. Skipped duplicates are not stored and
    changed nothing. Messages come in the live ledger's batch order, each
    log in offset order within it: one event id with two contents in two
    partitions is then stored and quarantined where it was live.
    """
    where = ""
    params: list = []
    if topics is not None:
        where, params = "WHERE list_contains(?, topic)", [list(topics)]
    cur = snapshot_con.cursor()
    cur.execute(
        f"""SELECT topic, partition, "offset", is_event, value, position, kafka_timestamp, log_time, reason FROM (
                SELECT e.topic, e.partition, e."offset", true AS is_event, e.avro AS value, q.position,
                       e.kafka_timestamp, coalesce(e.kafka_timestamp, e.occurred_ms) AS log_time, NULL AS reason,
                       e.batch_id
                FROM live_events e LEFT JOIN (
                    SELECT topic, partition, "offset", min(position) AS position FROM live_quarantine
                    WHERE stage <> 'decode' GROUP BY ALL) q USING (topic, partition, "offset")
                UNION ALL
                SELECT topic, partition, "offset", false, raw, position, NULL, NULL, reason, batch_id
                FROM live_quarantine WHERE stage = 'decode')
            {where} ORDER BY batch_id, topic, partition, "offset" """, params)
    new = tuple.__new__  # a named tuple's own constructor is a Python call; this is one in C, per event
    try:
        while rows := cur.fetchmany(fetch):
            for topic, partition, offset, is_event, value, position, timestamp, log_time, reason in rows:
                kind = AVRO if is_event or not _FILE_LINE.search(position or "") else JSON
                if reason == PERSONAL:  # kept redacted: quarantined again as it is (SPEC §4b)
                    kind = PERSONAL
                yield new(LogRead, (new(Message, (topic, partition, offset, value, kind, timestamp, position or "",
                                                  "")), log_time))
    finally:
        cur.close()


# ---- the log as it stood at a time ---------------------------------------------------------

def until_prefix(reads: Iterable[LogRead], until_ms: int) -> Iterator[LogRead]:
    """Per partition, the messages before the first one whose log time is after `until_ms`."""
    ended: set[tuple[str, int]] = set()
    for read in reads:
        msg = read.message
        key = (msg.topic, msg.partition)
        if key in ended:
            continue
        log_time = read.log_time if read.log_time is not None and read.log_time >= 0 else _occurred_at(msg)
        if log_time is not None and log_time > until_ms:
            ended.add(key)
            continue
        yield read


def _occurred_at(msg: Message) -> int | None:
    from refledger.schemas.messages import decode_message
    from refledger.schemas import codec

    try:
        return decode_message(msg)["occurred_at"]
    except codec.CodecError:
        return None
