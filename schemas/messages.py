"""A message: one event as read from a log (Kafka, a file, an archive), before decoding.

Producers, consumers and the audit tools all pass events around in this
form, so it lives with the codec that reads it.
"""

from __future__ import annotations

from typing import NamedTuple

from refledger.schemas import codec

DEFAULT_TOPIC = "shop-events"  # the alliance's event topic on Kafka
DEFAULT_GROUP = "refledger"  # the ledger's consumer group

AVRO = "avro"      # value holds Avro single-object bytes
JSON = "json"      # value holds one JSON Lines line (bytes)
DAMAGED = "damaged"  # value holds the unreadable rest of a file (``problem`` says why): undecodable
PERSONAL = "personal_data"  # value holds an event the ledger quarantined for personal data, redacted (SPEC §4b):
                            # a replay from stored events quarantines it again as it is


class Message(NamedTuple):
    """One event as read from a log, before decoding (a named tuple: built by the hundred
    thousand per second, so it must be cheap to make)."""

    topic: str
    partition: int
    offset: int
    value: bytes
    kind: str = AVRO
    timestamp: int | None = None
    position: str = ""
    problem: str = ""        # why a DAMAGED value cannot be read

    def where(self) -> str:
        return self.position or f"{self.topic}:{self.partition}:{self.offset}"

    def raw_bytes(self) -> bytes:
        return b"" if self.value is None else bytes(self.value)  # a Kafka record may have no value


def decode_message(msg: Message) -> dict:
    """The message's record; raises the codec's `CodecError`."""
    if msg.kind == AVRO:
        return codec.decode(msg.value)
    if msg.kind == JSON:
        return codec.record_from_json(msg.value)
    if msg.kind == DAMAGED:
        raise codec.Undecodable(msg.problem)
    raise ValueError(f"unknown message kind {msg.kind!r}")


def decode_canonical(msg: Message) -> tuple[dict, bytes]:
    """The record and its canonical single-object message (what the events table stores)."""
    if msg.kind == AVRO:
        return codec.decode_canonical(msg.value)
    record = decode_message(msg)
    return record, codec.canonical_message(record)
