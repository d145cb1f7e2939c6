"""The Avro schemas: every version parses everywhere, is documented, and evolves compatibly."""

from __future__ import annotations

import io
import json

import avro.schema
import fastavro
import fastavro.schema
import pytest

from refledger.schemas.fingerprint import crc64_avro, fingerprint, parsing_canonical_form
from refledger.schemas.versions import load_versions, strip_logical_types

VERSIONS = load_versions()
VERSION_IDS = [version.name for version in VERSIONS]

# Fingerprints already on the wire. A version directory is never edited once
# published: if one of these changes, a new directory was wanted instead.
PUBLISHED_FINGERPRINTS = {
    "v1": "30b31c11c8aa3315",
    "v2": "1a83c00237683cc0",
    "v3": "0814490611ff93b4",
}

PAYLOAD_TYPES = ["view", "click", "order", "refund", "member", "agreement", "settlement", "payout", "adjustment",
                 "close", "policy"]


def _named_types(node, found):
    """Every record and enum definition in an inlined schema, keyed by name."""
    if isinstance(node, list):
        for branch in node:
            _named_types(branch, found)
    elif isinstance(node, dict):
        kind = node["type"]
        if kind in ("record", "enum"):
            found[node["name"]] = node
        if kind == "record":
            for field in node["fields"]:
                _named_types(field["type"], found)
        elif kind == "array":
            _named_types(node["items"], found)
        elif kind == "map":
            _named_types(node["values"], found)
        elif isinstance(kind, (dict, list)):
            _named_types(kind, found)
    return found


def _fields(version):
    return {field["name"]: field for field in version.schema()["fields"]}


def test_versions_are_v1_and_up_in_order():
    assert VERSION_IDS[:2] == ["v1", "v2"]
    assert [version.number for version in VERSIONS] == list(range(1, len(VERSIONS) + 1))


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_version_parses_with_fastavro_and_apache_avro(version):
    fastavro.parse_schema(version.schema())
    parsed = avro.schema.parse(version.schema_json)
    assert parsed.fullname == "refledger.events.Event"


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_fastavro_load_schema_resolves_the_directory_to_the_same_schema(version):
    loaded = fastavro.schema.load_schema(str(version.directory / "refledger.events.Event.avsc"))
    assert fastavro.schema.to_parsing_canonical_form(loaded) == version.canonical_form


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_every_record_enum_and_field_has_a_doc(version):
    named = _named_types(version.schema(), {})
    assert {"Event", "EventType", "OrderLine", "MemberStatus", "AgreementModel"} <= set(named)
    for name, node in named.items():
        assert node.get("doc", "").strip(), f"{version.name}: {name} has no doc"
        for field in node.get("fields", []):
            assert field.get("doc", "").strip(), f"{version.name}: {name}.{field['name']} has no doc"


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_every_avsc_file_is_one_documented_named_type(version):
    for path in sorted(version.directory.glob("*.avsc")):
        node = json.loads(path.read_text(encoding="utf-8"))
        assert path.stem == f"{node['namespace']}.{node['name']}"
        assert node.get("doc")


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_envelope_mirrors_the_json_lines_form(version):
    fields = _fields(version)
    assert list(fields)[:6] == ["event_id", "type", "occurred_at", "alliance_id", "shop_id", "visitor_id"]
    kinds = PAYLOAD_TYPES if version.number >= 3 else PAYLOAD_TYPES[:9]  # close and policy came with v3
    assert fields["type"]["type"]["symbols"] == kinds
    for kind in kinds:
        assert fields[kind]["type"][0] == "null" and fields[kind]["default"] is None
    assert fields["visitor_id"]["type"] == ["null", "string"]
    assert fields["occurred_at"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_money_is_long_rates_are_int_and_agreement_defaults(version):
    named = _named_types(version.schema(), {})
    for record in named.values():
        for field in record.get("fields", []):
            if field["name"].endswith("_minor"):
                assert field["type"] in ("long", ["null", "long"]), field["name"]
            if field["name"].endswith("_bp"):
                assert field["type"] in ("int", ["null", "int"], {"type": "map", "values": "int"}), field["name"]
    agreement = {field["name"]: field for field in named["Agreement"]["fields"]}
    assert agreement["attribution_window_days"]["default"] == 15
    assert agreement["hold_days"]["default"] == 15
    assert agreement["category_rates_bp"]["default"] == {}
    for name in ("rate_bp", "amount_minor", "currency"):
        assert agreement[name]["default"] is None
    assert agreement["effective_from"]["type"]["logicalType"] == "timestamp-millis"
    settlement = {field["name"]: field for field in named["Settlement"]["fields"]}
    assert settlement["period_end"]["type"]["logicalType"] == "timestamp-millis"


def test_v2_adds_a_documented_nullable_signature():
    v1, v2 = _fields(VERSIONS[0]), _fields(VERSIONS[1])
    assert set(v2) - set(v1) == {"signature"}
    assert v2["signature"]["type"] == ["null", "string"]
    assert v2["signature"]["default"] is None
    assert "bad_signature" in v2["signature"]["doc"]


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_published_fingerprints_never_change(version):
    if version.name in PUBLISHED_FINGERPRINTS:
        assert version.fingerprint.hex() == PUBLISHED_FINGERPRINTS[version.name]


def test_fingerprints_are_distinct():
    assert len({version.fingerprint for version in VERSIONS}) == len(VERSIONS)


@pytest.mark.parametrize(
    ("older", "newer"),
    [(old, new) for i, old in enumerate(VERSIONS) for new in VERSIONS[i + 1 :]],
    ids=lambda version: version.name,
)
def test_newer_versions_only_add_fields_with_defaults(older, newer):
    old_fields, new_fields = _fields(older), _fields(newer)
    assert set(old_fields) <= set(new_fields), "a field was removed"
    for name in set(new_fields) - set(old_fields):
        assert "default" in new_fields[name], f"{newer.name} adds {name} without a default"
    old_named = _named_types(older.schema(), {})
    new_named = _named_types(newer.schema(), {})
    for name, node in old_named.items():
        new = new_named[name]
        if node["type"] == "enum":  # symbols are only appended: old data keeps its meaning
            assert new["symbols"][:len(node["symbols"])] == node["symbols"], name
            continue
        old_record, new_record = _fields_of(node), _fields_of(new)
        for field, old_field in old_record.items():  # every old field, of the same type
            assert field in new_record, f"{name}.{field} was removed"
            assert _canonical_type(new_record[field]["type"]) == _canonical_type(old_field["type"]), f"{name}.{field}"
        for field in set(new_record) - set(old_record):
            assert "default" in new_record[field], f"{newer.name} adds {name}.{field} without a default"


def _fields_of(record: dict) -> dict:
    return {field["name"]: field for field in record["fields"]}


def _canonical_type(node) -> str:
    """A field's type by name only: a named type is compared where it is defined."""
    if isinstance(node, dict) and node.get("type") in ("record", "enum", "fixed"):
        return node["name"]
    if isinstance(node, list):
        return "[" + ",".join(_canonical_type(branch) for branch in node) + "]"
    if isinstance(node, dict) and node.get("type") == "array":
        return f"array<{_canonical_type(node['items'])}>"
    if isinstance(node, dict) and node.get("type") == "map":
        return f"map<{_canonical_type(node['values'])}>"
    return parsing_canonical_form(node)


# ---------------------------------------------------------------- fingerprints


SAMPLE_SCHEMAS = [
    "null",
    "int",
    {"type": "long", "logicalType": "timestamp-millis"},
    {"type": "array", "items": "string"},
    {"type": "map", "values": ["null", "double"]},
    {"type": "fixed", "name": "Hash", "namespace": "x.y", "size": 16},
    {"type": "enum", "name": "Suit", "symbols": ["SPADES", "HEARTS"], "doc": "ignored"},
    {
        "type": "record",
        "name": "Outer",
        "namespace": "a.b",
        "aliases": ["Old"],
        "fields": [
            {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [{"name": "n", "type": "int"}]}},
            {"name": "again", "type": "Inner", "default": {"n": 1}},
            {"name": "other", "type": {"type": "record", "name": "c.Other", "fields": []}},
            {"name": "text", "type": {"type": "string"}, "doc": "caf\u00e9"},
        ],
    },
]


@pytest.mark.parametrize("schema", SAMPLE_SCHEMAS, ids=lambda schema: json.dumps(schema)[:30])
def test_parsing_canonical_form_matches_fastavro(schema):
    expected = fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(schema))
    assert parsing_canonical_form(schema) == expected


@pytest.mark.parametrize("schema", SAMPLE_SCHEMAS, ids=lambda schema: json.dumps(schema)[:30])
def test_fingerprint_matches_fastavro(schema):
    form = parsing_canonical_form(schema)
    assert fingerprint(schema).hex() == fastavro.schema.fingerprint(form, "CRC-64-AVRO")


def test_crc64_of_empty_input_is_the_empty_fingerprint():
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_version_fingerprint_matches_fastavro_and_apache_avro(version):
    parsed = fastavro.parse_schema(version.schema())
    fastavro_form = fastavro.schema.to_parsing_canonical_form(parsed)
    assert version.canonical_form == fastavro_form
    assert version.fingerprint.hex() == fastavro.schema.fingerprint(fastavro_form, "CRC-64-AVRO")
    # The Apache Python library keeps {"type":"long"} for logical types in its
    # canonical form, where the spec ([PRIMITIVES]) and the Java library write
    # "long"; on the schema without logical-type annotations it agrees with us.
    reference = avro.schema.parse(json.dumps(strip_logical_types(version.schema())))
    assert reference.canonical_form == version.canonical_form
    assert reference.fingerprint("CRC-64-AVRO") == version.fingerprint


# ---------------------------------------------------------------- resolution between versions


def _datum(version, **extra):
    datum = {
        "event_id": "c-1",
        "type": "click",
        "occurred_at": 1793527200000,
        "alliance_id": "baby-care",
        "shop_id": "li-kids",
        "visitor_id": "v1",
        "click": {"referrer_shop_id": "li-kids", "merchant_shop_id": "wang-bath", "placement_id": "article-12"},
    }
    for name in _fields(version):
        datum.setdefault(name, None)
    datum.update(extra)
    return datum


def _agreement_datum(version):
    agreement = {
        "agreement_id": "default",
        "version": 1,
        "effective_from": 1793491200000,
        "merchant_shop_id": "*",
        "referrer_shop_id": "*",
        "model": "cps",
        "rate_bp": 800,
        "category_rates_bp": {"toys": 1000},
        "amount_minor": None,
        "currency": None,
        "attribution_window_days": 15,
        "hold_days": 15,
    }
    return _datum(version, type="agreement", click=None, visitor_id=None, agreement=agreement)


PAIRS = [(old, new) for i, old in enumerate(VERSIONS) for new in VERSIONS[i:]]


@pytest.mark.parametrize(("writer", "reader"), PAIRS, ids=lambda version: version.name)
def test_every_version_reads_single_bodies_of_every_older_version(writer, reader):
    writer_schema = fastavro.parse_schema(strip_logical_types(writer.schema()))
    reader_schema = fastavro.parse_schema(strip_logical_types(reader.schema()))
    for datum in (_datum(writer), _agreement_datum(writer)):
        stream = io.BytesIO()
        fastavro.schemaless_writer(stream, writer_schema, datum)
        stream.seek(0)
        read = fastavro.schemaless_reader(stream, writer_schema, reader_schema)
        assert read == {**{name: field.get("default") for name, field in _fields(reader).items()}, **datum}


@pytest.mark.parametrize(("writer", "reader"), PAIRS, ids=lambda version: version.name)
def test_every_version_reads_container_files_of_every_older_version(writer, reader, tmp_path):
    path = tmp_path / f"{writer.name}.avro"
    with open(path, "wb") as stream:
        fastavro.writer(stream, fastavro.parse_schema(writer.schema()), [_datum(writer), _agreement_datum(writer)])
    with open(path, "rb") as stream:
        read = list(fastavro.reader(stream, reader_schema=fastavro.parse_schema(reader.schema())))
    assert [datum["type"] for datum in read] == ["click", "agreement"]
    assert all(set(datum) == set(_fields(reader)) for datum in read)

