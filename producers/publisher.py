"""Publishing shop and alliance events to Kafka, for shop integrations.

Every event is checked against the schema rules before it leaves the
process (a `ValueError` names the field), encoded as Avro single-object
bytes, and sent with the idempotent producer (`acks=all`). An event larger
than the topic takes in one message is refused before it is sent
(`EventTooLarge`, a `ValueError` too), so one bad event never fails a batch
of good ones. Routing follows
SPEC §3: shop events, payouts and adjustments are keyed by their merchant;
`member`, `agreement`, `settlement`, `close` and `policy` events go to every
partition so each partition is a complete log for its merchants.

Given a ``signing_key`` (``schemas.keys.read_key_file``), the publisher signs
every event that carries no signature yet (SPEC §4a): a shop integration
signs its own events with its shop's key, the operator's tools with the
operator's. Events signed already are sent as they are.

    pub = AlliancePublisher("127.0.0.1:9092")
    pub.click(event_id="c-1", occurred_at="2026-11-01T10:00:00.000Z", alliance_id="baby-care",
              shop_id="li-kids", visitor_id="v1", referrer_shop_id="li-kids",
              merchant_shop_id="wang-bath", placement_id="article-12")
    pub.flush()   # raises PublishError naming every event that was not delivered
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Callable, Iterable

from kafka import KafkaProducer
from kafka.errors import AuthorizationError, MessageSizeTooLargeError

from refledger.producers.kafka_admin import create_topic, message_limit
from refledger.schemas import codec
from refledger.schemas.kafka_client import KafkaLogin, connect
from refledger.schemas.messages import DEFAULT_TOPIC
from refledger.schemas.signing import signed_record

ALLIANCE_WIDE = frozenset({"member", "agreement", "settlement", "close", "policy"})
BATCH_BYTES = 512 * 1024


class EventTooLarge(ValueError):
    """The event is larger than the topic takes in one message."""


class PublishError(Exception):
    """Some events were not acknowledged by the broker."""

    def __init__(self, failures: list[tuple[str, Exception]]):
        self.failures = failures
        reasons: dict[str, list[str]] = {}
        for event_id, exc in failures:
            reasons.setdefault(str(exc), []).append(event_id)
        shown = "; ".join(f"{reason} ({_some(ids)})" for reason, ids in list(reasons.items())[:3])
        more = f"; and {len(reasons) - 3} other reasons" if len(reasons) > 3 else ""
        refused = ("the broker refused this client (may it write the topic? check --sasl-username, or ask the "
                   "alliance's operator for access): " if any(_refusal(exc) for _, exc in failures) else "")
        super().__init__(f"{refused}{len(failures)} event(s) not delivered: {shown}{more}")


def _some(event_ids: list[str]) -> str:
    return ", ".join(event_ids[:3]) + (f" and {len(event_ids) - 3} more" if len(event_ids) > 3 else "")


def _refusal(exc: Exception) -> bool:
    """An authorization failure; kafka-python reports a refused producer id (a client that may write
    no topic) as a plain KafkaError naming ClusterAuthorizationFailedError."""
    return isinstance(exc, AuthorizationError) or "AuthorizationFailed" in str(exc)


def to_millis(value) -> int:
    """Event time as epoch milliseconds from an int, an aware datetime or an ISO string."""
    if isinstance(value, bool):
        raise ValueError("time must be epoch milliseconds, an aware datetime or an ISO-8601 string")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return codec.parse_time(value, "occurred_at")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetime must be timezone-aware (UTC)")
        delta = value.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    raise ValueError(f"unsupported time value {value!r}")


def routing_key(record: dict) -> str:
    """The merchant whose partition the event belongs to (SPEC §3)."""
    payload = record[record["type"]]
    return payload.get("merchant_shop_id") or record["shop_id"]


class AlliancePublisher:
    """Validating, idempotent publisher; one method per event type."""

    def __init__(self, bootstrap_servers: str | None = None, topic: str = DEFAULT_TOPIC, *,
                 producer: KafkaProducer | None = None, linger_ms: int = 20, signing_key=None,
                 login: KafkaLogin | None = None):
        """``producer``: one of your own, used as it is; else one is made for ``bootstrap_servers``
        (logged in as ``login``), sized to the largest message the topic takes. ``signing_key``: a nacl
        SigningKey that signs what is not signed yet."""
        self.topic = topic
        self.signing_key = signing_key
        limit = None if producer else message_limit(bootstrap_servers, topic, login=login)
        self.producer = producer or connect(
            KafkaProducer, bootstrap_servers, login,
            enable_idempotence=True,
            acks="all",
            linger_ms=linger_ms,
            max_request_size=limit,  # a larger event is refused by send(), before it can fail a batch
            batch_size=min(BATCH_BYTES, limit),
            compression_type=None,
            max_in_flight_requests_per_connection=5,
            delivery_timeout_ms=120_000,
        )
        self._partitions: list[int] | None = None
        self._failures: list[tuple[str, Exception]] = []
        self._lock = threading.Lock()
        self.sent = 0

    # -- generic path --------------------------------------------------------

    def partitions(self) -> list[int]:
        if self._partitions is None:
            found = self.producer.partitions_for(self.topic)
            if not found:
                raise ValueError(f"topic {self.topic!r} does not exist; create it first")
            self._partitions = sorted(found)
        return self._partitions

    def publish(self, record: dict, partitions: list[int] | None = None) -> None:
        """Validate, encode and send one record (asynchronously). An alliance-wide event goes to every
        partition, or only to ``partitions`` when given (to complete one that reached only some)."""
        try:
            codec.validate_record(record)
        except codec.CodecError as exc:
            raise ValueError(str(exc)) from exc
        if self.signing_key is not None and record.get("signature") is None:
            record = signed_record(record, self.signing_key)
        value = codec.encode(record)
        key = routing_key(record).encode("utf-8")
        if record["type"] in ALLIANCE_WIDE:
            for partition in self.partitions() if partitions is None else partitions:
                self._send(record["event_id"], key, value, partition)
        else:
            self._send(record["event_id"], key, value, None)

    def _send(self, event_id: str, key: bytes, value: bytes, partition: int | None) -> None:
        try:
            future = self.producer.send(self.topic, key=key, value=value, partition=partition)
        except MessageSizeTooLargeError as exc:
            raise EventTooLarge(f"event {event_id} is {len(value):,} bytes as Avro; topic {self.topic} takes "
                                f"messages of at most {self.producer.config['max_request_size']:,} bytes") from exc
        future.add_errback(self._failed, event_id)
        self.sent += 1

    def _failed(self, event_id: str, exc: Exception) -> None:
        with self._lock:
            self._failures.append((event_id, exc))

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every send; raise PublishError if any was not delivered."""
        self.producer.flush(timeout)
        with self._lock:
            failures, self._failures = self._failures, []
        if failures:
            raise PublishError(failures)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.producer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- one method per event type ----------------------------------------------

    def _shop_event(self, type_: str, event_id, occurred_at, alliance_id, shop_id, visitor_id, payload) -> None:
        self.publish({
            "event_id": event_id, "type": type_, "occurred_at": to_millis(occurred_at),
            "alliance_id": alliance_id, "shop_id": shop_id, "visitor_id": visitor_id, type_: payload,
        })

    def _alliance_event(self, type_: str, event_id, occurred_at, alliance_id, payload) -> None:
        self._shop_event(type_, event_id, occurred_at, alliance_id, "alliance", None, payload)

    def view(self, *, event_id, occurred_at, alliance_id, shop_id, visitor_id,
             referrer_shop_id, merchant_shop_id, placement_id) -> None:
        self._shop_event("view", event_id, occurred_at, alliance_id, shop_id, visitor_id, {
            "referrer_shop_id": referrer_shop_id, "merchant_shop_id": merchant_shop_id,
            "placement_id": placement_id})

    def click(self, *, event_id, occurred_at, alliance_id, shop_id, visitor_id,
              referrer_shop_id, merchant_shop_id, placement_id) -> None:
        self._shop_event("click", event_id, occurred_at, alliance_id, shop_id, visitor_id, {
            "referrer_shop_id": referrer_shop_id, "merchant_shop_id": merchant_shop_id,
            "placement_id": placement_id})

    def order(self, *, event_id, occurred_at, alliance_id, shop_id, visitor_id,
              order_id, currency, lines, total_minor, merchant_shop_id=None) -> None:
        self._shop_event("order", event_id, occurred_at, alliance_id, shop_id, visitor_id, {
            "order_id": order_id, "merchant_shop_id": merchant_shop_id or shop_id, "currency": currency,
            "lines": [dict(line) for line in lines], "total_minor": total_minor})

    def refund(self, *, event_id, occurred_at, alliance_id, shop_id, visitor_id,
               order_id, refund_id, currency, amount_minor, merchant_shop_id=None) -> None:
        self._shop_event("refund", event_id, occurred_at, alliance_id, shop_id, visitor_id, {
            "order_id": order_id, "refund_id": refund_id, "merchant_shop_id": merchant_shop_id or shop_id,
            "currency": currency, "amount_minor": amount_minor})

    def member(self, *, event_id, occurred_at, alliance_id, member_shop_id, status) -> None:
        self._alliance_event("member", event_id, occurred_at, alliance_id,
                             {"member_shop_id": member_shop_id, "status": status})

    def agreement(self, *, event_id, occurred_at, alliance_id, agreement_id, version, effective_from,
                  merchant_shop_id, referrer_shop_id, model, rate_bp=None, category_rates_bp=None,
                  amount_minor=None, currency=None, attribution_window_days=15, hold_days=15) -> None:
        self._alliance_event("agreement", event_id, occurred_at, alliance_id, {
            "agreement_id": agreement_id, "version": version, "effective_from": to_millis(effective_from),
            "merchant_shop_id": merchant_shop_id, "referrer_shop_id": referrer_shop_id, "model": model,
            "rate_bp": rate_bp, "category_rates_bp": dict(category_rates_bp or {}),
            "amount_minor": amount_minor, "currency": currency,
            "attribution_window_days": attribution_window_days, "hold_days": hold_days})

    def settlement(self, *, event_id, occurred_at, alliance_id, settlement_id, period_end) -> None:
        self._alliance_event("settlement", event_id, occurred_at, alliance_id,
                             {"settlement_id": settlement_id, "period_end": to_millis(period_end)})

    def payout(self, *, event_id, occurred_at, alliance_id, payout_id, merchant_shop_id,
               referrer_shop_id, currency, amount_minor) -> None:
        self._alliance_event("payout", event_id, occurred_at, alliance_id, {
            "payout_id": payout_id, "merchant_shop_id": merchant_shop_id,
            "referrer_shop_id": referrer_shop_id, "currency": currency, "amount_minor": amount_minor})

    def adjustment(self, *, event_id, occurred_at, alliance_id, adjustment_id, merchant_shop_id,
                   referrer_shop_id, currency, amount_minor, reason) -> None:
        self._alliance_event("adjustment", event_id, occurred_at, alliance_id, {
            "adjustment_id": adjustment_id, "merchant_shop_id": merchant_shop_id,
            "referrer_shop_id": referrer_shop_id, "currency": currency, "amount_minor": amount_minor,
            "reason": reason})


def publish_records(records: Iterable[dict], bootstrap_servers: str, topic: str = DEFAULT_TOPIC, *,
                    partitions: int = 6, on_progress: Callable[[int], None] | None = None,
                    every: int = 5000, signing_key=None, login: KafkaLogin | None = None) -> tuple[int, int]:
    """Publish records to ``topic`` (created with ``partitions`` if missing); returns (events,
    Kafka messages): alliance events become one message per partition. ``on_progress(events)``
    is called every ``every`` events and at the end; ``signing_key`` signs what is unsigned."""
    create_topic(bootstrap_servers, topic, partitions, login=login)
    count = 0
    with AlliancePublisher(bootstrap_servers, topic, signing_key=signing_key, login=login) as pub:
        for record in records:
            pub.publish(record)
            count += 1
            if on_progress is not None and count % every == 0:
                on_progress(count)
        if on_progress is not None:
            on_progress(count)
    return count, pub.sent
