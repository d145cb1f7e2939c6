"""The codec: single-object Avro messages, JSON Lines, canonical bodies and container files."""

from __future__ import annotations

import io
import json
import string
from pathlib import Path

import avro.io
import avro.schema
import fastavro
import fastavro.schema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refledger.schemas import codec
from refledger.schemas.codec import (
    CURRENT_FINGERPRINT,
    MAGIC,
    SCHEMA_VERSIONS,
    CodecError,
    SchemaInvalid,
    Undecodable,
    canonical_body,
    decode,
    encode,
    format_time,
    iter_container,
    parse_time,
    read_container,
    record_from_json,
    record_to_json,
    record_to_json_line,
    validate_record,
    write_container,
)
from refledger.schemas.shape import PAYLOAD_TYPES, SHOP_EVENT_TYPES
from refledger.schemas.timestamps import MAX_MILLIS, MIN_MILLIS
from refledger.schemas.versions import strip_logical_types

from tests.codec_support import encode_unchecked
from tests.scenario_files import SCENARIOS
from tests.examples import examples

SCENARIO_FILES = sorted(SCENARIOS.glob("*.jsonl"))
SCENARIO_LINES = [
    pytest.param(line, id=f"{path.stem}:{number}")
    for path in SCENARIO_FILES
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
    if line.strip()
]

CLICK_LINE = (
    '{"event_id": "c-1", "type": "click", "occurred_at": "2026-11-01T10:00:00.000Z", "alliance_id": "baby-care", '
    '"shop_id": "li-kids", "visitor_id": "v1", "click": {"referrer_shop_id": "li-kids", '
    '"merchant_shop_id": "wang-bath", "placement_id": "article-12"}}'
)
ORDER_LINE = (
    '{"event_id": "o-1", "type": "order", "occurred_at": "2026-11-01T10:05:00.000Z", "alliance_id": "baby-care", '
    '"shop_id": "wang-bath", "visitor_id": "v1", "order": {"order_id": "o1", "merchant_shop_id": "wang-bath", '
    '"currency": "CNY", "lines": [{"sku": "bath-gel", "category": "care", "quantity": 2, "unit_price_minor": 4950}, '
    '{"sku": "lotion", "category": "care", "quantity": 1, "unit_price_minor": 3333}], "total_minor": 13233}}'
)
AGREEMENT_LINE = (
    '{"event_id": "a-1", "type": "agreement", "occurred_at": "2026-10-31T12:00:00.000Z", "alliance_id": "baby-care", '
    '"shop_id": "alliance", "visitor_id": null, "agreement": {"agreement_id": "default", "version": 1, '
    '"effective_from": "2026-11-01T00:00:00.000Z", "merchant_shop_id": "*", "referrer_shop_id": "*", '
    '"model": "cps", "rate_bp": 800, "category_rates_bp": {"toys": 1000, "care": 700}}}'
)
SWAP_LINE = (
    '{"event_id": "ag-3", "type": "agreement", "occurred_at": "2026-10-31T00:00:00.000Z", "alliance_id": "tea-street", '
    '"shop_id": "alliance", "visitor_id": null, "agreement": {"agreement_id": "tea-snack-swap", "version": 1, '
    '"effective_from": "2026-11-01T00:00:00.000Z", "merchant_shop_id": "a-tea", "referrer_shop_id": "c-snacks", '
    '"model": "swap", "attribution_window_days": 7, "hold_days": 0}}'
)
NOV_1_10H = 1793527200000


def _json(line: str) -> dict:
    return json.loads(line)


def _plain_schema(version) -> dict:
    return fastavro.parse_schema(strip_logical_types(version.schema()))


def _raw_message(datum: dict, version=SCHEMA_VERSIONS[-1]) -> bytes:
    """A single-object message written straight with fastavro, bypassing the codec's checks."""
    full = {name: None for name in PAYLOAD_TYPES}
    full.update(datum)
    if version.number >= 2:
        full.setdefault("signature", None)
    stream = io.BytesIO()
    stream.write(MAGIC + version.fingerprint)
    fastavro.schemaless_writer(stream, _plain_schema(version), full)
    return stream.getvalue()


# ---------------------------------------------------------------- the record


def test_click_record_has_int_times_and_only_its_own_payload():
    record = record_from_json(CLICK_LINE)
    assert record == {
        "event_id": "c-1",
        "type": "click",
        "occurred_at": NOV_1_10H,
        "alliance_id": "baby-care",
        "shop_id": "li-kids",
        "visitor_id": "v1",
        "click": {"referrer_shop_id": "li-kids", "merchant_shop_id": "wang-bath", "placement_id": "article-12"},
    }
    assert decode(encode(record)) == record


def test_swap_agreement_record_fills_optional_fields_and_defaults():
    agreement = record_from_json(SWAP_LINE)["agreement"]
    assert agreement["rate_bp"] is None
    assert agreement["amount_minor"] is None
    assert agreement["currency"] is None
    assert agreement["category_rates_bp"] == {}
    assert (agreement["attribution_window_days"], agreement["hold_days"]) == (7, 0)
    assert agreement["effective_from"] == NOV_1_10H - 10 * 3600 * 1000


def test_agreement_windows_default_to_15_days():
    agreement = record_from_json(AGREEMENT_LINE)["agreement"]
    assert (agreement["attribution_window_days"], agreement["hold_days"]) == (15, 15)


def test_validate_record_fills_defaults_of_a_hand_built_record():
    record = record_from_json(AGREEMENT_LINE)
    for name in ("rate_bp", "amount_minor", "currency", "attribution_window_days", "hold_days"):
        del record["agreement"][name]
    record["agreement"]["rate_bp"] = 800
    normal = validate_record(record)
    assert normal["agreement"]["hold_days"] == 15
    assert normal["agreement"]["currency"] is None
    assert decode(encode(record)) == normal


# ---------------------------------------------------------------- JSON Lines round trips


@pytest.mark.parametrize("line", SCENARIO_LINES)
def test_scenario_event_round_trips_json_record_avro_record_json(line):
    record = record_from_json(line)
    message = encode(record)
    again = decode(message)
    assert again == record
    assert record_to_json(again) == _json(line)
    assert record_to_json_line(again) == line


@pytest.mark.parametrize("line", SCENARIO_LINES)
def test_scenario_event_has_one_canonical_body_whatever_the_encoding(line):
    record = record_from_json(line)
    assert canonical_body(decode(encode(record))) == canonical_body(record)
    assert canonical_body(record_from_json(_json(line))) == canonical_body(record)


def test_time_text_forms_accepted_and_written_back_canonically():
    for text in ("2026-11-01T10:00:00.000Z", "2026-11-01T10:00:00Z", "2026-11-01T10:00:00.000+00:00",
                 "2026-11-01T10:00:00.000000Z"):
        obj = _json(CLICK_LINE)
        obj["occurred_at"] = text
        record = record_from_json(obj)
        assert record["occurred_at"] == NOV_1_10H
        assert record_to_json(record)["occurred_at"] == "2026-11-01T10:00:00.000Z"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-01T18:00:00.000+08:00",
        "2026-11-01T10:00:00.000-00:00",
        "2026-11-01T10:00:00.000",
        "2026-11-01T10:00:00.0001Z",
        "2026-11-01 10:00:00.000Z",
        "2026-11-01T10:00Z",
        "2026-11-01",
        "2026-02-30T10:00:00.000Z",
        "2026-11-01t10:00:00.000z",
        "",
    ],
)
def test_times_not_utc_or_finer_than_a_millisecond_are_schema_invalid(text):
    obj = _json(CLICK_LINE)
    obj["occurred_at"] = text
    with pytest.raises(SchemaInvalid, match="^occurred_at: ") as raised:
        record_from_json(obj)
    assert raised.value.reason == "schema_invalid"
    assert raised.value.field == "occurred_at"


def test_signature_round_trips_and_is_absent_when_unsigned():
    obj = _json(CLICK_LINE)
    assert "signature" not in record_from_json(obj)
    obj["signature"] = "hmac-sha256:AAAA"
    record = record_from_json(obj)
    assert record["signature"] == "hmac-sha256:AAAA"
    assert decode(encode(record)) == record
    assert record_to_json(record) == obj
    obj["signature"] = None
    assert "signature" not in record_from_json(obj)


def test_explicit_null_payloads_of_other_types_are_dropped():
    obj = _json(CLICK_LINE)
    obj["order"] = None
    assert "order" not in record_from_json(obj)


def test_record_from_json_accepts_bytes_and_a_trailing_newline():
    assert record_from_json((CLICK_LINE + "\n").encode()) == record_from_json(CLICK_LINE)


def test_json_line_keeps_non_ascii_text_as_is():
    obj = _json(CLICK_LINE)
    obj["click"]["placement_id"] = "首页横幅"
    line = record_to_json_line(record_from_json(obj))
    assert "首页横幅" in line


# ---------------------------------------------------------------- wire format and the reference library


def test_message_is_magic_fingerprint_then_body():
    message = encode(record_from_json(CLICK_LINE))
    assert message[:2] == b"\xc3\x01"
    assert message[2:10] == CURRENT_FINGERPRINT
    form = fastavro.schema.to_parsing_canonical_form(codec.current_schema())
    assert CURRENT_FINGERPRINT == bytes.fromhex(fastavro.schema.fingerprint(form, "CRC-64-AVRO"))


def test_current_schema_is_the_newest_version():
    assert codec.CURRENT_VERSION == SCHEMA_VERSIONS[-1]
    assert codec.current_schema()["name"] == "refledger.events.Event"


def _reference_schema():
    return avro.schema.parse(json.dumps(strip_logical_types(SCHEMA_VERSIONS[-1].schema())))


@pytest.mark.parametrize("line", [CLICK_LINE, ORDER_LINE, AGREEMENT_LINE, SWAP_LINE])
def test_apache_avro_reads_the_bytes_we_write(line):
    record = record_from_json(line)
    message = encode(record)
    schema = _reference_schema()
    assert schema.fingerprint("CRC-64-AVRO") == message[2:10]
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(message[10:])))
    assert {key: value for key, value in datum.items() if value is not None} == {
        key: value for key, value in record.items() if value is not None
    }


def test_we_read_the_bytes_apache_avro_writes():
    record = record_from_json(ORDER_LINE)
    datum = {**{name: None for name in PAYLOAD_TYPES}, "signature": None, **record}
    stream = io.BytesIO()
    avro.io.DatumWriter(_reference_schema()).write(datum, avro.io.BinaryEncoder(stream))
    assert decode(MAGIC + CURRENT_FINGERPRINT + stream.getvalue()) == record


def test_v1_messages_decode_into_current_records():
    v1 = SCHEMA_VERSIONS[0]
    assert v1.name == "v1" and v1.fingerprint != CURRENT_FINGERPRINT
    for line in (CLICK_LINE, ORDER_LINE, AGREEMENT_LINE, SWAP_LINE):
        record = record_from_json(line)
        assert decode(_raw_message(record, v1)) == record
        assert canonical_body(decode(_raw_message(record, v1))) == canonical_body(record)


# ---------------------------------------------------------------- undecodable bytes


def _undecodable(data):
    with pytest.raises(Undecodable) as raised:
        decode(data)
    assert isinstance(raised.value, CodecError)
    assert raised.value.reason == "undecodable"
    return str(raised.value)


def test_missing_value_is_undecodable():
    assert "expected bytes" in _undecodable(None)
    assert "expected bytes" in _undecodable("c301")


def test_bytearray_and_memoryview_decode():
    message = encode(record_from_json(CLICK_LINE))
    assert decode(bytearray(message)) == decode(memoryview(message)) == decode(message)


def test_too_short_is_undecodable():
    assert "too short" in _undecodable(b"")
    assert "too short" in _undecodable(MAGIC + CURRENT_FINGERPRINT[:7])


def test_bad_magic_is_undecodable():
    message = encode(record_from_json(CLICK_LINE))
    assert "magic" in _undecodable(b"\x00\x01" + message[2:])
    assert "magic" in _undecodable(b'{"event_id": "c-1"}')


def test_unknown_fingerprint_is_undecodable():
    message = encode(record_from_json(CLICK_LINE))
    assert "fingerprint" in _undecodable(MAGIC + bytes(8) + message[10:])


def test_truncated_body_is_undecodable():
    message = encode(record_from_json(ORDER_LINE))
    for cut in range(10, len(message)):
        _undecodable(message[:cut])


def test_trailing_bytes_are_undecodable():
    message = encode(record_from_json(CLICK_LINE))
    assert "trailing" in _undecodable(message + b"\x00")


def test_garbage_body_is_undecodable():
    _undecodable(MAGIC + CURRENT_FINGERPRINT + b"\xff" * 40)
    _undecodable(MAGIC + CURRENT_FINGERPRINT + b"\x04\xff\xfe" + b"\x00" * 30)


# ---------------------------------------------------------------- schema-invalid events


INVALID_CASES = [
    ("event_id", lambda o: o.update(event_id="")),
    ("event_id", lambda o: o.update(event_id="x" * 65)),
    ("order", lambda o: o.update(type="order")),
    ("order", lambda o: o.update(order={"order_id": "o", "merchant_shop_id": "m", "currency": "CNY",
                                        "lines": [{"sku": "s", "category": "c", "quantity": 1,
                                                   "unit_price_minor": 1}], "total_minor": 1})),
    ("visitor_id", lambda o: o.update(visitor_id=None)),
]

ORDER_INVALID_CASES = [
    ("order.lines", lambda o: o["order"].update(lines=[])),
    ("order.currency", lambda o: o["order"].update(currency="cny")),
    ("order.currency", lambda o: o["order"].update(currency="CN")),
    ("order.currency", lambda o: o["order"].update(currency="C1Y")),
]

AGREEMENT_INVALID_CASES = [
    ("agreement.rate_bp", lambda o: o["agreement"].update(rate_bp=None)),
    ("agreement.amount_minor", lambda o: o["agreement"].update(model="cpa", currency="CNY")),
    ("agreement.currency", lambda o: o["agreement"].update(model="cpc", amount_minor=50)),
    ("agreement.currency", lambda o: o["agreement"].update(currency="yuan")),
]


def _shape_cases():
    for field, mutate in INVALID_CASES:
        yield pytest.param(CLICK_LINE, field, mutate, id=f"click-{field}")
    for field, mutate in ORDER_INVALID_CASES:
        yield pytest.param(ORDER_LINE, field, mutate, id=f"order-{field}")
    for field, mutate in AGREEMENT_INVALID_CASES:
        yield pytest.param(AGREEMENT_LINE, field, mutate, id=f"agreement-{field}")


def _record_like(line: str) -> dict:
    """A record-shaped dict (times in millis) that may break shape rules: built without the codec's checks."""
    obj = _json(line)
    record = record_from_json(line)
    obj["occurred_at"] = record["occurred_at"]
    if "agreement" in obj:
        obj["agreement"] = record["agreement"]
    return obj


@pytest.mark.parametrize(("line", "field", "mutate"), list(_shape_cases()))
def test_shape_rules_hold_for_avro_bytes(line, field, mutate):
    record = _record_like(line)
    mutate(record)
    with pytest.raises(SchemaInvalid) as raised:
        decode(_raw_message(record))
    assert raised.value.reason == "schema_invalid"
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


@pytest.mark.parametrize(("line", "field", "mutate"), list(_shape_cases()))
def test_shape_rules_hold_for_json(line, field, mutate):
    obj = _json(line)
    mutate(obj)
    with pytest.raises(SchemaInvalid) as raised:
        record_from_json(obj)
    assert raised.value.field == field


@pytest.mark.parametrize(("line", "field", "mutate"), list(_shape_cases()))
def test_shape_rules_hold_for_encode(line, field, mutate):
    record = _record_like(line)
    mutate(record)
    with pytest.raises(SchemaInvalid) as raised:
        encode(record)
    assert raised.value.field == field


def test_alliance_events_may_have_no_visitor():
    assert record_from_json(SWAP_LINE)["visitor_id"] is None


def test_event_id_of_64_characters_is_fine():
    obj = _json(CLICK_LINE)
    obj["event_id"] = "é" * 64
    assert decode(encode(record_from_json(obj)))["event_id"] == "é" * 64


def test_shape_checks_leave_business_rules_to_the_fold():
    obj = _json(ORDER_LINE)
    obj["order"]["total_minor"] = -5
    obj["order"]["lines"][0]["quantity"] = 0
    obj["order"]["currency"] = "XXQ"
    assert decode(encode(record_from_json(obj)))["order"]["total_minor"] == -5


JSON_TYPE_CASES = [
    ("order.total_minor", lambda o: o["order"].update(total_minor="13233")),
    ("order.total_minor", lambda o: o["order"].update(total_minor=132.33)),
    ("order.total_minor", lambda o: o["order"].update(total_minor=True)),
    ("order.total_minor", lambda o: o["order"].update(total_minor=2**63)),
    ("order.lines[1].quantity", lambda o: o["order"]["lines"][1].update(quantity=2**31)),
    ("order.lines[0].sku", lambda o: o["order"]["lines"][0].pop("sku")),
    ("order.lines[0].colour", lambda o: o["order"]["lines"][0].update(colour="red")),
    ("order.lines", lambda o: o["order"].update(lines={"sku": "x"})),
    ("order", lambda o: o.update(order="o1")),
    ("alliance_id", lambda o: o.pop("alliance_id")),
    ("shop_id", lambda o: o.update(shop_id=None)),
    ("type", lambda o: o.update(type="purchase")),
    ("customer_name", lambda o: o.update(customer_name="Li Lei")),
    ("occurred_at", lambda o: o.update(occurred_at=NOV_1_10H)),
    ("visitor_id", lambda o: o.update(visitor_id=7)),
]


@pytest.mark.parametrize(("field", "mutate"), JSON_TYPE_CASES, ids=[case[0] for case in JSON_TYPE_CASES])
def test_json_of_the_wrong_shape_names_the_field(field, mutate):
    obj = _json(ORDER_LINE)
    mutate(obj)
    with pytest.raises(SchemaInvalid) as raised:
        record_from_json(obj)
    assert raised.value.reason == "schema_invalid"
    assert raised.value.field == field, str(raised.value)


def test_bad_map_entries_are_named():
    obj = _json(AGREEMENT_LINE)
    obj["agreement"]["category_rates_bp"]["toys"] = "10%"
    with pytest.raises(SchemaInvalid, match=r"^agreement\.category_rates_bp\['toys'\]: "):
        record_from_json(obj)


def test_enum_values_are_checked():
    obj = _json(AGREEMENT_LINE)
    obj["agreement"]["model"] = "cpm"
    with pytest.raises(SchemaInvalid, match="^agreement.model: "):
        record_from_json(obj)


def test_json_that_is_not_an_object_is_schema_invalid():
    for text in ("[1, 2]", "42", '"click"', "null"):
        with pytest.raises(SchemaInvalid, match="^event: "):
            record_from_json(text)


@pytest.mark.parametrize("text", ["", "{", '{"event_id": "c-1",}', "NaN x", b"\xff\xfe{", "{'a': 1}"])
def test_invalid_json_is_undecodable(text):
    with pytest.raises(Undecodable) as raised:
        record_from_json(text)
    assert raised.value.reason == "undecodable"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=examples(300), deadline=None)
@given(st.sampled_from([CLICK_LINE, ORDER_LINE, AGREEMENT_LINE, SWAP_LINE]), st.data())
def test_any_json_value_in_any_field_gives_a_record_or_a_codec_error(line, data):
    obj = _json(line)
    kind = obj["type"]
    target = data.draw(st.sampled_from([obj, obj[kind]]))
    target[data.draw(st.sampled_from(sorted(target)) | st.text(max_size=8))] = data.draw(json_values)
    try:
        record = record_from_json(obj)
    except CodecError:
        return
    assert decode(encode(record)) == record


def test_lone_surrogates_are_schema_invalid_not_a_crash():
    obj = _json(CLICK_LINE)
    obj["click"]["placement_id"] = "\ud800"
    with pytest.raises(SchemaInvalid, match="^click.placement_id: "):
        record_from_json(obj)


def test_times_outside_the_text_form_are_schema_invalid():
    record = record_from_json(CLICK_LINE)
    record["occurred_at"] = MAX_MILLIS + 1
    with pytest.raises(SchemaInvalid, match="^occurred_at: "):
        encode(record)
    with pytest.raises(SchemaInvalid, match="^occurred_at: "):
        decode(_raw_message(record))


# ---------------------------------------------------------------- canonical bodies


def test_canonical_body_ignores_map_key_order_and_encoding():
    record = record_from_json(AGREEMENT_LINE)
    swapped = _json(AGREEMENT_LINE)
    swapped["agreement"]["category_rates_bp"] = {"care": 700, "toys": 1000}
    body = canonical_body(record)
    assert canonical_body(record_from_json(swapped)) == body
    assert canonical_body(decode(encode(record_from_json(swapped)))) == body
    assert canonical_body(decode(_raw_message(record, SCHEMA_VERSIONS[0]))) == body


def test_canonical_body_counts_defaults_as_given():
    explicit = _json(AGREEMENT_LINE)
    explicit["agreement"].update(attribution_window_days=15, hold_days=15, amount_minor=None)
    assert canonical_body(record_from_json(explicit)) == canonical_body(record_from_json(AGREEMENT_LINE))


DIFFERENCES = [
    lambda o: o.update(event_id="o-2"),
    lambda o: o.update(occurred_at="2026-11-01T10:05:00.001Z"),
    lambda o: o.update(visitor_id="v2"),
    lambda o: o.update(signature="sig"),
    lambda o: o["order"].update(total_minor=13234),
    lambda o: o["order"]["lines"][1].update(category="toys"),
    lambda o: o["order"]["lines"].reverse(),
]


@pytest.mark.parametrize("mutate", DIFFERENCES)
def test_canonical_body_differs_when_one_field_differs(mutate):
    other = _json(ORDER_LINE)
    mutate(other)
    assert canonical_body(record_from_json(other)) != canonical_body(record_from_json(ORDER_LINE))


# ---------------------------------------------------------------- helpers for other modules


def test_parse_and_format_time():
    assert parse_time("2026-11-01T10:00:00.000Z") == NOV_1_10H
    assert format_time(NOV_1_10H) == "2026-11-01T10:00:00.000Z"
    with pytest.raises(SchemaInvalid, match="^agreement.effective_from: ") as raised:
        parse_time("2026-11-01T10:00:00+01:00", "agreement.effective_from")
    assert raised.value.field == "agreement.effective_from"
    with pytest.raises(SchemaInvalid):
        parse_time(NOV_1_10H)


def test_encode_unchecked_writes_what_decode_rejects():
    record = record_from_json(CLICK_LINE)
    broken = {**record, "type": "order"}
    with pytest.raises(SchemaInvalid):
        encode(broken)
    with pytest.raises(SchemaInvalid) as raised:
        decode(encode_unchecked(broken))
    assert raised.value.field == "order"
    assert encode_unchecked(record) == encode(record)


# ---------------------------------------------------------------- container files


def _scenario_records(path: Path) -> list[dict]:
    return [record_from_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("compression", ["deflate", "null"])
@pytest.mark.parametrize("scenario", SCENARIO_FILES, ids=lambda path: path.stem)
def test_container_round_trip(scenario, compression, tmp_path):
    records = _scenario_records(scenario)
    path = tmp_path / "events.avro"
    assert write_container(path, records, codec=compression) == len(records)
    assert list(read_container(path)) == records
    events = list(iter_container(path))
    assert [event.index for event in events] == list(range(len(records)))
    assert [decode(event.message) for event in events] == records


def test_container_files_keep_the_documented_schema(tmp_path):
    path = tmp_path / "events.avro"
    write_container(path, [record_from_json(CLICK_LINE)])
    with open(path, "rb") as stream:
        reader = fastavro.reader(stream)
        assert reader.writer_schema["doc"]
        assert next(reader)["occurred_at"].isoformat() == "2026-11-01T10:00:00+00:00"


def test_v1_container_files_read_as_current_records(tmp_path):
    v1 = SCHEMA_VERSIONS[0]
    records = [record_from_json(line) for line in (CLICK_LINE, ORDER_LINE, AGREEMENT_LINE)]
    datums = [{**{name: None for name in PAYLOAD_TYPES}, **record} for record in records]
    path = tmp_path / "v1.avro"
    with open(path, "wb") as stream:
        fastavro.writer(stream, fastavro.parse_schema(v1.schema()), datums)
    assert list(read_container(path)) == records


def test_container_events_breaking_shape_rules_are_reported_one_by_one(tmp_path):
    good = record_from_json(CLICK_LINE)
    bad = {**{name: None for name in PAYLOAD_TYPES}, "signature": None, **good, "visitor_id": None}
    path = tmp_path / "mixed.avro"
    with open(path, "wb") as stream:
        fastavro.writer(stream, codec.current_schema(), [bad, {**bad, "visitor_id": "v1"}])
    events = list(iter_container(path))
    assert events[0].record is None and events[0].error.field == "visitor_id"
    assert events[0].message.startswith(MAGIC + CURRENT_FINGERPRINT)
    assert events[1].record == good and events[1].error is None
    with pytest.raises(SchemaInvalid):
        list(read_container(path))


def test_truncated_container_ends_with_an_undecodable_event(tmp_path):
    path = tmp_path / "events.avro"
    write_container(path, _scenario_records(SCENARIO_FILES[0]), codec="null")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    events = list(iter_container(path))
    assert isinstance(events[-1].error, Undecodable)
    assert all(event.error is None for event in events[:-1])


def test_not_a_container_is_undecodable(tmp_path):
    path = tmp_path / "events.avro"
    path.write_bytes(CLICK_LINE.encode())
    (event,) = iter_container(path)
    assert event.error.reason == "undecodable" and event.index == 0


def test_write_container_rejects_invalid_records_and_leaves_no_file(tmp_path):
    path = tmp_path / "events.avro"
    bad = record_from_json(CLICK_LINE)
    bad["visitor_id"] = None
    with pytest.raises(SchemaInvalid):
        write_container(path, [record_from_json(CLICK_LINE), bad])
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- property: random valid records

names = st.text(max_size=12)
minor = st.integers(-(10**12), 10**12)          # SPEC §2: amounts within ±10^12 minor units
quantities = st.integers(-(2**31), 10**6)        # and quantities at most 10^6
basis_points = st.integers(-(2**31), 2**31 - 1)
days = st.integers(-(2**31), 90)                 # windows and holds at most 90 days
currencies = st.text(alphabet=string.ascii_uppercase, min_size=3, max_size=3)
times = st.integers(MIN_MILLIS, MAX_MILLIS)

placements = st.fixed_dictionaries(
    {"referrer_shop_id": names, "merchant_shop_id": names, "placement_id": names}
)
order_lines = st.fixed_dictionaries(
    {"sku": names, "category": names, "quantity": quantities, "unit_price_minor": minor}
)
PAYLOADS = {
    "view": placements,
    "click": placements,
    "order": st.fixed_dictionaries(
        {
            "order_id": names,
            "merchant_shop_id": names,
            "currency": currencies,
            "lines": st.lists(order_lines, min_size=1, max_size=4),
            "total_minor": minor,
        }
    ),
    "refund": st.fixed_dictionaries(
        {"order_id": names, "refund_id": names, "merchant_shop_id": names, "currency": currencies,
         "amount_minor": minor}
    ),
    "member": st.fixed_dictionaries(
        {"member_shop_id": names, "status": st.sampled_from(["active", "suspended", "expelled", "left"]),
         "public_key": st.none() | names}
    ),
    "settlement": st.fixed_dictionaries({"settlement_id": names, "period_end": times}),
    "close": st.fixed_dictionaries({"close_id": names, "closed_through": times}),
    "policy": st.fixed_dictionaries(
        {"policy_id": names, "require_signatures": st.none() | st.booleans(), "operator_public_key": st.none() | names}
    ),
    "payout": st.fixed_dictionaries(
        {"payout_id": names, "merchant_shop_id": names, "referrer_shop_id": names, "currency": currencies,
         "amount_minor": minor}
    ).filter(lambda p: not p["merchant_shop_id"] == p["referrer_shop_id"] == "alliance"),
    "adjustment": st.fixed_dictionaries(
        {"adjustment_id": names, "merchant_shop_id": names, "referrer_shop_id": names, "currency": currencies,
         "amount_minor": minor, "reason": names}
    ).filter(lambda p: not p["merchant_shop_id"] == p["referrer_shop_id"] == "alliance"),
}


@st.composite
def agreements(draw):
    model = draw(st.sampled_from(["cps", "cpa", "cpc", "swap", "none"]))
    needs_rate, needs_amount = model == "cps", model in ("cpa", "cpc")
    return {
        "agreement_id": draw(names),
        "version": draw(basis_points),
        "effective_from": draw(times),
        "merchant_shop_id": draw(st.sampled_from(["*", "li-kids"]) | names),
        "referrer_shop_id": draw(st.sampled_from(["*", "wang-bath"]) | names),
        "model": model,
        "rate_bp": draw(basis_points if needs_rate else st.none() | basis_points),
        "category_rates_bp": draw(st.dictionaries(names, basis_points, max_size=4)),
        "amount_minor": draw(minor if needs_amount else st.none() | minor),
        "currency": draw(currencies if needs_amount else st.none() | currencies),
        "attribution_window_days": draw(days),
        "hold_days": draw(days),
    }


@st.composite
def records(draw):
    kind = draw(st.sampled_from(PAYLOAD_TYPES))
    payload = draw(agreements() if kind == "agreement" else PAYLOADS[kind])
    visitor = names if kind in SHOP_EVENT_TYPES else st.none() | names
    record = {
        "event_id": draw(st.text(min_size=1, max_size=64)),
        "type": kind,
        "occurred_at": draw(times),
        "alliance_id": draw(names),
        "shop_id": draw(names),
        "visitor_id": draw(visitor),
        kind: payload,
    }
    signature = draw(st.none() | names)
    if signature is not None:
        record["signature"] = signature
    return record


@settings(max_examples=examples(400), deadline=None)
@given(records())
def test_random_valid_records_round_trip_through_avro(record):
    message = encode(record)
    assert decode(message) == record
    assert canonical_body(decode(message)) == canonical_body(record)


@settings(max_examples=examples(300), deadline=None)
@given(records())
def test_random_valid_records_round_trip_through_json(record):
    line = record_to_json_line(record)
    assert record_from_json(line) == record
    assert record_to_json_line(record_from_json(line)) == line


@settings(max_examples=examples(400), deadline=None)
@given(records())
def test_the_bytes_of_a_current_message_are_its_canonical_form(record):
    """The consumer stores live Avro messages as they came; they must equal what any other path stores."""
    message = encode(record)
    decoded, canonical = codec.decode_canonical(message)
    assert decoded == record
    assert canonical == codec.canonical_message(record)
    assert canonical == codec.canonical_message(record_from_json(record_to_json_line(record)))


@settings(max_examples=examples(300), deadline=None)
@given(records(), st.data())
def test_random_bodies_decode_and_round_trip_or_raise_only_codec_errors(record, data):
    """Bodies that are valid encodings of random events decode to those events, and encode back
    to bodies that decode the same; the same bodies with a byte changed, cut short or lengthened
    either decode to some event that round-trips too, or raise a codec error, never anything else."""
    body = encode(record)[len(MAGIC + CURRENT_FINGERPRINT):]
    assert decode(MAGIC + CURRENT_FINGERPRINT + body) == record
    damage = data.draw(st.sampled_from(["none", "byte", "cut", "extra"]))
    if damage == "byte":
        at = data.draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([data.draw(st.integers(0, 255))]) + body[at + 1:]
    elif damage == "cut":
        body = body[:data.draw(st.integers(0, len(body) - 1))]
    elif damage == "extra":
        body += data.draw(st.binary(min_size=1, max_size=8))
    try:
        decoded = decode(MAGIC + CURRENT_FINGERPRINT + body)
    except CodecError as exc:
        assert damage != "none" and exc.reason in ("undecodable", "schema_invalid")
        return
    assert decode(encode(decoded)) == decoded
    assert canonical_body(decoded) == canonical_body(decode(encode(decoded)))


def test_an_agreement_with_unsorted_rates_is_stored_in_key_order():
    record = record_from_json(AGREEMENT_LINE)
    rates = record["agreement"]["category_rates_bp"] = {"toys": 1000, "care": 900, "apparel": 700}
    assert list(rates) != sorted(rates)
    message = encode_unchecked(record)
    decoded, canonical = codec.decode_canonical(message)
    assert canonical != message
    assert canonical == codec.canonical_message(decoded)
    assert list(codec.decode(canonical)["agreement"]["category_rates_bp"]) == ["apparel", "care", "toys"]


# ---------------------------------------------------------------- what each refusal says


def test_trailing_bytes_are_counted_in_the_message():
    message = encode(record_from_json(CLICK_LINE))
    assert _undecodable(message + b"\x00\x00\x00").endswith("3 trailing bytes after the Avro body")


def test_the_current_schema_handed_out_is_a_copy_its_reader_may_change():
    schema = codec.current_schema()
    schema["fields"][0]["name"] = "changed"
    schema["fields"].clear()
    again = codec.current_schema()
    assert again["fields"] and again["fields"][0]["name"] != "changed"


def test_a_signed_event_and_the_same_event_unsigned_have_one_content_digest():
    """SPEC §4a: the duplicate comparison ignores the signature, whatever its length (an Ed25519
    signature's 88 characters need a two-byte Avro length)."""
    record = record_from_json(CLICK_LINE)
    unsigned = codec.content_digest(codec.canonical_message(record), None)
    for signature in ("s", "A" * 63, "A" * 64, "B" * 88, "C" * 300):
        signed = {**record, "signature": signature}
        assert codec.content_digest(codec.canonical_message(signed), signature) == unsigned, len(signature)
    other = {**record, "event_id": "c-2"}
    assert codec.content_digest(codec.canonical_message(other), None) != unsigned
    assert len(unsigned) == 16


def test_a_container_event_with_an_int_beyond_32_bits_is_unreadable_with_the_rest_of_its_block(tmp_path):
    """An agreement whose category rate passes 32 bits, in a `.avro` file written by another tool (fastavro
    reads an Avro int as any varint): it is never taken for an event; its block and what follows are
    kept as the file's unreadable rest, from the block's first byte."""
    record = record_from_json(AGREEMENT_LINE)
    path = tmp_path / "rates.avro"
    write_container(path, [{**record, "agreement": {**record["agreement"], "category_rates_bp": {"toys": 2**30}}}],
                    codec="null")
    two_to_the_30, two_to_the_33 = b"\x80\x80\x80\x80\x08", b"\x80\x80\x80\x80\x40"  # zigzag varints
    data = path.read_bytes()
    assert data.count(two_to_the_30) == 1
    path.write_bytes(data.replace(two_to_the_30, two_to_the_33))
    [event] = list(iter_container(path))
    assert event.record is None and isinstance(event.error, Undecodable)
    assert (event.offset, event.rest) == (0, path.read_bytes())
    assert str(event.error).startswith("unreadable Avro container from byte 0 (")
    assert "8589934592" in str(event.error)


def test_a_container_is_written_with_the_codec_asked_for(tmp_path):
    for name in ("deflate", "null"):
        path = tmp_path / f"{name}.avro"
        assert write_container(path, [record_from_json(CLICK_LINE)], codec=name) == 1
        with open(path, "rb") as stream:
            assert fastavro.reader(stream).codec == name
        assert list(read_container(path)) == [record_from_json(CLICK_LINE)]


def test_a_message_naming_a_field_that_is_not_valid_unicode_still_prints():
    from refledger.schemas.errors import invalid

    error = invalid("order.\ud800", "bad \udfff")
    assert str(error) == "order.\\ud800: bad \\udfff" and error.field == "order.\\ud800"
    str(error).encode("utf-8")


@pytest.mark.parametrize("kind, change, says", [
    ("adjustment", {"amount_minor": -(10**12)}, None),
    ("adjustment", {"amount_minor": -(10**12) - 1}, "adjustment.amount_minor: "),
    ("adjustment", {"merchant_shop_id": "alliance"}, None),
    ("adjustment", {"referrer_shop_id": "alliance"}, None),
    ("adjustment", {"merchant_shop_id": "alliance", "referrer_shop_id": "alliance"},
     "adjustment.referrer_shop_id: merchant and referrer are both the alliance's fund"),
    ("payout", {"merchant_shop_id": "alliance", "referrer_shop_id": "alliance"},
     "payout.referrer_shop_id: merchant and referrer are both the alliance's fund"),
])
def test_transfers_reach_minus_a_trillion_fen_and_the_fund_pays_or_is_paid_by_a_shop(kind, change, says):
    payload = {f"{kind}_id": f"{kind}-1", "merchant_shop_id": "wang-bath", "referrer_shop_id": "li-kids",
               "currency": "CNY", "amount_minor": 100, **({"reason": "correction"} if kind == "adjustment" else {})}
    record = {"event_id": f"{kind}-1", "type": kind, "occurred_at": NOV_1_10H, "alliance_id": "baby-care",
              "shop_id": "alliance", "visitor_id": None, kind: {**payload, **change}}
    if says is None:
        assert decode(encode(record))[kind]["amount_minor"] == record[kind]["amount_minor"]
    else:
        with pytest.raises(SchemaInvalid) as refused:
            encode(record)
        assert str(refused.value).startswith(says)


def test_an_agreement_and_a_close_say_which_field_is_wrong():
    agreement = _json(AGREEMENT_LINE)
    del agreement["agreement"]["rate_bp"]
    with pytest.raises(SchemaInvalid, match=r"^agreement\.rate_bp: required when model is cps$"):
        record_from_json(agreement)
    close = {"event_id": "close-1", "type": "close", "occurred_at": "2026-12-01T00:00:00.000Z",
             "alliance_id": "baby-care", "shop_id": "alliance", "visitor_id": None,
             "close": {"close_id": "2026-11", "closed_through": 10**16}}
    with pytest.raises(SchemaInvalid, match=r"^close\.closed_through: "):
        encode({**close, "occurred_at": NOV_1_10H})


def test_a_time_that_is_no_calendar_date_says_so():
    from refledger.schemas.timestamps import parse_utc_millis

    with pytest.raises(ValueError) as refused:
        parse_utc_millis("2026-02-30T00:00:00.000Z")
    assert str(refused.value) == "not a valid calendar date and time: '2026-02-30T00:00:00.000Z'"


def test_a_message_in_non_canonical_bytes_is_kept_as_received():
    """An encoder that pads a varint (0x86 0x00 for a length of 3): the event reads the same, and its
    bytes are kept as they came, so a re-delivery in other bytes is a conflicting duplicate, never a
    silently different event."""
    member = {"event_id": "m-1", "type": "member", "occurred_at": NOV_1_10H, "alliance_id": "baby-care",
              "shop_id": "alliance", "visitor_id": None,
              "member": {"member_shop_id": "li-kids", "status": "active"}}
    message = encode(member)
    assert message[10:11] == b"\x06"
    padded = message[:10] + b"\x86\x00" + message[11:]
    record, kept = codec.decode_canonical(padded)
    assert record == decode(message) and kept == padded
    assert codec.decode_canonical(message) == (record, message)


def test_a_container_event_that_breaks_a_shape_rule_keeps_its_place_in_the_file(tmp_path):
    good = record_from_json(CLICK_LINE)
    datum = {name: None for name in PAYLOAD_TYPES} | {"signature": None} | {**good, "occurred_at": NOV_1_10H}
    path = tmp_path / "clicks.avro"
    with open(path, "wb") as out:
        fastavro.writer(out, codec.current_schema(), [datum, {**datum, "event_id": ""}, {**datum, "event_id": "c-3"}],
                        validator=False)
    events = list(iter_container(path))
    assert [e.index for e in events] == [0, 1, 2]
    assert [type(e.error).__name__ if e.error else e.record["event_id"] for e in events] == [
        "c-1", "SchemaInvalid", "c-3"]
    assert str(events[1].error).startswith("event_id: ") and decode(events[0].message) == good
