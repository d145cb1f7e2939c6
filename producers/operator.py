"""The operator's month end: the settlement of a month and the close through a month (SPEC §9, §9a).

Every field of these events follows from the periods and the alliance's
time zone, so running the month end twice builds the same bytes:

* the settlement of ``YYYY-MM``: event id ``settlement-YYYY-MM``,
  ``settlement_id`` ``YYYY-MM``, ``period_end`` the month's last millisecond
  in the alliance's zone written in UTC (November in Asia/Shanghai ends
  2026-11-30T15:59:59.999Z), ``occurred_at`` the millisecond after it;
* the close through ``YYYY-MM``: event id ``close-through-YYYY-MM``,
  ``close_id`` ``through-YYYY-MM``, ``closed_through`` that month's last
  millisecond, ``occurred_at`` the millisecond after it (never earlier than
  what it closes, so never `future_close`).

Each is published at most once. How that is known: before publishing, the
topic is read from its beginning to its current end, every partition, and
each message that holds one of the derived event ids is decoded (a byte
search first, so the rest of the log is not decoded). An event found with
the same content is not published again to that partition; one found with
other content (the month end run before with another time zone or alliance)
stops the run with what differs, before anything is published. So a second
run publishes nothing and says where and when the first one put each event,
and a run cut short finishes the partitions the first one missed. The topic
is the record; there is no other state to keep or lose. (The ledger would
skip an identical re-delivery anyway; reading the topic keeps the log free of
them and lets the operator see what was done.)
"""

from __future__ import annotations

import time
from typing import Iterable, NamedTuple
from zoneinfo import ZoneInfo

from refledger.producers.publisher import AlliancePublisher
from refledger.schemas import codec
from refledger.schemas.kafka_client import KafkaLogin, connect
from refledger.schemas.periods import month_bounds, parse_period

ALLIANCE = "alliance"
SCAN_POLL_RECORDS = 20_000
SCAN_IDLE_S = 30.0


class OperatorError(Exception):
    """The month end cannot be run as asked (a month not over, a conflicting earlier run, no topic)."""


class Published(NamedTuple):
    """Where one event of the month end stands in a partition of the topic."""

    partition: int
    offset: int | None      # None: published by this run (the broker's offset is not waited for)
    timestamp_ms: int | None


class MonthEndEvent(NamedTuple):
    """One derived event and where it is: ``before`` (an earlier run) and ``now`` (this run)."""

    record: dict
    before: tuple[Published, ...]
    now: tuple[int, ...]


def settlement_record(alliance_id: str, period: str, zone: ZoneInfo) -> dict:
    """The settlement of ``period`` (SPEC §9), every field derived from the period and the zone."""
    end = month_bounds(period, zone)[1]
    return _alliance_record(f"settlement-{period}", "settlement", end + 1, alliance_id,
                            {"settlement_id": period, "period_end": end})


def close_record(alliance_id: str, period: str, zone: ZoneInfo) -> dict:
    """The close through the end of ``period`` (SPEC §9a), every field derived from the period and the zone."""
    end = month_bounds(period, zone)[1]
    return _alliance_record(f"close-through-{period}", "close", end + 1, alliance_id,
                            {"close_id": f"through-{period}", "closed_through": end})


def _alliance_record(event_id: str, kind: str, occurred_at: int, alliance_id: str, payload: dict) -> dict:
    return {"event_id": event_id, "type": kind, "occurred_at": occurred_at, "alliance_id": alliance_id,
            "shop_id": ALLIANCE, "visitor_id": None, kind: payload}


def month_end_ids(period: str, close_through: str | None = None) -> list[str]:
    """The event ids of a month end, in publishing order: the settlement, then the close if any."""
    check_close_through(period, close_through)
    return [f"settlement-{period}"] + ([f"close-through-{close_through}"] if close_through else [])


def month_end_records(alliance_id: str, period: str, zone: ZoneInfo, close_through: str | None = None) -> list[dict]:
    """The settlement of ``period`` and, when asked, the close through ``close_through``."""
    check_close_through(period, close_through)
    records = [settlement_record(alliance_id, period, zone)]
    if close_through:
        records.append(close_record(alliance_id, close_through, zone))
    return records


def check_close_through(period: str, close_through: str | None) -> None:
    parse_period(period)
    if close_through is not None and parse_period(close_through) > parse_period(period):
        raise OperatorError(f"cannot close through {close_through} when settling {period}: close only months "
                            "that have been settled")


def check_month_over(period: str, zone: ZoneInfo, now_ms: int) -> None:
    """Refuse a month that has not ended yet in the alliance's zone."""
    end = month_bounds(period, zone)[1]
    if now_ms <= end:
        raise OperatorError(f"{period} has not ended yet in {zone.key} (it ends {codec.format_time(end)}); "
                            "settle it once it is over, or give --force")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def run_month_end(bootstrap_servers: str, topic: str, period: str, zone: ZoneInfo, *,
                  close_through: str | None = None, alliance_id: str | None = None,
                  publisher: AlliancePublisher | None = None, signing_key=None,
                  login: KafkaLogin | None = None) -> list[MonthEndEvent]:
    """Publish the month end's events to the partitions that do not hold them yet; say where each is.
    ``signing_key``: the operator's key, to sign them (SPEC §4a); ``login``: who publishes them on a
    broker that asks (the alliance's operator)."""
    ids = month_end_ids(period, close_through)
    found, first_alliance = scan_topic(bootstrap_servers, topic, ids, login)
    alliance_id = alliance_id or first_alliance
    if not alliance_id:
        raise OperatorError(f"topic {topic!r} holds no event to learn the alliance from; give --alliance")
    records = month_end_records(alliance_id, period, zone, close_through)
    done = []
    for record in records:
        seen = found.events.get(record["event_id"], ())
        _refuse_conflicts(record, seen)
        before = tuple(Published(p, o, t) for p, o, t, _ in seen)
        held = {b.partition for b in before}
        done.append(MonthEndEvent(record, before, tuple(p for p in found.partitions if p not in held)))
    if any(event.now for event in done):
        with publisher or AlliancePublisher(bootstrap_servers, topic, signing_key=signing_key, login=login) as pub:
            for event in done:
                if event.now:
                    pub.publish(event.record, partitions=list(event.now))
    return done


def _refuse_conflicts(record: dict, found: Iterable[tuple]) -> None:
    """The same event id published before with other content (its signature aside, SPEC §4a) is a
    conflict."""
    ours = codec.decode(codec.encode(record))
    for partition, offset, _timestamp, theirs in found:
        if {k: v for k, v in theirs.items() if k != "signature"} != ours:
            raise OperatorError(
                f"{record['event_id']} was published before with other content (partition {partition}, offset "
                f"{offset}): {codec.record_to_json_line(theirs)}; this run would publish "
                f"{codec.record_to_json_line(ours)} (another --tz or --alliance?); nothing was published")


class TopicScan(NamedTuple):
    partitions: list[int]
    # event id -> (partition, offset, Kafka timestamp, decoded record), for the ids looked for
    events: dict[str, list[tuple[int, int, int, dict]]]


def scan_topic(bootstrap_servers: str, topic: str, event_ids: list[str],
               login: KafkaLogin | None = None) -> tuple[TopicScan, str | None]:
    """Every message of ``topic`` (up to its end when the scan starts) holding one of ``event_ids``, and the
    alliance id of the first event that decodes."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = connect(KafkaConsumer, bootstrap_servers, login, group_id=None, client_id="refledger-settle",
                       enable_auto_commit=False, auto_offset_reset="earliest",
                       max_poll_records=SCAN_POLL_RECORDS, fetch_max_wait_ms=200)
    try:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            raise OperatorError(f"topic {topic!r} does not exist at {bootstrap_servers}")
        parts = [TopicPartition(topic, p) for p in sorted(numbers)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        needles = [(event_id, event_id.encode("utf-8")) for event_id in event_ids]
        events: dict[str, list] = {}
        alliance_id = None
        moved = time.monotonic()
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            polled = consumer.poll(timeout_ms=1000)
            if polled:
                moved = time.monotonic()
            elif time.monotonic() - moved > SCAN_IDLE_S:
                raise OperatorError(f"no data from Kafka for {SCAN_IDLE_S:.0f}s while reading {topic!r} for "
                                    "earlier month ends; nothing was published")
            for tp, messages in polled.items():
                for message in messages:
                    value = message.value
                    if message.offset >= ends[tp] or value is None:
                        continue
                    if alliance_id is None:
                        alliance_id = _alliance_of(value)
                    for event_id, needle in needles:
                        if needle in value:
                            record = _decoded(value)
                            if record is not None and record["event_id"] == event_id:
                                events.setdefault(event_id, []).append(
                                    (tp.partition, message.offset, message.timestamp, record))
        return TopicScan([tp.partition for tp in parts], events), alliance_id
    finally:
        consumer.close(autocommit=False)


def _decoded(value: bytes) -> dict | None:
    try:
        return codec.decode(value)
    except codec.CodecError:
        return None


def _alliance_of(value: bytes) -> str | None:
    record = _decoded(value)
    return None if record is None else record["alliance_id"]
