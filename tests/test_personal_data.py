"""Personal data never lands in the ledger (SPEC §4b): found, quarantined, kept only redacted.

A careless integration sends wang-bath's customer's mobile number as the
visitor id, an e-mail address as a coupon's placement, an identity number in
an adjustment's reason. Each such event is quarantined `personal_data`; the
ledger file holds none of the text, only `redacted:` and a keyed digest; a
replay from the stored events quarantines them again.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from refledger.cli import cli
from refledger.schemas.personal_data import identity_number_valid, matches, personal_fields, redacted
from refledger.schemas.event_files import write_event_file
from refledger.schemas.versions import load_versions
from tests.ledger_support import Alliance

MOBILE = "+86-138-0013-8000"
MOBILE_PLAIN = "13800138000"
EMAIL = "wang.mama@example.com"
IDENTITY = "11010519491231002X"           # its GB 11643 check digit is right
NOT_IDENTITY = "110105194912310021"       # the same digits with a wrong check digit
SECRETS = (MOBILE, MOBILE_PLAIN, EMAIL, IDENTITY, "0013-8000", "wang.mama")


@pytest.mark.parametrize("text", [MOBILE, MOBILE_PLAIN, "86 138 0013 8000", "call 13912345678 now", EMAIL,
                                  f"id {IDENTITY}", IDENTITY.lower()])
def test_each_pattern_is_found(text):
    assert matches(text)


@pytest.mark.parametrize("text", ["v-3fa9c2", "1380013800", "138001380001", "12800138000", NOT_IDENTITY,
                                  "banner@home", "order 20261101123456789", "sku-12345678901x"])
def test_what_is_not_personal_data_is_left_alone(text):
    assert matches(text) == []


def test_the_identity_check_digit_follows_gb_11643():
    assert identity_number_valid(IDENTITY) and not identity_number_valid(NOT_IDENTITY)


def test_redaction_replaces_only_the_match_and_is_keyed():
    a = Alliance("baby-care")
    record = a.click("2026-11-01T10:00", "li-kids", "wang-bath", f"v-{MOBILE_PLAIN}")
    first = redacted(record, b"key-1")
    again = redacted(record, b"key-1")
    other = redacted(record, b"key-2")
    assert first["visitor_id"].startswith("v-redacted:") and len(first["visitor_id"]) == len("v-redacted:") + 16
    assert first == again and other["visitor_id"] != first["visitor_id"]
    assert record["visitor_id"] == f"v-{MOBILE_PLAIN}"  # the original is not changed
    assert personal_fields(first) == []


def careless_alliance():
    a = Alliance("baby-care")
    log = [a.member(s) for s in ("li-kids", "wang-bath", "zhang-toys")] + [a.agreement(rate_bp=800)]
    log += [
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v-1", event_id="clean-click"),
        a.click("2026-11-01T10:01", "li-kids", "wang-bath", MOBILE, event_id="phone-visitor"),
        a.view("2026-11-01T10:02", "li-kids", "wang-bath", "v-2", event_id="mail-place"),
        a.order("2026-11-01T10:05", "wang-bath", "v-1", "o1", [(1, 1000, "care")], event_id="clean-order"),
        a.adjustment("2026-11-02T09:00", "wang-bath", "li-kids", 100, f"customer {IDENTITY} complained",
                     adjustment_id="adj-1", event_id="id-reason"),
        a.adjustment("2026-11-02T09:00", "wang-bath", "li-kids", 100, f"order {NOT_IDENTITY}",
                     adjustment_id="adj-2", event_id="not-an-id"),
    ]
    log[6]["view"]["placement_id"] = f"coupon for {EMAIL}"
    return log


def ingest(tmp_path, records, db_name="ledger.duckdb"):
    events = tmp_path / "events.jsonl"
    write_event_file(records, events)
    db = tmp_path / db_name
    result = CliRunner().invoke(cli, ["ingest", str(events), "--db", str(db)])
    assert result.exit_code == 0, result.output
    return db


def test_events_with_personal_data_are_quarantined_and_the_file_holds_none_of_it(tmp_path, monkeypatch):
    monkeypatch.delenv("REFLEDGER_REDACTION_KEY", raising=False)
    db = ingest(tmp_path, careless_alliance())
    runner = CliRunner()
    rows = json.loads(runner.invoke(cli, ["quarantine", "--db", str(db), "--format", "json"]).output)
    assert {(r["event_id"], r["reason"]) for r in rows} == {
        ("phone-visitor", "personal_data"), ("mail-place", "personal_data"), ("id-reason", "personal_data")}
    assert all(not any(secret in r["detail"] for secret in SECRETS) for r in rows)
    stats = json.loads(runner.invoke(cli, ["stats", "--db", str(db), "--format", "json"]).output)
    assert stats["quarantined_by_reason"] == {"personal_data": 3}
    # every byte of the ledger file, after a checkpoint: none of the text is there
    import duckdb
    con = duckdb.connect(str(db))
    con.execute("CHECKPOINT")
    con.close()
    raw = Path(db).read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in raw, secret
    assert b"redacted:" in raw
    key_file = Path(f"{db}.redaction-key")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert key_file.read_text().strip().encode() not in raw


def test_a_replay_from_stored_events_quarantines_them_again(tmp_path):
    db = ingest(tmp_path, careless_alliance())
    result = CliRunner().invoke(cli, ["replay", "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["identical"]


def test_the_redaction_key_can_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLEDGER_REDACTION_KEY", "a secret the operator keeps")
    db = ingest(tmp_path, careless_alliance())
    assert not Path(f"{db}.redaction-key").exists()


def test_a_ledger_in_memory_keeps_its_key_in_memory_and_writes_no_file(tmp_path, monkeypatch):
    from refledger.store.ledger_file import LedgerStore

    monkeypatch.delenv("REFLEDGER_REDACTION_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    store = LedgerStore(":memory:")
    key = store.redaction_key()
    assert len(key) == 32 and store.redaction_key() == key
    assert LedgerStore(":memory:").redaction_key() != key
    assert list(tmp_path.iterdir()) == []


def test_no_field_of_any_schema_version_invites_personal_data():
    """A field named for a person's data would ask shops to send it; the schema names none."""
    invites = ("name", "phone", "mobile", "email", "mail", "address", "identity", "id_card", "idcard",
               "passport", "birth", "customer", "buyer", "contact", "tel", "wechat", "openid")
    allowed = {"member_shop_id", "merchant_shop_id", "referrer_shop_id", "shop_id"}  # shops, not people

    def names(node):
        if isinstance(node, dict):
            for field in node.get("fields", ()):
                yield field["name"]
                yield from names(field["type"])
            for key in ("items", "values"):
                if key in node:
                    yield from names(node[key])
        elif isinstance(node, list):
            for branch in node:
                yield from names(branch)

    for version in load_versions():
        for name in set(names(version.schema())) - allowed:
            assert not any(word in name.lower() for word in invites), f"{version.name}: field {name!r}"


def test_a_mobile_number_inside_an_email_address_is_one_piece_of_personal_data():
    from refledger.schemas.personal_data import matches

    assert matches("13812345678@qq.com") == [(0, 18)]
    assert matches("ask 13812345678@qq.com or 13912345678") == [(4, 22), (26, 37)]


def test_a_record_whose_type_is_not_a_name_offers_only_its_visitor_to_the_check():
    from refledger.schemas.personal_data import checked_fields

    fields = list(checked_fields({"type": ["click"], "visitor_id": "v1", "click": {"placement_id": "p"}}))
    assert [(path, value) for path, value, _set in fields] == [("visitor_id", "v1")]
