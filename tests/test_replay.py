"""Replay: rebuild the ledger from Kafka, from an archive and from its own stored log;
tampering shows; --until and what-if answer without touching the live ledger."""

from __future__ import annotations

import hashlib
import json
import shutil

import duckdb
import pytest
from click.testing import CliRunner

from producers.simulate import SimulationConfig, simulate
from refledger.cli import cli
from tests.pipeline_support import publish
from tests.scenario_files import SCENARIOS


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def file_digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def live(kafka_bootstrap, tmp_path_factory):
    """A simulated month with late clicks and orders, refunds, bad events and a settlement, consumed from Kafka."""
    from tests.kafka_env import fresh_topic

    topic = fresh_topic(kafka_bootstrap, "replay")
    publish(kafka_bootstrap, topic, simulate(SimulationConfig(seed=31, visitors=500, days=35)))
    root = tmp_path_factory.mktemp("replay")
    db = root / "live.duckdb"
    run("consume", "--bootstrap-servers", kafka_bootstrap, "--db", db, "--topic", topic,
        "--group", f"{topic}-live", "--until-idle", 4)
    con = duckdb.connect(str(db), read_only=True)
    [(settled,)] = con.execute("SELECT count(*) FROM entries WHERE account = 'earned_payable'").fetchall()
    [(refunds,)] = con.execute("SELECT count(*) FROM entries WHERE role = 'refund'").fetchall()
    con.close()
    assert settled and refunds, "the alliance settled and refunded something"
    return {"db": db, "topic": topic, "root": root, "bootstrap": kafka_bootstrap}


@pytest.mark.kafka
def test_replay_from_kafka_matches_the_live_ledger(live):
    before = file_digest(live["db"])
    result = run("replay", "--db", live["db"], "--source", "kafka", "--bootstrap-servers", live["bootstrap"],
                 "--format", "json")
    report = json.loads(result.output)
    assert report["identical"] is True
    assert len(report["heads"]) >= 3
    assert all(h["live"] == h["rebuilt"] and h["live_entries"] > 0 for h in report["heads"].values())
    assert file_digest(live["db"]) == before, "replay never writes to the live ledger"


@pytest.mark.kafka
def test_replay_from_an_archive_and_ingesting_it_match_the_live_ledger(live):
    archive = live["root"] / "archive"
    run("archive", "--bootstrap-servers", live["bootstrap"], "--topic", live["topic"], "--out", archive,
        "--segment-records", 3000)
    report = json.loads(run("replay", "--db", live["db"], "--source", archive, "--format", "json").output)
    assert report["identical"] is True

    copy = live["root"] / "from-archive.duckdb"
    run("ingest", archive, "--db", copy)
    run("ingest", archive, "--db", copy)  # again: nothing new
    live_balances = run("balances", "--db", live["db"], "--format", "json").output
    assert run("balances", "--db", copy, "--format", "json").output == live_balances
    con = duckdb.connect(str(copy), read_only=True)
    [(dup,)] = con.execute("SELECT count(*) FROM (SELECT topic, partition, \"offset\" FROM events "
                           "GROUP BY ALL HAVING count(*) > 1)").fetchall()
    con.close()
    assert dup == 0


@pytest.mark.kafka
def test_replay_from_the_stored_events_matches_and_a_changed_amount_is_found(live, tmp_path):
    assert json.loads(run("replay", "--db", live["db"], "--format", "json").output)["identical"] is True

    tampered = tmp_path / "tampered.duckdb"
    shutil.copy(live["db"], tampered)
    con = duckdb.connect(str(tampered))
    [(entry_id, log_partition, seq, amount)] = con.execute(
        "SELECT entry_id, partition, seq, amount FROM entries WHERE role = 'commission' ORDER BY partition, seq "
        "LIMIT 1").fetchall()
    con.execute("UPDATE entries SET amount = amount + 100 WHERE entry_id = ?", [entry_id])
    con.close()
    result = run("replay", "--db", tampered, "--format", "json", code=1)
    report = json.loads(result.output)
    assert report["identical"] is False
    first = [d for d in report["first_differences"] if d["log"].endswith(f":{log_partition}")][0]
    assert first["seq"] == seq
    assert first["live"]["entry_id"] == first["rebuilt"]["entry_id"] == entry_id
    assert first["live"]["amount"] - first["rebuilt"]["amount"] == 100
    assert any(c["change"] in (100, -100) for c in report["balance_changes"])
    table = run("replay", "--db", tampered, code=1).output
    assert "DIFFERENT" in table and "first difference at seq" in table


def test_until_shows_the_ledger_as_the_log_stood_then(tmp_path):
    db = tmp_path / "baby.duckdb"
    run("ingest", SCENARIOS / "baby-care.jsonl", "--db", db)
    # On 11-03 at noon: o1 earned li-kids 1,059 and its 3,333 refund took back 267 (SPEC §13 steps 1–2);
    # o3 (11-04) has not happened and nothing is settled yet.
    report = json.loads(run("replay", "--db", db, "--until", "2026-11-03T12:00:00Z", "--format", "json").output)
    rows = {(r["shop_id"], r["currency"]): r for r in report["balances"]}
    assert rows[("li-kids", "CNY")]["earned_pending"] == 1059 - 267
    assert rows[("wang-bath", "CNY")]["owed_pending"] == 1059 - 267
    assert ("zhang-toys", "CNY") not in rows
    assert all(r.get("earned_payable", 0) == 0 for r in report["balances"])


def test_what_if_a_seven_day_window_and_ten_percent(tmp_path):
    db = tmp_path / "baby.duckdb"
    run("ingest", SCENARIOS / "baby-care.jsonl", "--db", db)
    before = file_digest(db)
    whatif = tmp_path / "agreements.jsonl"
    whatif.write_text(json.dumps({
        "event_id": "a-1-whatif", "type": "agreement", "occurred_at": "2026-10-31T12:00:00.000Z",
        "alliance_id": "baby-care", "shop_id": "alliance", "visitor_id": None,
        "agreement": {"agreement_id": "default", "version": 1, "effective_from": "2026-11-01T00:00:00.000Z",
                      "merchant_shop_id": "*", "referrer_shop_id": "*", "model": "cps", "rate_bp": 1000,
                      "category_rates_bp": {"toys": 1000}, "attribution_window_days": 7, "hold_days": 15}}) + "\n")
    report = json.loads(run("replay", "--db", db, "--agreements", whatif, "--format", "json").output)
    changes = {(c["shop_id"], c["account"]): c for c in report["balance_changes"]}
    # By hand, at 10 %:
    # o1 at wang-bath: 2 × 4,950 = 9,900 → 990; 3,333 → 333.3 → 333; C = 1,323 (was 792 + 267 = 1,059).
    #   The 3,333 refund takes back round(1,323 × 3,333 / 13,233) = round(333.2) = 333 → 990 remains (was 792).
    # o2: clicked 11-02, ordered 11-20: 18 days, outside 7 as it was outside 15 → still nothing.
    # o3 at li-kids: clicked 12:30, ordered 13:00, well inside 7 days: 25,900 × 10 % = 2,590 (was 2,072).
    # The 11-30 settlement (hold 15) makes both payable.
    assert changes[("li-kids", "earned_payable")]["rebuilt"] == 990
    assert changes[("li-kids", "earned_payable")]["change"] == 990 - 792
    assert changes[("wang-bath", "owed_payable")]["change"] == 990 - 792
    assert changes[("zhang-toys", "earned_payable")]["change"] == 2590 - 2072
    assert changes[("li-kids", "owed_payable")]["change"] == 2590 - 2072
    assert len(changes) == 4
    assert file_digest(db) == before, "a what-if never writes to the live ledger"
    shown = run("replay", "--db", db, "--agreements", whatif).output
    assert "what-if" in shown and "518" in shown and "198" in shown
