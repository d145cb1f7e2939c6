"""What a signature covers (SPEC §4a): RFC 8785 canonical JSON of an event's JSON Lines form.

Checked against RFC 8785's own examples where they apply (events hold no
floating-point numbers), and across encodings: a JSON line and Avro messages
of schema v1, v2 and v3 of one event give the same bytes, so a signature
survives schema versions.
"""

from __future__ import annotations

import io
import json

import fastavro
import orjson
import pytest
from hypothesis import given, settings, strategies as st

from refledger.schemas import codec, jcs
from refledger.schemas.signing import canonical_bytes, signed_form, traffic_canonical_bytes, verify
from refledger.schemas.traffic import read_traffic_fields
from refledger.schemas.versions import strip_logical_types

from tests.signing_support import LI, key, signed
from tests.examples import examples


# -- RFC 8785 -----------------------------------------------------------------------------

def test_rfc8785_3_2_2_string_and_literal_serialization():
    """RFC 8785 §3.2.2's example, without its floating-point numbers."""
    value = {"string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"/", "literals": [None, True, False]}
    assert jcs.canonical(value) == '{"literals":[null,true,false],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'.encode()


def test_rfc8785_3_2_3_members_are_sorted_by_utf16_code_units():
    """RFC 8785 §3.2.3's example: the emoji (a surrogate pair, D83D DE00) sorts before U+FB33,
    though its code point U+1F600 is greater."""
    value = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
             "1": "One", "\U0001F600": "Emoji: Grinning Face", "\u0080": "Control",
             "\u00f6": "Latin Small Letter O With Diaeresis"}
    expected = ('{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis",'
                '"€":"Euro Sign","\U0001F600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}')
    assert jcs.canonical(value) == expected.encode("utf-8")


def test_rfc8785_control_characters_are_escaped_in_lower_case_hex_and_the_rest_is_literal_utf8():
    text = "".join(map(chr, range(0x20))) + "\x7f\u2028\u2029/<>&é中"
    written = jcs.canonical(text).decode("utf-8")
    assert written == ('"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f'
                       '\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c'
                       '\\u001d\\u001e\\u001f\x7f\u2028\u2029/<>&é中"')


def test_orjson_writes_every_code_point_as_rfc8785_does():
    """The string rules of §3.2.2.2 are those of Python's json with ensure_ascii=False."""
    for cp in [*range(0xD800), *range(0xE000, 0x110000, 7)]:
        s = chr(cp)
        assert orjson.dumps(s) == json.dumps(s, ensure_ascii=False).encode("utf-8"), hex(cp)


@pytest.mark.parametrize("value", [1.5, 2**53, -(2**53), "\ud800", {1: "x"}])
def test_values_an_event_cannot_hold_have_no_canonical_form(value):
    with pytest.raises(ValueError):
        jcs.canonical(value)


def test_integers_are_written_as_their_digits():
    assert jcs.canonical([0, -1, 10**12, 2**53 - 1]) == b"[0,-1,1000000000000,9007199254740991]"


# -- the event's form ---------------------------------------------------------------------

CLICK = {"event_id": "c-1", "type": "click", "occurred_at": "2026-11-01T10:00:00Z", "alliance_id": "baby-care",
         "shop_id": "li-kids", "visitor_id": "v1",
         "click": {"referrer_shop_id": "li-kids", "merchant_shop_id": "wang-bath", "placement_id": "文章-12"}}

AGREEMENT = {"event_id": "a-1", "type": "agreement", "occurred_at": "2026-10-31T12:00:00+00:00",
             "alliance_id": "baby-care", "shop_id": "alliance", "visitor_id": None,
             "agreement": {"agreement_id": "default", "version": 1, "effective_from": "2026-11-01T00:00:00.5Z",
                           "merchant_shop_id": "*", "referrer_shop_id": "*", "model": "cps", "rate_bp": 800,
                           "amount_minor": None, "currency": None}}


def test_the_signed_form_drops_the_signature_and_nulls_and_writes_times_with_milliseconds():
    rec = codec.record_from_json({**CLICK, "signature": "x" * 88})
    assert canonical_bytes(rec) == (
        '{"alliance_id":"baby-care","click":{"merchant_shop_id":"wang-bath","placement_id":"文章-12",'
        '"referrer_shop_id":"li-kids"},"event_id":"c-1","occurred_at":"2026-11-01T10:00:00.000Z",'
        '"shop_id":"li-kids","type":"click","visitor_id":"v1"}').encode("utf-8")


def test_an_agreement_always_shows_its_defaults_and_a_cps_one_its_category_rates():
    form = signed_form(codec.record_from_json(AGREEMENT))
    assert form["agreement"] == {"agreement_id": "default", "version": 1,
                                 "effective_from": "2026-11-01T00:00:00.500Z", "merchant_shop_id": "*",
                                 "referrer_shop_id": "*", "model": "cps", "rate_bp": 800, "category_rates_bp": {},
                                 "attribution_window_days": 15, "hold_days": 15}
    assert "visitor_id" not in form
    cpc = {**AGREEMENT, "agreement": {**AGREEMENT["agreement"], "model": "cpc", "rate_bp": None,
                                      "amount_minor": 50, "currency": "CNY"}}
    assert "category_rates_bp" not in signed_form(codec.record_from_json(cpc))["agreement"]


def _message_in(version, record: dict) -> bytes:
    """A single-object message of the record written with an older schema version."""
    schema = fastavro.parse_schema(strip_logical_types(version.schema()))
    names = {f["name"] for f in version.schema()["fields"]}
    datum = {name: None for name in names}
    datum.update({k: v for k, v in record.items() if k in names})
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, datum)
    return codec.MAGIC + version.fingerprint + body.getvalue()


@pytest.mark.parametrize("event", [CLICK, AGREEMENT], ids=["click", "agreement"])
def test_one_event_has_the_same_canonical_bytes_from_a_json_line_and_avro_v1_v2_v3(event):
    from_json = codec.record_from_json(event)
    expected = canonical_bytes(from_json)
    versions = {v.name: v for v in codec.SCHEMA_VERSIONS}
    assert set(versions) >= {"v1", "v2", "v3"}
    for version in codec.SCHEMA_VERSIONS:
        record = dict(from_json)
        if event["type"] == "agreement" and version.name == "v1":  # v1 knew no defaults: leave them out
            record["agreement"] = {k: v for k, v in record["agreement"].items()
                                   if k not in ("attribution_window_days", "hold_days")}
        decoded = codec.decode(_message_in(version, record))
        assert canonical_bytes(decoded) == expected, version.name
    assert canonical_bytes(codec.decode(codec.encode(from_json))) == expected


def test_a_signature_made_on_a_json_line_verifies_on_the_avro_message_of_any_version():
    rec = signed(CLICK, LI)
    for version in codec.SCHEMA_VERSIONS:
        decoded = codec.decode(_message_in(version, rec))
        assert verify(key(LI), rec["signature"], canonical_bytes(decoded)), version.name


names = st.text(min_size=1, max_size=12)
maybe = st.none() | names


@settings(max_examples=examples(300), deadline=None)
@given(kind=st.sampled_from(["view", "click"]), event_id=st.text(min_size=1, max_size=64), alliance=names,
       shop=names, visitor=names, merchant=names, placement=names,
       at=st.integers(min_value=-62135596800000, max_value=253402300799999), sig=maybe)
def test_the_fast_path_for_views_and_clicks_writes_what_the_general_one_writes(kind, event_id, alliance, shop,
                                                                               visitor, merchant, placement, at, sig):
    record = {"event_id": event_id, "type": kind, "occurred_at": at, "alliance_id": alliance, "shop_id": shop,
              "visitor_id": visitor,
              kind: {"referrer_shop_id": shop, "merchant_shop_id": merchant, "placement_id": placement}}
    if sig is not None:
        record["signature"] = sig
    try:
        expected = canonical_bytes(record)
    except ValueError:
        return  # not Unicode text (a lone surrogate): no canonical form either way
    fields = read_traffic_fields(codec.encode(record), codec.CURRENT_FINGERPRINT)
    assert fields is not None and fields[-1] == sig
    assert traffic_canonical_bytes(*fields[:-1]) == expected


def test_malformed_keys_and_signatures_never_verify():
    rec = signed(CLICK, LI)
    message = canonical_bytes(rec)
    good = rec["signature"]
    assert verify(key(LI), good, message)
    for sig in (good.rstrip("="), good + "=", good.replace("+", "-").replace("/", "_") + "x", "", good[:-4] + "AAA=",
                " " + good):
        assert not verify(key(LI), sig, message), sig
    for public in ("", key(LI)[:-1], key(LI) + "A", "not base64!"):
        assert not verify(public, good, message)
    assert not verify(key(LI), good, message + b" ")
