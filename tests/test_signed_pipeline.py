"""Signed events through every door (SPEC §4a): ingest, consume (real broker), replay, verify.

The baby-care alliance signs its events: li-kids's and wang-bath's keys are
published, the operator's first policy requires signatures. Among the events
some are unsigned, signed by the wrong party or tampered with; li-kids
rotates its key and a late click still carries its old key; a close signed
by a stranger must not close anything, nor a suspension signed by one
suspend li-kids. Every door must reach the same
verdicts, and `verify`'s SQL recomputation must agree with the fold.
"""

from __future__ import annotations

import json
import os

import duckdb
import pytest
from click.testing import CliRunner

from refledger.cli import cli
from refledger.consumers.batch import LogProcessor
from refledger.consumers.ingest import ingest_files
from refledger.consumers.verification import signed_fold
from refledger.producers.signed_alliance import signed_simulation
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.schemas.event_files import write_event_file
from refledger.store.ledger_file import LedgerStore

from tests.signing_support import (
    LI, LI_NEW, OPERATOR, STRANGER, WANG, agreement, click, close, event, founding, json_line, key, member, order,
    policy, record, signed,
)

BAD = {"c-unsigned", "o-by-li", "o-tampered", "a-unsigned", "x-by-stranger", "c-after-rotation-old-key",
       "p-off-unsigned", "m-li-suspended"}


def refund(event_id: str, at: str, order_id: str, amount: int) -> dict:
    return event(event_id, "refund", at, "wang-bath", {"order_id": order_id, "refund_id": f"r-{event_id}",
                                                       "merchant_shop_id": "wang-bath", "currency": "CNY",
                                                       "amount_minor": amount}, "v1")


def story() -> list[dict]:
    tampered = signed(order("o-tampered", "2026-11-02T10:05:00.000Z", "o9", price=50_000), WANG)
    tampered["order"]["lines"][0]["sku"] = "换过的"  # changed after wang-bath signed it
    return founding() + [
        signed(click("c-1", "2026-11-01T10:00:00.000Z"), LI),
        signed(order("o-1", "2026-11-01T10:05:00.000Z", "o1", price=13_233), WANG),
        record(click("c-unsigned", "2026-11-01T11:00:00.000Z", "v2")),
        signed(order("o-by-li", "2026-11-01T11:05:00.000Z", "o2", "v2"), LI),
        tampered,
        record(agreement("a-unsigned", "2026-11-03T00:00:00.000Z", 5000)),
        signed(refund("r-1", "2026-11-03T00:00:00.000Z", "o1", 3_333), WANG),
        signed(member("m-li-suspended", "2026-11-05T00:00:00.000Z", "li-kids", status="suspended"), STRANGER),
        signed(member("m-li-2", "2026-11-10T00:00:00.000Z", "li-kids", key(LI_NEW)), OPERATOR),
        signed(click("c-late-old-key", "2026-11-09T20:00:00.000Z", "v3"), LI),
        signed(order("o-3", "2026-11-09T20:30:00.000Z", "o3", "v3", price=25_900), WANG),
        signed(click("c-after-rotation-old-key", "2026-11-11T09:00:00.000Z", "v4"), LI),
        signed(click("c-after-rotation-new-key", "2026-11-11T09:00:01.000Z", "v4"), LI_NEW),
        signed(close("x-by-stranger", "2026-11-12T00:00:00.000Z", "2026-11-11T23:59:59.999Z"), STRANGER),
        signed(order("o-4", "2026-11-11T09:30:00.000Z", "o4", "v4", price=8_000), WANG),
        record(policy("p-off-unsigned", "2026-11-13T00:00:00.000Z", False)),
        signed(event("s-1", "settlement", "2026-12-01T00:00:00.000Z", "alliance",
                      {"settlement_id": "2026-11", "period_end": "2026-11-30T15:59:59.999Z"}), OPERATOR),
    ]


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def events_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("signed") / "baby-care-signed.jsonl"
    path.write_text("".join(json_line(r) + "\n" for r in story()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ingested(events_file, tmp_path_factory):
    db = tmp_path_factory.mktemp("ingested") / "ledger.duckdb"
    run("ingest", events_file, "--db", db)
    return db


def verdicts(db) -> set[tuple[str, str]]:
    return {(q["event_id"], q["reason"]) for q in json.loads(run("quarantine", "--db", db, "--format", "json"))}


def balances(db) -> list[dict]:
    return json.loads(run("balances", "--db", db, "--format", "json"))


def test_ingest_quarantines_exactly_the_badly_signed_events(ingested):
    assert verdicts(ingested) == {(event_id, "bad_signature") for event_id in BAD}


def test_li_kids_earns_from_its_signed_referrals_only(ingested):
    li = {(r["shop_id"], r["currency"]): r for r in balances(ingested)}[("li-kids", "CNY")]
    # o1: 13,233 at 8 % = 1,059, refund of 3,333 takes back 267; o3 (old key, dated before the
    # rotation): 2,072; o4: 640 (new key's click). The close signed by a stranger closed nothing,
    # and the suspension signed by one suspended nobody.
    assert li["earned_payable"] + li["earned_pending"] == 792 + 2_072 + 640


def test_replay_from_the_stored_events_reaches_the_same_ledger(ingested):
    run("replay", "--db", ingested)


def test_verify_and_its_sql_recomputation_agree_with_the_fold(ingested):
    run("verify", "--db", ingested)


def test_a_restarted_fold_rebuilt_from_stored_events_reaches_the_same_verdicts(events_file, ingested, tmp_path):
    lines = events_file.read_text(encoding="utf-8").splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(lines[:12]), encoding="utf-8")
    second.write_text("".join(lines[12:]), encoding="utf-8")
    db = tmp_path / "restarted.duckdb"
    run("ingest", first, "--db", db)
    run("ingest", second, "--db", db)  # a new process: the fold state is rebuilt from the stored events
    assert verdicts(db) == verdicts(ingested)
    assert balances(db) == balances(ingested)


def test_snapshots_of_a_signed_log_resume_to_the_same_verdicts_and_verify_checks_them(events_file, ingested,
                                                                                        tmp_path):
    """Snapshots every 5 events in a first run: the restarted ingest starts from the latest one
    (policy and keys in it), and verify folds on from it, checking the later events' signatures."""
    lines = events_file.read_text(encoding="utf-8").splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(lines[:14]), encoding="utf-8")
    second.write_text("".join(lines[14:]), encoding="utf-8")
    db = tmp_path / "snapshots.duckdb"
    run("ingest", first, "--db", db, "--snapshot-every", 5)
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] >= 1  # the restart starts from it
    finally:
        con.close()
    run("ingest", second, "--db", db)  # no snapshot of its own: verify folds on from the first run's
    assert verdicts(db) == verdicts(ingested)
    assert balances(db) == balances(ingested)
    run("verify", "--db", db)


def _ledger_with(events_file, path, fold_worker: bool):
    store = LedgerStore(path)
    processor = LogProcessor(store, signed_fold, source="test", fold_worker=fold_worker)
    try:
        ingest_files([events_file], processor, batch_size=5)
    finally:
        processor.close()
        store.close()
    con = duckdb.connect(str(path), read_only=True)
    try:
        return (con.execute("SELECT event_id, reason, detail FROM quarantine ORDER BY ALL").fetchall(),
                con.execute("SELECT entry_id, amount, hash FROM entries ORDER BY seq").fetchall())
    finally:
        con.close()


def test_the_fold_process_and_the_fold_in_process_reach_the_same_verdicts(events_file, tmp_path):
    in_process = _ledger_with(events_file, tmp_path / "a.duckdb", fold_worker=False)
    in_child = _ledger_with(events_file, tmp_path / "b.duckdb", fold_worker=True)
    assert len(in_process[0]) == len(BAD) and in_process[1]
    assert in_child == in_process


@pytest.mark.kafka
def test_consume_from_kafka_reaches_the_same_verdicts_as_ingest(events_file, ingested, kafka_bootstrap,
                                                               kafka_topic, tmp_path):
    run("produce", events_file, "--bootstrap-servers", kafka_bootstrap, "--topic", kafka_topic)
    db = tmp_path / "consumed.duckdb"
    run("consume", "--bootstrap-servers", kafka_bootstrap, "--topic", kafka_topic, "--db", db,
        "--group", f"g-{kafka_topic}", "--until-idle", 3)
    assert verdicts(db) == verdicts(ingested)
    assert balances(db) == balances(ingested)
    run("verify", "--db", db)
    run("replay", "--db", db)


@pytest.mark.kafka
def test_produce_signs_a_shops_events_with_its_key(tmp_path, kafka_bootstrap, kafka_topic):
    key_file = tmp_path / "li-kids.pem"
    out = json.loads(run("keygen", "--out", key_file, "--format", "json"))
    founding_events = [
        signed(member("m-li", "2026-10-31T00:00:00.000Z", "li-kids", out["public_key"]), OPERATOR),
        signed(member("m-wang", "2026-10-31T00:00:00.000Z", "wang-bath", key(WANG)), OPERATOR),
        signed(policy("p-1", "2026-11-01T00:00:00.000Z", True, key(OPERATOR)), OPERATOR)]
    alliance = tmp_path / "alliance.jsonl"
    alliance.write_text("".join(json_line(r) + "\n" for r in founding_events), encoding="utf-8")
    clicks = tmp_path / "li-kids.jsonl"
    clicks.write_text(json.dumps(click("c-1", "2026-11-01T10:00:00.000Z")) + "\n"
                      + json.dumps(click("c-2", "2026-11-01T10:00:01.000Z", "v2")) + "\n", encoding="utf-8")
    run("produce", alliance, "--bootstrap-servers", kafka_bootstrap, "--topic", kafka_topic)
    run("produce", clicks, "--bootstrap-servers", kafka_bootstrap, "--topic", kafka_topic,
        "--signing-key", key_file)
    db = tmp_path / "ledger.duckdb"
    run("consume", "--bootstrap-servers", kafka_bootstrap, "--topic", kafka_topic, "--db", db,
        "--group", f"g-{kafka_topic}", "--until-idle", 3)
    stats = json.loads(run("stats", "--db", db, "--format", "json"))
    assert stats["quarantined"] == 0 and verdicts(db) == set()
    con = duckdb.connect(str(db), read_only=True)
    try:
        clicks_stored = con.execute("SELECT count(*) FROM folded_events WHERE type = 'click'").fetchone()[0]
    finally:
        con.close()
    assert clicks_stored == 2


def test_simulate_sign_makes_an_alliance_whose_every_member_signs(tmp_path):
    plain, signed_file = tmp_path / "plain.jsonl", tmp_path / "signed.jsonl"
    run("simulate", "--seed", 11, "--visitors", 200, "--days", 40, "--out", plain)
    run("simulate", "--seed", 11, "--visitors", 200, "--days", 40, "--out", signed_file, "--sign")
    lines = signed_file.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert first["type"] == "policy" and first["policy"]["require_signatures"] is True
    assert all("signature" in json.loads(line) for line in lines)
    assert len(lines) == len(plain.read_text(encoding="utf-8").splitlines()) + 1
    dbs = {}
    for name, path in (("plain", plain), ("signed", signed_file)):
        dbs[name] = tmp_path / f"{name}.duckdb"
        run("ingest", path, "--db", dbs[name])
    assert balances(dbs["signed"]) == balances(dbs["plain"])
    plain_verdicts, signed_verdicts = dict(verdicts(dbs["plain"])), dict(verdicts(dbs["signed"]))
    assert plain_verdicts.keys() == signed_verdicts.keys()
    for event_id, reason in signed_verdicts.items():  # a shop that never joined has no published key
        assert reason == plain_verdicts[event_id] or (reason, plain_verdicts[event_id]) == ("bad_signature",
                                                                                             "unknown_shop")
    run("verify", "--db", dbs["signed"])


def test_the_same_seed_signs_the_same_bytes(tmp_path):
    runs = [list(signed_simulation(simulate(SimulationConfig(seed=3, visitors=50, days=2)), 3)) for _ in range(2)]
    assert runs[0] == runs[1]
    other = list(signed_simulation(simulate(SimulationConfig(seed=3, visitors=50, days=2)), 4))
    assert [r["signature"] for r in other] != [r["signature"] for r in runs[0]]


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites_it(tmp_path):
    key_file = tmp_path / "k.pem"
    shown = run("keygen", "--out", key_file)
    assert oct(os.stat(key_file).st_mode & 0o777) == "0o600"
    public = shown.split("public key):", 1)[1].strip()
    from refledger.schemas.keys import public_key_text, read_key_file
    assert public_key_text(read_key_file(key_file)) == public
    assert key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    refused = CliRunner().invoke(cli, ["keygen", "--out", str(key_file)])
    assert refused.exit_code == 1 and "never overwritten" in refused.output
    assert public_key_text(read_key_file(key_file)) == public


@pytest.mark.kafka
def test_settle_signs_the_operators_month_end_and_an_unsigned_one_is_refused(tmp_path, kafka_bootstrap, kafka_topic):
    from refledger.schemas.keys import write_key_file

    operator_key = write_key_file(tmp_path / "operator.pem", OPERATOR)
    alliance = tmp_path / "alliance.jsonl"
    alliance.write_text("".join(json_line(r) + "\n" for r in founding() + [
        signed(click("c-1", "2026-11-01T10:00:00.000Z"), LI),
        signed(order("o-1", "2026-11-01T10:05:00.000Z", "o1", price=13_233), WANG)]), encoding="utf-8")
    run("produce", alliance, "--bootstrap-servers", kafka_bootstrap, "--topic", kafka_topic)
    common = ("--bootstrap-servers", kafka_bootstrap, "--topic", kafka_topic, "--force", "--format", "json")
    first = json.loads(run("settle", "--period", "2026-11", "--signing-key", operator_key, *common))
    again = json.loads(run("settle", "--period", "2026-11", "--signing-key", operator_key, *common))
    assert first["published"] and again["published"]  # the second run finds the signed one, no conflict
    run("settle", "--period", "2026-12", *common)      # no key: unsigned
    db = tmp_path / "ledger.duckdb"
    run("consume", "--bootstrap-servers", kafka_bootstrap, "--topic", kafka_topic, "--db", db,
        "--group", f"g-{kafka_topic}", "--until-idle", 3)
    refused = verdicts(db)
    assert refused and {reason for _, reason in refused} == {"bad_signature"}
    assert all("2026-12" in event_id for event_id, _ in refused)
    li = {(r["shop_id"], r["currency"]): r for r in balances(db)}[("li-kids", "CNY")]
    assert li["earned_payable"] == 1_059  # November's signed settlement made it payable
