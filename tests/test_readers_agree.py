"""Every reader of event bytes gives the same answer, on every single-bit flip and every truncation.

A shop's integration, a broker or a disk may hand the ledger any bytes. The
codec's ``decode`` is the reference; ``decode_canonical``, the fixed-layout
readers and the consumer's decode step must read each message exactly as it
does, or reject it with the same reason, or (a fast reader) decline it and
leave the answer to the codec. Were one of them to store an event the codec
rejects, the partition's next restart, which reads the stored events with the
codec, would fail on it forever. Not sampled: every bit of a valid message of
every event type in every schema version is flipped, one at a time, and every
message is cut at every length.
"""

from __future__ import annotations

from collections import Counter

import pytest

from refledger.schemas import codec
from refledger.schemas.codec import SCHEMA_VERSIONS, SchemaInvalid, Undecodable
from refledger.schemas.shape import PAYLOAD_TYPES
from refledger.schemas.traffic import read_purchase, read_traffic
from tests.readers_support import (
    SAMPLES, bit_flips, codec_answer, disagreements, sample_messages, truncations, unsigned_length_string,
)

MESSAGES = sample_messages()


def _each(message: bytes, variants) -> dict[int, list[str]]:
    return {at: found for at, damaged in variants(message) if (found := disagreements(damaged))}


@pytest.mark.parametrize(("name", "message"), MESSAGES, ids=[name for name, _ in MESSAGES])
def test_every_single_bit_flip_gets_the_same_answer_from_every_reader(name, message):
    assert disagreements(message) == []
    assert _each(message, bit_flips) == {}


@pytest.mark.parametrize(("name", "message"), MESSAGES, ids=[name for name, _ in MESSAGES])
def test_every_truncation_gets_the_same_answer_from_every_reader(name, message):
    assert _each(message, truncations) == {}


def test_the_messages_cover_every_event_type_in_every_schema_version():
    versions = {name.split("-", 1)[0] for name, _ in MESSAGES}
    assert versions == {version.name for version in SCHEMA_VERSIONS} == {"v1", "v2", "v3"}
    current = {codec.decode(message)["type"] for name, message in MESSAGES if name.startswith("v3-")}
    assert current == set(PAYLOAD_TYPES)
    older = {codec.decode(message)["type"] for name, message in MESSAGES if name.startswith("v1-")}
    assert older == set(PAYLOAD_TYPES) - {"close", "policy"}, "v1 and v2 know nine types"


def test_each_message_decodes_to_its_sample_as_far_as_its_version_has_it():
    for name, message in MESSAGES:
        version, sample = name.split("-", 1)
        record = codec.decode(message)
        expected = dict(SAMPLES[sample])
        if version == "v1":
            expected.pop("signature", None)
        if version != "v3" and expected["type"] == "member":
            expected["member"] = {**expected["member"], "public_key": None}
        assert record == expected, name


def test_the_flips_reach_every_kind_of_answer():
    """Not a vacuous agreement: damaged messages are read as other events, rejected for each
    reason, and read by the fixed-layout readers themselves, not only declined by them."""
    answers = Counter()
    fast_reads = 0
    for name, message in MESSAGES:
        for _bit, damaged in bit_flips(message):
            answer = codec_answer(damaged)
            answers["record" if isinstance(answer, dict) else answer.__name__] += 1
            if isinstance(answer, dict) and answer != codec.decode(message):
                fast = read_traffic(damaged, codec.CURRENT_FINGERPRINT) or read_purchase(
                    damaged, codec.CURRENT_FINGERPRINT)
                fast_reads += fast is not None
    assert answers["record"] > 1000 and answers[Undecodable.__name__] > 10000
    assert answers[SchemaInvalid.__name__] > 100
    assert fast_reads > 500, "the fixed-layout readers read damaged events themselves"


def test_a_negative_length_byte_in_a_current_click_is_undecodable_to_every_reader():
    """The outside review's case: a click whose event_id or alliance_id length byte has its low
    bit set (a negative Avro length) was stored by the fast reader and then stopped every restart."""
    message = dict(MESSAGES)["v3-click"]
    event_id_length = codec.HEADER_SIZE
    alliance_id_length = event_id_length + 1 + len("c-1") + 1 + 6  # id, type, a six-byte time
    assert message[alliance_id_length] == 2 * len("baby-care")
    for at in (event_id_length, alliance_id_length):
        damaged = bytearray(message)
        damaged[at] |= 1
        assert codec_answer(bytes(damaged)) is Undecodable
        assert disagreements(bytes(damaged)) == []


def test_a_reader_that_skips_a_check_is_caught(monkeypatch):
    """The comparison finds a fast reader that reads a one-byte length without its sign, as the
    fast reader once did."""
    from refledger.schemas import traffic

    monkeypatch.setattr(traffic, "read_string", unsigned_length_string)
    found = _each(dict(MESSAGES)["v3-click"], bit_flips)
    assert 8 * codec.HEADER_SIZE in found, "the event_id length byte's low bit"
    assert "consumer (Kafka records): stored an event where the codec raises Undecodable" in found[8 * codec.HEADER_SIZE]


def _widened(node):
    """The schema with every Avro int written as a long: the same bytes for values within 32 bits,
    and a writer for values beyond them."""
    if node == "int":
        return "long"
    if isinstance(node, list):
        return [_widened(branch) for branch in node]
    if isinstance(node, dict):
        return {key: _widened(value) if key in ("type", "items", "values", "fields") else value
                for key, value in node.items()} if node.get("type") != "enum" else node
    return node


def _widened_message(record: dict) -> bytes:
    import io

    import fastavro

    from refledger.schemas.versions import strip_logical_types

    schema = strip_logical_types(codec.CURRENT_VERSION.schema())
    schema["fields"] = [{**field, "type": _widened(field["type"])} for field in schema["fields"]]
    datum = {**{name: None for name in PAYLOAD_TYPES}, "signature": None, **record}
    stream = io.BytesIO()
    stream.write(codec.MAGIC + codec.CURRENT_FINGERPRINT)
    fastavro.schemaless_writer(stream, fastavro.parse_schema(schema), datum)
    return stream.getvalue()


def _with(name: str, **changes) -> dict:
    record = SAMPLES[name]
    return {**record, record["type"]: {**record[record["type"]], **changes}}


BEYOND_32_BITS = {
    "rate": _with("agreement-cps", rate_bp=2**31),
    "version": _with("agreement-cps", version=-(2**31) - 1),
    "category rate": _with("agreement-cps", category_rates_bp={"care": 700, "toys": 2**40}),
    "category rate, keys unsorted": _with("agreement-cps", category_rates_bp={"toys": 1000, "care": 2**40}),
    "window": _with("agreement-cpc", attribution_window_days=-(2**33)),
    "quantity": _with("order", lines=[{"sku": "s", "category": "c", "quantity": -(2**32), "unit_price_minor": 0}]),
}


@pytest.mark.parametrize("name", list(BEYOND_32_BITS))
def test_an_avro_int_beyond_32_bits_is_undecodable_to_every_reader(name):
    """Found by fuzzing: fastavro reads an Avro int as any varint, so the codec read an agreement
    whose category rate passed 32 bits, and decode_canonical, re-encoding its unsorted map, refused it."""
    message = _widened_message(BEYOND_32_BITS[name])
    assert message[:codec.HEADER_SIZE] == codec.MAGIC + codec.CURRENT_FINGERPRINT
    assert codec_answer(message) is Undecodable
    assert disagreements(message) == []
    within = _widened_message(SAMPLES[_sample_of(name)])
    assert within == codec.encode(SAMPLES[_sample_of(name)]), "a long and an int write the same bytes"


def _sample_of(name: str) -> str:
    return {"window": "agreement-cpc", "quantity": "order"}.get(name, "agreement-cps")
