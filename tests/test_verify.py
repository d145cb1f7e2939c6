"""`refledger verify` and checkpoints, as an auditor uses them: a clean ledger passes; an amount
changed, an entry deleted or two entries reordered in the DuckDB file are found and named;
a ledger rewritten before a saved checkpoint fails `--since-checkpoint`, one that only grew passes."""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest
from click.testing import CliRunner

from refledger.producers.simulate import SimulationConfig, simulate
from refledger.cli import cli
from refledger.schemas.event_files import write_event_file
from tests.scenario_files import SCENARIOS

BABY = SCENARIOS / "baby-care.jsonl"
LATER = [
    {"event_id": "c-9", "type": "click", "occurred_at": "2026-12-02T10:00:00.000Z", "alliance_id": "baby-care",
     "shop_id": "zhang-toys", "visitor_id": "v9",
     "click": {"referrer_shop_id": "zhang-toys", "merchant_shop_id": "li-kids", "placement_id": "banner-3"}},
    {"event_id": "o-9", "type": "order", "occurred_at": "2026-12-02T10:30:00.000Z", "alliance_id": "baby-care",
     "shop_id": "li-kids", "visitor_id": "v9",
     "order": {"order_id": "o9", "merchant_shop_id": "li-kids", "currency": "CNY",
               "lines": [{"sku": "coat", "category": "apparel", "quantity": 1, "unit_price_minor": 12000}],
               "total_minor": 12000}},
]


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def verify_json(db, *extra, code=0) -> dict:
    return json.loads(run("verify", "--db", db, "--format", "json", *extra, code=code).output)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    events = root / "alliance.jsonl"
    write_event_file(simulate(SimulationConfig(seed=5, visitors=300, days=35)), events)
    db = root / "ledger.duckdb"
    run("ingest", events, "--db", db)
    return db


def tampered_copy(db, tmp_path, *statements):
    copy = tmp_path / "tampered.duckdb"
    shutil.copy(db, copy)
    con = duckdb.connect(str(copy))
    for sql, params in statements:
        con.execute(sql, params)
    con.close()
    return copy


def an_entry(db, offset=40):
    con = duckdb.connect(str(db), read_only=True)
    [(entry_id, seq)] = con.execute("SELECT entry_id, seq FROM entries ORDER BY seq LIMIT 1 OFFSET ?",
                                    [offset]).fetchall()
    con.close()
    return entry_id, seq


def test_an_untouched_ledger_verifies(simulated):
    result = verify_json(simulated)
    assert result["ok"] is True and result["problems"] == []
    assert {"chain", "balanced", "accounted", "checkpoint"} <= set(result["checks"])
    assert sum(h["entries"] for h in result["logs"].values()) > 100
    assert "ok" in run("verify", "--db", simulated).output


def test_a_changed_amount_is_named(simulated, tmp_path):
    entry_id, seq = an_entry(simulated)
    bad = tampered_copy(simulated, tmp_path, ("UPDATE entries SET amount = amount + 1 WHERE entry_id = ?", [entry_id]))
    result = verify_json(bad, code=1)
    wheres = " ".join(p["where"] for p in result["problems"])
    assert f"seq {seq} entry {entry_id}" in wheres
    assert any(p["check"] == "chain" and "hash does not match" in p["detail"] for p in result["problems"])
    assert any(p["check"] == "balanced" for p in result["problems"]), "its transaction no longer sums to zero"
    assert entry_id in run("verify", "--db", bad, code=1).output


def test_a_deleted_entry_is_named(simulated, tmp_path):
    entry_id, seq = an_entry(simulated)
    bad = tampered_copy(simulated, tmp_path, ("DELETE FROM entries WHERE entry_id = ?", [entry_id]))
    result = verify_json(bad, code=1)
    chain = [p for p in result["problems"] if p["check"] == "chain"]
    assert chain and f"entries seq {seq}..{seq} are missing" in chain[0]["detail"]


def test_two_reordered_entries_are_named(simulated, tmp_path):
    first, seq = an_entry(simulated, 40)
    second, seq2 = an_entry(simulated, 41)
    bad = tampered_copy(simulated, tmp_path,
                        ("UPDATE entries SET seq = -1 WHERE entry_id = ?", [first]),
                        ("UPDATE entries SET seq = ? WHERE entry_id = ?", [seq, second]),
                        ("UPDATE entries SET seq = ? WHERE entry_id = ?", [seq2, first]))
    result = verify_json(bad, code=1)
    chain = [p for p in result["problems"] if p["check"] == "chain"]
    assert chain and f"seq {seq} entry {second}" in chain[0]["where"]


def test_a_lost_event_breaks_the_accounting(simulated, tmp_path):
    bad = tampered_copy(simulated, tmp_path,
                        ("DELETE FROM events WHERE event_id IN (SELECT event_id FROM events WHERE type = 'view' "
                         "LIMIT 1)", []))
    result = verify_json(bad, code=1)
    assert any(p["check"] == "accounted" and "events read" in p["detail"] for p in result["problems"])


def test_checkpoints_prove_the_ledger_only_grew(tmp_path):
    db = tmp_path / "baby.duckdb"
    run("ingest", BABY, "--db", db)
    saved = tmp_path / "checkpoints-2026-11.json"
    saved.write_text(run("checkpoints", "--db", db, "--format", "json").output)
    kept = json.loads(saved.read_text())["checkpoints"]
    assert [(c["event_id"], c["kind"], c["at"], c["entries"]) for c in kept] == \
        [("s-1", "settlement", "2026-11-30T00:00:00.000Z", 14)]
    assert "s-1" in run("checkpoints", "--db", db).output

    later = tmp_path / "december.jsonl"
    later.write_text("".join(json.dumps(e) + "\n" for e in LATER))
    run("ingest", later, "--db", db)
    assert verify_json(db, "--since-checkpoint", saved)["ok"] is True

    # the same history with o3's price rewritten is another ledger: its chain does not extend the checkpoint
    rewritten = tmp_path / "rewritten.jsonl"
    rewritten.write_text(BABY.read_text().replace('"unit_price_minor": 25900', '"unit_price_minor": 15900')
                         .replace('"total_minor": 25900', '"total_minor": 15900'))
    other = tmp_path / "rewritten.duckdb"
    run("ingest", rewritten, "--db", other)
    assert verify_json(other)["ok"] is True, "on its own it is a consistent ledger"
    result = verify_json(other, "--since-checkpoint", saved, code=1)
    assert any(p["check"] == "since-checkpoint" and "rewritten" in p["detail"] for p in result["problems"])


def test_an_entry_rewritten_with_a_recomputed_chain_still_fails_the_checkpoint(tmp_path):
    """A forger who changes an entry and recomputes every hash after it passes the chain check,
    but not an auditor's saved checkpoint."""
    from refledger.ledger.chain import GENESIS, canonical_values, chain_hash
    from refledger.replay.verify import HASHED

    db = tmp_path / "baby.duckdb"
    run("ingest", BABY, "--db", db)
    saved = tmp_path / "cp.json"
    saved.write_text(run("checkpoints", "--db", db, "--format", "json").output)
    con = duckdb.connect(str(db))
    cols = ", ".join(HASHED)
    rows = con.execute(f"SELECT {cols} FROM entries ORDER BY seq").fetchall()
    prev = GENESIS
    for row in rows:
        values = list(row)
        if values[HASHED.index("amount")] in (2072, -2072):
            values[HASHED.index("amount")] += 1000 if values[HASHED.index("amount")] > 0 else -1000
        digest = chain_hash(prev, canonical_values(tuple(values)))
        con.execute("UPDATE entries SET amount = ?, prev_hash = ?, hash = ? WHERE entry_id = ?",
                    [values[HASHED.index("amount")], prev, digest, values[0]])
        prev = digest
    con.close()
    alone = verify_json(db, code=1)
    assert not any(p["check"] == "chain" for p in alone["problems"]), "the forged chain is internally consistent"
    result = verify_json(db, "--since-checkpoint", saved, code=1)
    assert any(p["check"] == "since-checkpoint" for p in result["problems"])
