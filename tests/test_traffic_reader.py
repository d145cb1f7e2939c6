"""The fixed-layout readers for shop events (`schemas.traffic`) answer exactly like the codec.

It may decline (None) whenever it likes, sending the message down the
general path; it may never return a record the codec would not, nor a
different one, nor accept bytes the codec rejects.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from refledger.schemas import codec
from tests.codec_support import encode_unchecked
from refledger.schemas.errors import CodecError
from refledger.schemas.traffic import read_purchase, read_traffic
from refledger.schemas.timestamps import MAX_MILLIS, MIN_MILLIS
from tests.examples import examples

ids = st.text(min_size=1, max_size=70)  # past 63 bytes a string's length takes two bytes


@st.composite
def traffic(draw):
    kind = draw(st.sampled_from(["view", "click"]))
    referrer = draw(ids)
    record = {"event_id": draw(st.text(min_size=1, max_size=64)), "type": kind,
              "occurred_at": draw(st.integers(MIN_MILLIS, MAX_MILLIS)), "alliance_id": draw(ids),
              "shop_id": referrer, "visitor_id": draw(ids),
              kind: {"referrer_shop_id": referrer, "merchant_shop_id": draw(ids), "placement_id": draw(ids)}}
    if draw(st.booleans()):
        record["signature"] = draw(st.text(max_size=90))
    return record


currencies = st.one_of(st.sampled_from(["CNY", "EUR", "USD"]), st.text(min_size=2, max_size=4))
longs = st.integers(-(1 << 63), (1 << 63) - 1)


@st.composite
def purchase(draw):
    """An order or a refund, now and then one that breaks a shape rule (the codec rejects it)."""
    merchant = draw(ids)
    kind = draw(st.sampled_from(["order", "refund"]))
    if kind == "order":
        lines = draw(st.lists(st.fixed_dictionaries({
            "sku": ids, "category": ids, "quantity": st.integers(-(1 << 31), (1 << 31) - 1),
            "unit_price_minor": longs}), min_size=0, max_size=4))
        payload = {"order_id": draw(ids), "merchant_shop_id": merchant, "currency": draw(currencies),
                   "lines": lines, "total_minor": draw(longs)}
    else:
        payload = {"order_id": draw(ids), "refund_id": draw(ids), "merchant_shop_id": merchant,
                   "currency": draw(currencies), "amount_minor": draw(longs)}
    record = {"event_id": draw(st.text(min_size=1, max_size=64)), "type": kind,
              "occurred_at": draw(st.integers(MIN_MILLIS, MAX_MILLIS)), "alliance_id": draw(ids),
              "shop_id": merchant, "visitor_id": draw(st.one_of(st.none(), ids)), kind: payload}
    if draw(st.booleans()):
        record["signature"] = draw(st.text(max_size=90))
    return record


def encoded(record: dict) -> bytes:
    """The message, or for a record breaking a shape rule the bytes an unchecking writer would send."""
    try:
        return codec.encode(record)
    except CodecError:
        return encode_unchecked(record)


def damage(message: bytes, data) -> bytes:
    """The message with one to three bytes overwritten, and now and then cut short or lengthened."""
    raw = bytearray(message)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[:data.draw(st.integers(0, len(raw)))] + bytes(data.draw(st.binary(max_size=3)))
    return bytes(raw)


def codec_answer(data: bytes):
    try:
        return codec.decode(data)
    except CodecError:
        return None


@settings(max_examples=examples(400), deadline=None)
@given(traffic())
def test_a_view_or_click_reads_as_the_codec_reads_it(record):
    data = codec.encode(record)
    fast = read_traffic(data, codec.CURRENT_FINGERPRINT)
    assert fast == codec.decode(data)
    assert list(fast) == list(codec.decode(data)), "same fields in the same order"
    assert codec.decode_canonical(data) == (fast, data)


@settings(max_examples=examples(600), deadline=None)
@given(traffic(), st.data())
def test_damaged_bytes_are_declined_or_read_exactly_as_the_codec_reads_them(record, data):
    damaged = damage(codec.encode(record), data)
    fast = read_traffic(damaged, codec.CURRENT_FINGERPRINT)
    if fast is not None:
        assert fast == codec_answer(damaged)


def test_other_events_and_versions_are_left_to_the_codec():
    order = {"event_id": "o-1", "type": "order", "occurred_at": 0, "alliance_id": "a", "shop_id": "m",
             "visitor_id": "v", "order": {"order_id": "o1", "merchant_shop_id": "m", "currency": "CNY",
                                          "lines": [{"sku": "s", "category": "c", "quantity": 1,
                                                     "unit_price_minor": 5}], "total_minor": 5}}
    assert read_traffic(codec.encode(order), codec.CURRENT_FINGERPRINT) is None
    click = {"event_id": "c-1", "type": "click", "occurred_at": 0, "alliance_id": "a", "shop_id": "r",
             "visitor_id": "v", "click": {"referrer_shop_id": "r", "merchant_shop_id": "m", "placement_id": "p"}}
    data = codec.encode(click)
    assert read_traffic(data, b"\x00" * 8) is None, "another fingerprint goes the general way"
    assert read_traffic(data + b"\x00", codec.CURRENT_FINGERPRINT) is None, "trailing bytes"


@settings(max_examples=examples(500), deadline=None)
@given(purchase())
def test_an_order_or_refund_reads_as_the_codec_reads_it(record):
    data = encoded(record)
    fast = read_purchase(data, codec.CURRENT_FINGERPRINT)
    expected = codec_answer(data)
    if expected is None:
        assert fast is None, "the codec rejects it, so the reader must decline"
        return
    if fast is not None:  # it may decline what it likes, never answer otherwise
        assert fast == expected
        assert list(fast) == list(expected) and list(fast[record["type"]]) == list(expected[record["type"]])
    assert codec.decode_canonical(data) == (expected, data)


@settings(max_examples=examples(600), deadline=None)
@given(purchase(), st.data())
def test_damaged_orders_and_refunds_are_declined_or_read_exactly_as_the_codec_reads_them(record, data):
    damaged = damage(encoded(record), data)
    fast = read_purchase(damaged, codec.CURRENT_FINGERPRINT)
    if fast is not None:
        assert fast == codec_answer(damaged)


def test_the_simulated_alliances_orders_and_refunds_take_the_fixed_layout_path():
    from refledger.producers.simulate import SimulationConfig, simulate

    purchases = [r for r in simulate(SimulationConfig(seed=3, events=4000)) if r["type"] in ("order", "refund")]
    assert purchases
    for record in purchases:
        data = codec.encode(record)
        assert read_purchase(data, codec.CURRENT_FINGERPRINT) == codec.decode(data)


def test_a_click_without_an_event_id_is_refused_by_the_codec_and_declined_by_the_fast_reader():
    """The fast reader takes a view or click as it is only when the codec would: an empty event id is
    SPEC §2's schema_invalid, which only the codec can say."""
    from refledger.schemas.traffic import read_traffic_fields

    click = codec.record_from_json({
        "event_id": "c-1", "type": "click", "occurred_at": "2026-11-01T10:00:00.000Z", "alliance_id": "baby-care",
        "shop_id": "li-kids", "visitor_id": "v1",
        "click": {"referrer_shop_id": "li-kids", "merchant_shop_id": "wang-bath", "placement_id": "p"}})
    assert read_traffic_fields(codec.encode(click), codec.CURRENT_FINGERPRINT)[1] == "c-1"
    nameless = encode_unchecked({**click, "event_id": ""})
    assert read_traffic_fields(nameless, codec.CURRENT_FINGERPRINT) is None
    try:
        codec.decode(nameless)
    except CodecError as error:
        assert error.reason == "schema_invalid" and str(error).startswith("event_id: ")
    else:
        raise AssertionError("the codec took a click without an event id")


def test_a_schemas_canonical_form_follows_nested_types_and_names_a_type_once():
    from refledger.schemas.fingerprint import parsing_canonical_form

    assert parsing_canonical_form({"type": {"type": "map", "values": "int"}}) == '{"type":"map","values":"int"}'
    schema = {"type": "record", "name": "R", "namespace": "n", "doc": "dropped", "fields": [
        {"name": "a", "type": {"type": "map", "values": {"type": "record", "name": "V",
                                                       "fields": [{"name": "x", "type": "int", "default": 1}]}}},
        {"name": "b", "type": {"type": "array", "items": "V"}}]}
    assert parsing_canonical_form(schema) == (
        '{"name":"n.R","type":"record","fields":[{"name":"a","type":{"type":"map","values":'
        '{"name":"n.V","type":"record","fields":[{"name":"x","type":"int"}]}}},'
        '{"name":"b","type":{"type":"array","items":"n.V"}}]}')


def test_the_byte_reader_refuses_a_negative_length_and_one_past_the_end_saying_which():
    import pytest

    from refledger.schemas.binary import read_bytes

    assert read_bytes(b"\x06abcd", 0) == (b"abc", 4)
    assert read_bytes(b"\x80\x01" + b"x" * 64, 0) == (b"x" * 64, 66)  # a two-byte length
    with pytest.raises(ValueError, match="^negative length$"):
        read_bytes(b"\x81\x01" + b"x" * 70, 0)
    with pytest.raises(ValueError, match="^length runs past the message$"):
        read_bytes(b"\x08abc", 0)
