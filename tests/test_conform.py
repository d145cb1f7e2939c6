"""The schema-driven checks every JSON line and every record meets before it becomes Avro.

A shop integration that sends `"quantity": "2"` or forgets `order_id` reads the
reason in `refledger quarantine`: the message starts with the path of the
field. These tests compile converters from a small schema of their own (so
that each kind of Avro type is met once) and check what they return and what
they say.
"""

from __future__ import annotations

import pytest

from refledger.schemas.conform import ConverterOptions, TimeForm, compile_converter, compile_int_check, describe
from refledger.schemas.errors import SchemaInvalid

VISIT = {
    "type": "record", "name": "Visit", "namespace": "shop.test",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "count", "type": "int"},
        {"name": "total", "type": "long", "default": 0},
        {"name": "paid", "type": "boolean", "default": False},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["VIEW", "CLICK"]}},
        {"name": "again", "type": ["null", "Kind"], "default": None},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "either", "type": ["int", "string"], "default": 0},
        {"name": "nothing", "type": "null", "default": None},
        {"name": "lines", "default": [], "type": {"type": "array", "items": {
            "type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"},
                                                        {"name": "qty", "type": "int"}]}}},
        {"name": "more_lines", "type": {"type": "array", "items": "Line"}, "default": []},
        {"name": "rates", "type": {"type": "map", "values": "int"}, "default": {}},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": ["new"]},
        {"name": "wrapped", "type": {"type": {"type": "array", "items": "int"}}, "default": []},
        {"name": "seen_at", "type": {"type": "array", "items": {"type": "long", "logicalType": "timestamp-millis"}},
         "default": []},
        {"name": "rate_sets", "type": {"type": "array", "items": {"type": "map", "values": "int"}}, "default": []},
        {"name": "kind_again", "type": ["null", "shop.test.Kind"], "default": None},
        {"name": "gift", "default": None, "type": ["null", {
            "type": "record", "name": "Gift", "namespace": "shop.gifts", "fields": [{"name": "code", "type": "string"}]}]},
        {"name": "more_gifts", "type": {"type": "array", "items": "shop.gifts.Gift"}, "default": []},
    ],
}
AT_TEXT, AT_MILLIS = "2026-11-01T10:00:00.000Z", 1_793_527_200_000
A_VISIT = {"id": "v-1", "at": AT_TEXT, "count": 2, "kind": "CLICK"}


# compiled inside each test, not once at import: what the test checks is the compiling too
def from_json(value):
    return compile_converter(VISIT, ConverterOptions(times=TimeForm.TEXT))(value)


def from_record(value):
    return compile_converter(VISIT, ConverterOptions(times=TimeForm.MILLIS))(value)


def canonical(value):
    return compile_converter(VISIT, ConverterOptions(times=TimeForm.MILLIS, sort_maps=True))(value)


def test_a_visit_gets_its_times_in_milliseconds_and_every_default_filled_in():
    assert from_json(A_VISIT) == {
        "id": "v-1", "at": AT_MILLIS, "count": 2, "total": 0, "paid": False, "kind": "CLICK", "again": None,
        "note": None, "either": 0, "nothing": None, "lines": [], "more_lines": [], "rates": {}, "tags": ["new"],
        "wrapped": [], "seen_at": [], "rate_sets": [], "kind_again": None, "gift": None, "more_gifts": []}
    assert from_record({**A_VISIT, "at": AT_MILLIS})["at"] == AT_MILLIS


def test_every_field_given_is_kept_as_given():
    given = {**A_VISIT, "total": -(2**63), "paid": True, "again": "VIEW", "note": "gift", "either": "many",
             "lines": [{"sku": "s-1", "qty": 2**31 - 1}], "more_lines": ({"sku": "s-2", "qty": -(2**31)},),
             "rates": {"toys": 500}, "tags": []}
    defaults = {"wrapped": [], "seen_at": [], "rate_sets": [], "kind_again": None, "gift": None, "more_gifts": []}
    assert from_json(given) == {**given, **defaults, "at": AT_MILLIS, "nothing": None,
                                "more_lines": [{"sku": "s-2", "qty": -(2**31)}]}
    assert from_json({**A_VISIT, "either": 7})["either"] == 7
    assert from_json({**A_VISIT, "note": None, "again": None})["note"] is None


def test_nested_types_named_types_of_other_namespaces_and_times_in_arrays_are_followed():
    given = {**A_VISIT, "wrapped": [1, 2], "seen_at": [AT_TEXT], "rate_sets": [{"b": 1, "a": 2}],
             "kind_again": "VIEW", "gift": {"code": "G-1"}, "more_gifts": [{"code": "G-2"}]}
    converted = from_json(given)
    assert converted["wrapped"] == [1, 2] and converted["seen_at"] == [AT_MILLIS]
    assert converted["kind_again"] == "VIEW" and converted["more_gifts"] == [{"code": "G-2"}]
    assert list(canonical({**given, "at": AT_MILLIS, "seen_at": [AT_MILLIS]})["rate_sets"][0]) == ["a", "b"]
    with pytest.raises(SchemaInvalid, match=r"^more_gifts\[0\]\.code: expected a string, got integer$"):
        from_json({**A_VISIT, "more_gifts": [{"code": 5}]})
    with pytest.raises(SchemaInvalid, match=r"^seen_at\[0\]: expected a UTC time string, got integer$"):
        from_json({**A_VISIT, "seen_at": [AT_MILLIS]})


def test_a_default_list_is_a_fresh_one_each_time():
    first = from_json(A_VISIT)
    first["tags"].append("changed")
    assert from_json(A_VISIT)["tags"] == ["new"]


def test_maps_keep_their_order_unless_made_canonical():
    value = {**A_VISIT, "at": AT_MILLIS, "rates": {"toys": 1, "bath": 2}}
    assert list(from_record(value)["rates"]) == ["toys", "bath"]
    assert list(canonical(value)["rates"]) == ["bath", "toys"]


@pytest.mark.parametrize("change, says", [
    ({"id": None}, "id: expected a string, got null"),
    ({"id": "v-\ud800"}, "id: string is not valid Unicode (lone surrogate)"),
    ({"at": AT_MILLIS}, "at: expected a UTC time string, got integer"),
    ({"count": True}, "count: expected an integer, got boolean"),
    ({"count": 2.0}, "count: expected an integer, got number"),
    ({"count": 2**31}, "count: integer out of range [-2147483648, 2147483647]: 2147483648"),
    ({"count": -(2**31) - 1}, "count: integer out of range [-2147483648, 2147483647]: -2147483649"),
    ({"total": 2**63}, "total: integer out of range [-9223372036854775808, 9223372036854775807]: "
                       "9223372036854775808"),
    ({"paid": 1}, "paid: expected a boolean, got integer"),
    ({"kind": "SWAP"}, "kind: expected one of VIEW, CLICK, got 'SWAP'"),
    ({"kind": 1}, "kind: expected one of VIEW, CLICK, got 1"),
    ({"again": "SWAP"}, "again: expected one of VIEW, CLICK, got 'SWAP'"),
    ({"note": 5}, "note: expected a string, got integer"),
    ({"either": 1.5}, "either: no branch of the union accepts a number"),
    ({"nothing": 0}, "nothing: expected null, got integer"),
    ({"lines": {"sku": "s-1"}}, "lines: expected an array, got object"),
    ({"lines": [{"sku": "s-1", "qty": 1}, {"sku": "s-2", "qty": "2"}]}, "lines[1].qty: expected an integer, got string"),
    ({"lines": [{"sku": "s-1"}]}, "lines[0].qty: required field is missing"),
    ({"more_lines": [["s-1", 1]]}, "more_lines[0]: expected an object, got array"),
    ({"rates": [["toys", 5]]}, "rates: expected an object, got array"),
    ({"rates": {"toys": "5"}}, "rates['toys']: expected an integer, got string"),
    ({"tags": ["a", 5]}, "tags[1]: expected a string, got integer"),
    ({"zeta": 1, "alpha": 2}, "alpha: unknown field"),
])
def test_a_value_that_does_not_fit_is_refused_naming_its_field(change, says):
    with pytest.raises(SchemaInvalid) as refused:
        from_json({**A_VISIT, **change})
    assert str(refused.value) == says


def test_a_field_written_as_null_is_a_field_left_out():
    # SPEC §4a: null and absent are the same. A field with a default takes it; one without is missing.
    written_null = from_json({**A_VISIT, "total": None, "paid": None, "either": None, "note": None, "rates": None})
    left_out = from_json({k: v for k, v in A_VISIT.items() if k not in ("total", "paid", "either", "note", "rates")})
    assert written_null == left_out
    assert (written_null["total"], written_null["paid"], written_null["either"], written_null["rates"]) == (0, False, 0, {})
    with pytest.raises(SchemaInvalid, match=r"^id: expected a string, got null$"):
        from_json({**A_VISIT, "id": None})


def test_a_missing_field_a_bad_time_and_a_value_that_is_no_record_are_named():
    with pytest.raises(SchemaInvalid, match=r"^id: required field is missing$"):
        from_json({k: v for k, v in A_VISIT.items() if k != "id"})
    with pytest.raises(SchemaInvalid, match=r"^at: expected a UTC time like 2026-11-01T10:00:00\.000Z, got 'yesterday'$"):
        from_json({**A_VISIT, "at": "yesterday"})
    with pytest.raises(SchemaInvalid, match=r"^at: expected an integer, got string$"):
        from_record(A_VISIT)
    with pytest.raises(SchemaInvalid, match=r"^event: expected an object, got array$"):
        from_json([A_VISIT])


def test_a_schema_type_the_converters_do_not_know_is_said_at_once():
    fixed = {"type": "record", "name": "R", "fields": [{"name": "f", "type": {"type": "fixed", "name": "F",
                                                                                "size": 4}}]}
    with pytest.raises(NotImplementedError, match="schema type 'fixed' is not supported by the converter"):
        compile_converter(fixed, ConverterOptions(times=TimeForm.TEXT))


@pytest.mark.parametrize("value, name", [
    (None, "null"), (True, "boolean"), (0, "integer"), (0.5, "number"), ("", "string"), ([], "array"),
    ((), "array"), ({}, "object"), (b"", "bytes"),
])
def test_values_are_described_by_their_json_names(value, name):
    assert describe(value) == name


def int_beyond_32_bits(datum):
    return compile_int_check(VISIT)(datum)


@pytest.mark.parametrize("change, says", [
    ({}, None),
    ({"count": 2**31}, "count: an Avro int beyond 32 bits: 2147483648"),
    ({"count": -(2**31) - 1}, "count: an Avro int beyond 32 bits: -2147483649"),
    ({"total": 2**40}, None),  # a long
    ({"either": 2**40}, "either: an Avro int beyond 32 bits: 1099511627776"),
    ({"lines": [{"sku": "s", "qty": 1}, {"sku": "s", "qty": 2**32}]}, "lines[].qty: an Avro int beyond 32 bits: "
                                                                      "4294967296"),
    ({"more_lines": [{"sku": "s", "qty": 2**32}]}, "more_lines[].qty: an Avro int beyond 32 bits: 4294967296"),
    ({"rates": {"toys": 1, "bath": -(2**33)}}, "rates{}: an Avro int beyond 32 bits: -8589934592"),
    ({"count": None, "lines": None}, None),
])
def test_an_int_beyond_32_bits_is_found_wherever_the_schema_has_one(change, says):
    """fastavro reads an Avro int as any varint: the check finds the first one out of range."""
    assert int_beyond_32_bits({**A_VISIT, **change}) == says


def test_the_int_check_passes_over_what_is_not_a_record():
    assert int_beyond_32_bits([A_VISIT]) is None
    assert int_beyond_32_bits({**A_VISIT, "lines": "no list", "rates": ["no map"]}) is None
